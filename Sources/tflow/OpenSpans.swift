import ArgumentParser
import Foundation
import TelemetryFlow

/// Records inside spans that it never ends, prints `ready` once they are durable, then waits to be killed (for
/// the crash-cut span test: the next start exports them as cut off).
struct OpenSpans: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open-spans",
        abstract: "Start nested spans, add events, print ready once durable, and wait to be killed (for crash tests).")

    @Option(help: "The client's data directory.")
    var dir: String

    @Option(help: "Open spans to start (nested, each the child of the one before).")
    var depth: Int = 3

    func validate() throws {
        guard (1...100).contains(depth) else { throw ValidationError("--depth must be 1–100, not \(depth)") }
    }

    func run() async throws {
        var configuration = TelemetryFlow.Configuration(service: "open-spans")
        configuration.log.directory = dir
        configuration.log.durability = .always
        configuration.exporters = []
        let telemetry = try await TelemetryFlowClient(configuration: configuration)
        telemetry.start()
        var context = ServiceContext.topLevel
        for level in 0..<depth {
            let span = telemetry.startSpan("open-\(level)", kind: level == 0 ? .server : .internal, attributes: ["level": .int(Int64(level))], context: context)
            span.addEvent("working", attributes: ["level": .int(Int64(level))])
            context.span = span
        }
        // One span that does end, so the test can tell cut-off spans from ended ones.
        telemetry.startSpan("ended", context: context).end()
        guard await telemetry.flush(timeout: .seconds(30)) != nil else { throw ValidationError("the log did not become durable") }
        print("ready")
        fflush(nil)
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}
