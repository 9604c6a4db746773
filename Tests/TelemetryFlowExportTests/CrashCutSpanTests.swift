import Foundation
import Testing
@testable import TelemetryFlow

/// A child process is killed with SIGKILL inside open spans; the restarted client exports them as ended at the
/// last time recorded for them, status error, `telemetryflow.span.cut_off = true`, found through the checkpointed
/// open-spans projection.
@Suite struct CrashCutSpanTests {
    @Test func spansOpenAtAKillAreExportedAsCutOff() async throws {
        let receiver = try Receiver()
        let dir = LogDirectory()
        let run = try await runChild(["open-spans", "--dir", dir.path, "--depth", "3"], killAfter: .milliseconds(1500))
        #expect(run.first == "ready", "\(run.first) \(run.output)")
        #expect(run.killed)

        var configuration = TelemetryFlow.Configuration(service: "open-spans")
        configuration.log.directory = dir.path
        var exporter = ExporterConfiguration.otlp(OTLPExporterConfiguration(endpoint: receiver.endpoint("http/protobuf")))
        exporter.policy.scheduleDelay = .milliseconds(20)
        configuration.exporters = [exporter]
        let telemetry = try await TelemetryFlowClient(configuration: configuration)
        telemetry.start()
        _ = try await receiver.waitFor { $0["spans"] ?? 0 >= 4 }
        let spans = try #require(try await receiver.received()["spans"] as? [[String: Any]])
        #expect(spans.count == 4)
        let ended = try #require(spans.first { $0["name"] as? String == "ended" })
        #expect((ended["attributes"] as? [String: Any])?[TelemetryFlowClient.cutOffAttribute] == nil)
        var parent = ""
        for level in 0..<3 {
            let span = try #require(spans.first { $0["name"] as? String == "open-\(level)" }, "open-\(level)")
            let attributes = span["attributes"] as? [String: Any] ?? [:]
            #expect(attributes[TelemetryFlowClient.cutOffAttribute] as? Bool == true, "\(span)")
            #expect(attributes["level"] as? Int == level)
            #expect((span["status"] as? [String: Any])?["code"] as? String == "STATUS_CODE_ERROR")
            #expect(span["parentSpanId"] as? String ?? "" == parent)
            parent = span["spanId"] as? String ?? ""
            // Ended at the last time recorded for it: its "working" event.
            let events = span["events"] as? [[String: Any]] ?? []
            let working = try #require(events.first { $0["name"] as? String == "working" } ?? nil, "the event travels with the cut-off span: \(span)")
            #expect(span["end"] as? Int == working["time"] as? Int, "\(span)")
        }
        // Ended once: a further restart exports nothing again.
        await telemetry.shutdown()
        try await receiver.reset()
        let again = try await TelemetryFlowClient(configuration: configuration)
        #expect(again.statistics != nil)
        again.start()
        #expect(await again.forceExport(timeout: .seconds(20)))
        #expect(try await receiver.stats()["spans"] == 0)
        await again.shutdown()
    }
}
