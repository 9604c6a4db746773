import ArgumentParser
import Foundation
import TelemetryFlow

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
