import ArgumentParser
import Foundation
import TelemetryFlow

/// Appends as fast as it can and prints every sequence that `flush()` acknowledged.
///
/// The crash test runs it as a child process and kills it with SIGKILL at random moments: every sequence
/// printed after "acked" must be in the log when it is reopened.
struct Stress: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append events as fast as possible, printing each flush-acknowledged sequence (for crash tests).")

    @OptionGroup var log: LogOptions

    @Option(parsing: .unconditional, help: "Events between flushes (1 or more).")
    var flushEvery: Int = 500

    @Option(parsing: .unconditional, help: "Stop after this many events (0: run until killed).")
    var count: Int = 0

    @Flag(help: "Keep going when a flush fails (print \"flush-failed <last appended sequence> <code> <message>\") instead of stopping.")
    var continueOnError = false

    func validate() throws {
        guard flushEvery >= 1 else { throw ValidationError("--flush-every must be 1 or more, not \(flushEvery)") }
        guard count >= 0 else { throw ValidationError("--count must be 0 (run until killed) or more, not \(count)") }
    }

    func run() async throws {
        let configuration = try log.configuration()
        let eventLog = try EventLog(configuration)
        let scope = InstrumentationScope(name: "stress")
        var appended = 0
        print("opened last=\(eventLog.recoveryReport.lastSequence)")
        fflush(nil)
        while count == 0 || appended < count {
            for _ in 0..<(count == 0 ? flushEvery : min(flushEvery, count - appended)) {
                let n = Int64(appended)
                let event: TelemetryEvent = n % 2 == 0
                    ? .measurement(MetricMeasurement(kind: .counter, name: "stress.ops", scope: scope, attributes: ["n": .int(n)], value: .int(n)))
                    : .log(LogRecordData(timeUnixNano: UInt64(n), severity: .info, body: .string("stress record \(n)"), attributes: ["n": .int(n)]), scope: scope)
                guard eventLog.append(event, timestampUnixNano: UInt64(n)).sequence != nil else {
                    if continueOnError { appended += 1; continue }
                    throw ValidationError("append was dropped: \(eventLog.statistics.dropped)")
                }
                appended += 1
            }
            let target = eventLog.statistics.appended
            do {
                let durable = try await eventLog.flush()
                print("acked \(durable)")
            } catch let error as TelemetryFlowError where continueOnError {
                print("flush-failed \(target) \(error.code) \(error.message)")
            }
            fflush(nil)
        }
        eventLog.close()
    }
}
