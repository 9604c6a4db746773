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

/// Exports a log to an OTLP endpoint until every event is handled (for the export crash test).
struct ExportStress: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-stress",
        abstract: "Export a log over OTLP until its end is delivered (for crash tests).")

    @OptionGroup var log: LogOptions

    @Option(help: "OTLP endpoint.")
    var endpoint: String

    @Option(help: "OTLP protocol: grpc, http/protobuf or http/json.")
    var `protocol`: String = "http/protobuf"

    @Option(parsing: .unconditional, help: "Events per batch (1 or more).")
    var batch: Int = 500

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be 1 or more, not \(batch)") }
    }

    func run() async throws {
        let eventLog = try EventLog(try log.configuration())
        var configuration = ExporterConfiguration.otlp(OTLPExporterConfiguration(endpoint: endpoint, protocol: ExportProtocol(self.protocol)))
        configuration.policy.maxBatchCount = batch
        configuration.policy.scheduleDelay = .zero
        configuration.policy.initialBackoff = .milliseconds(50)
        configuration.policy.maxBackoff = .milliseconds(200)
        let pipeline = try await ExportPipeline(log: eventLog, exporters: [configuration], registry: .standard())
        print("opened cursor=\(pipeline.status[0].cursor)")
        fflush(nil)
        pipeline.start()
        let last = eventLog.statistics.lastSequence
        let done = await pipeline.waitUntilHandled(through: last, timeout: .seconds(120))
        await pipeline.stop()
        eventLog.close()
        print("done \(done) cursor=\(pipeline.status[0].cursor)")
        if !done { throw ExitCode(1) }
    }
}
