import Foundation
import Testing
import TelemetryFlowTesting
@testable import TelemetryFlow

/// Propagation against the official OpenTelemetry Python API (Tests/Support/w3c_interop.py), custom signals
/// validated by their plugin, and processors on the recording path with counted drops.
@Suite struct ClientInteropTests {
    static func python(_ arguments: [String]) throws -> [String: Any] {
        let root = String(#filePath).components(separatedBy: "/Tests/").first!
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", root + "/Tests/Support/w3c_interop.py"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(String(decoding: data, as: UTF8.self))")
    }

    static func client(_ dir: LogDirectory, _ configure: (inout TelemetryFlow.Configuration) -> Void = { _ in }) async throws -> TelemetryFlowClient {
        var c = TelemetryFlow.Configuration(service: "interop")
        c.log.directory = dir.path
        c.exporters = []
        configure(&c)
        return try await TelemetryFlowClient(configuration: c)
    }

    @Test func headersRoundTripWithOpenTelemetryPython() async throws {
        let dir = LogDirectory()
        let telemetry = try await Self.client(dir)
        // Python → Swift: the child of the extracted context continues Python's trace.
        let produced = try Self.python(["produce"]).compactMapValues { $0 as? String }
        var incoming = ServiceContext.topLevel
        telemetry.extract(produced, into: &incoming)
        #expect(incoming.spanContext?.traceID.hex == "5b8aa5a2d2c872e8321cf37308d69df2")
        #expect(incoming.spanContext?.spanID.hex == "051581bf3cb55c13")
        #expect(incoming.spanContext?.traceState == "vendor=opaque1")
        #expect(incoming.baggage?["tenant"] == "acme" && incoming.baggage?["user.id"] == "42")
        // Swift → Python: what a child span injects, Python reads as the same trace, this span as the parent.
        var outgoing: [String: String] = [:]
        let child = telemetry.withSpan("call downstream", kind: .client, context: incoming) { span -> TelemetrySpan in
            telemetry.inject(into: &outgoing)
            return span
        }
        #expect(child.parentSpanID.hex == "051581bf3cb55c13")
        let data = try JSONSerialization.data(withJSONObject: outgoing)
        let consumed = try Self.python(["consume", String(decoding: data, as: UTF8.self)])
        #expect(consumed["valid"] as? Bool == true && consumed["remote"] as? Bool == true && consumed["sampled"] as? Bool == true)
        #expect(consumed["traceId"] as? String == "5b8aa5a2d2c872e8321cf37308d69df2")
        #expect(consumed["spanId"] as? String == child.context.spanID.hex)
        #expect(consumed["traceState"] as? String == "vendor=opaque1")
        #expect(consumed["baggage"] as? [String: String] == ["tenant": "acme", "user.id": "42"])
        await telemetry.shutdown()
    }

    /// The API key secret reaches the request headers only: not the log on disk, not the statistics.
    @Test func theSecretNeverReachesTheLogOnDisk() async throws {
        let dir = LogDirectory()
        let secret = "tfs_q7Rk2mZp9xWvDISK"
        let telemetry = try await TelemetryFlowBuilder()
            .withEnvironment(variables: ["TELEMETRYFLOW_API_KEY_ID": "tfk_abcdefgh", "TELEMETRYFLOW_API_KEY_SECRET": secret,
                                         "TELEMETRYFLOW_DATA_DIR": dir.path, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"])
            .build()
        telemetry.log(.info, "hello")
        telemetry.withSpan("work") { _ in }
        await telemetry.flush()
        #expect(!"\(String(describing: telemetry.statistics))".contains("q7Rk2mZp9xWv"))
        await telemetry.shutdown(timeout: .milliseconds(200))
        var scanned = 0
        for name in try FileManager.default.subpathsOfDirectory(atPath: dir.path) {
            guard let data = FileManager.default.contents(atPath: dir.path + "/" + name) else { continue }
            scanned += 1
            #expect(data.range(of: Data("q7Rk2mZp9xWv".utf8)) == nil, "\(name) holds the secret")
        }
        #expect(scanned >= 3, "the log's files were read")
    }

    struct Receipt: SignalTypePlugin {
        let signal = try! SignalType("shop.receipt")
        func validate(_ record: CustomSignalRecord) throws {
            guard !record.body.isEmpty else { throw TelemetryFlowError(.invalidArgument, "a receipt has a body") }
        }
    }

    @Test func customSignalsAreValidatedByTheirPlugin() async throws {
        let dir = LogDirectory()
        let registry = PluginRegistry.standard()
        try registry.register(signalType: Receipt())
        var c = TelemetryFlow.Configuration(service: "interop")
        c.log.directory = dir.path
        c.exporters = []
        let telemetry = try await TelemetryFlowClient(configuration: c, registry: registry)
        let receipt = try SignalType("shop.receipt")
        telemetry.record(receipt, name: "sale", body: Array("total=12.50".utf8), attributes: ["store": "berlin"])
        telemetry.record(receipt, name: "empty", body: [])
        telemetry.record(try SignalType("nobody.registered"), name: "x", body: [1])
        let log = try #require(telemetry.eventLog)
        _ = try await log.flush()
        let customs = try log.read(after: 0, maxCount: 100).compactMap { event -> CustomSignalRecord? in
            guard case .custom(let record)? = try? event.decode() else { return nil }
            return record
        }
        #expect(customs.map(\.name) == ["sale"])
        #expect(customs.first?.attributes["store"] == .string("berlin"))
        #expect(telemetry.statistics?.log.dropped[.invalidCustomRecord] == 2)
        await telemetry.shutdown()
    }

    @Test func processorsRunBeforeTheAppendWithCountedDrops() async throws {
        let dir = LogDirectory()
        let telemetry = try await Self.client(dir) { c in
            c.processors = [.redaction(keys: ["password"])]
            c.limits.attributeCount = 2
            c.limits.attributeValueLength = 4
            c.rateLimit = 1000
        }
        telemetry.log(.info, "login", ["user": "alice", "password": "hunter2", "extra": "dropped"])
        telemetry.withSpan("login", attributes: ["password": "hunter2"]) { _ in }
        let log = try #require(telemetry.eventLog)
        _ = try await log.flush()
        let events = try log.read(after: 0, maxCount: 100).compactMap { try? $0.decode() }
        let record = try #require(events.compactMap { event -> LogRecordData? in
            if case .log(let r, _) = event { return r }
            return nil
        }.first)
        #expect(record.attributes.count == 2 && record.droppedAttributesCount == 1)
        #expect(record.attributes["user"] == .string("alic"), "values are cut to the length limit")
        #expect(record.attributes["password"] == .string("[REDACTED]"), "the limits run first, then the configured processors")
        let span = try #require(events.compactMap { event -> SpanData? in
            if case .spanEnded(let s, _) = event { return s }
            return nil
        }.first)
        #expect(span.attributes["password"] != .string("hunter2"))
        // Beyond the rate limit, calls are dropped and counted.
        for _ in 0..<3000 { telemetry.counter("burst").add(1) }
        #expect((telemetry.statistics?.log.dropped[.rateLimited] ?? 0) >= 1000)
        await telemetry.shutdown()
    }

    /// The span limits apply where a span is recorded: at its start (the started record is what a crash-cut span
    /// is exported from) and on every later mutation, so both records agree.
    @Test func spanLimitsApplyToTheStartedAndTheEndedRecord() async throws {
        let dir = LogDirectory()
        let telemetry = try await Self.client(dir) { c in
            c.limits.spanAttributeCount = 2
            c.limits.spanAttributeValueLength = 3
            c.limits.attributeValueLength = 5
            c.limits.spanEventCount = 1
            c.limits.eventAttributeCount = 1
            c.limits.spanLinkCount = 1
            c.limits.linkAttributeCount = 1
        }
        let other = SpanContext(traceID: TraceID(high: 1, low: 2), spanID: SpanID(3))
        let span = telemetry.startSpan(
            "limited", attributes: ["a": "abcdef", "b": 7, "c": "dropped", "": "empty key"],
            links: [SpanLink(traceID: other.traceID, spanID: other.spanID, attributes: ["x": "xyzxyz", "y": 1]),
                    SpanLink(traceID: other.traceID, spanID: SpanID(4))],
            context: .topLevel)
        span.setAttribute("b", "replaced")
        span.setAttribute("d", "also dropped")
        span.addEvent("first", attributes: ["e": "eeeeeeee", "f": 2])
        span.addEvent("second")
        span.end()
        // Within the limits, a set is recorded as it is.
        telemetry.withSpan("plain", attributes: ["k": "v", "n": 1]) { _ in }
        let log = try #require(telemetry.eventLog)
        _ = try await log.flush()
        let events = try log.read(after: 0, maxCount: 100).compactMap { try? $0.decode() }
        let started = try #require(events.compactMap { event -> SpanData? in
            if case .spanStarted(let s, _) = event, s.name == "limited" { return s }
            return nil
        }.first)
        #expect(started.attributes.elements == [Attribute("a", "abc"), Attribute("b", 7)], "count and span value length at the start")
        #expect(started.droppedAttributesCount == 1, "the third attribute is dropped; an empty key is ignored")
        #expect(started.links.count == 1 && started.droppedLinksCount == 1)
        #expect(started.links.first?.attributes.elements == [Attribute("x", "xyzxy")], "link attributes: their count and the general length")
        #expect(started.links.first?.droppedAttributesCount == 1)
        let ended = try #require(events.compactMap { event -> SpanData? in
            if case .spanEnded(let s, _) = event, s.name == "limited" { return s }
            return nil
        }.first)
        #expect(ended.attributes.elements == [Attribute("a", "abc"), Attribute("b", "rep")], "a later value is cut too")
        #expect(ended.droppedAttributesCount == 2)
        #expect(ended.events.map(\.name) == ["first"] && ended.droppedEventsCount == 1)
        #expect(ended.events.first?.attributes.elements == [Attribute("e", "eeeee")] && ended.events.first?.droppedAttributesCount == 1)
        #expect(ended.links == started.links && ended.droppedLinksCount == 1)
        let plain = try #require(events.compactMap { event -> SpanData? in
            if case .spanEnded(let s, _) = event, s.name == "plain" { return s }
            return nil
        }.first)
        #expect(plain.attributes.elements == [Attribute("k", "v"), Attribute("n", 1)] && plain.droppedAttributesCount == 0)
        await telemetry.shutdown()
    }
}
