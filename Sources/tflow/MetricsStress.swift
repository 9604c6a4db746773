import ArgumentParser
import Foundation
import TelemetryFlow

/// Records counter measurements and collects delta metrics as fast as it can (for the metrics crash test).
struct MetricsStress: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics-stress",
        abstract: "Record counters and collect delta metrics in a loop (for crash tests).")

    @OptionGroup var log: LogOptions

    @Option(parsing: .unconditional, help: "Measurements between collections (1 or more).")
    var collectEvery: Int = 300

    @Option(parsing: .unconditional, help: "Stop after this many measurements, with a final collection (0: run until killed).")
    var count: Int = 0

    func validate() throws {
        guard collectEvery >= 1 else { throw ValidationError("--collect-every must be 1 or more, not \(collectEvery)") }
        guard count >= 0 else { throw ValidationError("--count must be 0 (run until killed) or more, not \(count)") }
    }

    func run() async throws {
        let eventLog = try EventLog(try log.configuration())
        var configuration = MetricAggregationConfiguration()
        configuration.temporality = .delta
        let projection = try await MetricsProjection(log: eventLog, configuration: configuration)
        print("opened last=\(eventLog.recoveryReport.lastSequence)")
        fflush(nil)
        var n = 0
        while count == 0 || n < count {
            for _ in 0..<collectEvery where count == 0 || n < count {
                let m = MetricMeasurement(kind: .counter, name: "stress.requests", attributes: ["k": .int(Int64(n % 3))], value: .int(1))
                _ = eventLog.append(.measurement(m), timestampUnixNano: wallClockNanos())
                n += 1
            }
            try await projection.collect()
        }
        try await projection.collect()
        eventLog.close()
        print("done \(n)")
    }
}
