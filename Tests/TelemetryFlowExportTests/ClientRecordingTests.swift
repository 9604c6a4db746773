import Foundation
import Logging
import ServiceLifecycle
import Testing
@testable import TelemetryFlow

/// The recording API end to end: every instrument, severity and span shape arrives at the real OTLP receiver
/// (official opentelemetry-proto) with the right content. Each test starts a receiver of its own: the shared one
/// belongs to the status-matrix suites, which script its answers.
@Suite(.serialized) struct ClientRecordingTests {
    struct Failure: Error, CustomStringConvertible {
        var description: String { "payment declined" }
    }

    /// A client on a fresh log that exports to `receiver` over OTLP/HTTP protobuf, quickly.
    static func client(_ receiver: Receiver, _ dir: LogDirectory, configure: (inout TelemetryFlow.Configuration) -> Void = { _ in }) async throws -> TelemetryFlowClient {
        var c = TelemetryFlow.Configuration(service: "recording-test", version: "1.0")
        c.log.directory = dir.path
        c.log.durability = .never
        var exporter = ExporterConfiguration.otlp(OTLPExporterConfiguration(endpoint: receiver.endpoint("http/protobuf")))
        exporter.policy.scheduleDelay = .milliseconds(20)
        exporter.policy.initialBackoff = .milliseconds(50)
        c.exporters = [exporter]
        c.metricExportInterval = .seconds(3600)
        configure(&c)
        return try await TelemetryFlowClient(configuration: c)
    }

    @Test func instrumentsArriveWithExactValues() async throws {
        let receiver = try Receiver()
        let dir = LogDirectory()
        let telemetry = try await Self.client(receiver, dir) { $0.metrics.histogramBoundsByInstrument["payload"] = [10, 100] }
        telemetry.start()
        let requests = telemetry.counter("http.requests", unit: "{request}", description: "requests served")
        for _ in 0..<5 { requests.add(1, ["route": "/cart"]) }
        requests.add(2.5, ["route": "/pay"])
        requests.add(-1, ["route": "/cart"])  // refused: counters only go up
        let queue = telemetry.upDownCounter("queue.depth")
        queue.add(10)
        queue.add(-3)
        let temperature = telemetry.gauge("temperature", unit: "Cel")
        temperature.record(21.5)
        temperature.record(19.0)
        temperature.record(23)
        let latency = telemetry.histogram("latency", unit: "ms")
        for v in [1.0, 7, 30, 3000, 20_000] { latency.record(v) }
        let payload = telemetry.histogram("payload", unit: "By")
        for v in [5, 10, 11, 100, 101, 5000] { payload.record(v) }
        #expect(await telemetry.forceExport(timeout: .seconds(30)))
        let stats = try await receiver.waitFor { $0["points"] ?? 0 >= 6 }
        #expect(stats["points"] == 6)
        let metrics = try #require(try await receiver.received()["metrics"] as? [[String: Any]])
        func point(_ name: String, _ route: String? = nil) -> [String: Any]? {
            metrics.first { $0["name"] as? String == name && (route == nil || ($0["attributes"] as? [String: Any])?["route"] as? String == route) }
        }
        #expect(point("http.requests", "/cart")?["value"] as? Int == 5)
        #expect(point("http.requests", "/cart")?["monotonic"] as? Bool == true)
        #expect(point("http.requests", "/pay")?["value"] as? Double == 2.5)
        #expect(point("queue.depth")?["value"] as? Int == 7)
        #expect(point("queue.depth")?["monotonic"] as? Bool == false)
        #expect(point("temperature")?["kind"] as? String == "gauge")
        #expect(point("temperature")?["value"] as? Int == 23, "the last value, never a sum: \(point("temperature") ?? [:])")
        let l = try #require(point("latency"))
        #expect(l["explicitBounds"] as? [Double] == MetricAggregationConfiguration.defaultBounds)
        // 1 → [0,5]; 7 → (5,10]; 30 → (25,50]; 3000 → (2500,5000]; 20000 → (10000, +inf).
        #expect(l["bucketCounts"] as? [Int] == [0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1])
        #expect(l["count"] as? Int == 5 && l["sum"] as? Double == 23_038)
        let p = try #require(point("payload"))
        #expect(p["explicitBounds"] as? [Double] == [10, 100])
        #expect(p["bucketCounts"] as? [Int] == [2, 2, 2])
        #expect(point("http.requests")?["resource"].map { ($0 as? [String: Any])?["service.name"] as? String } == "recording-test")
        let dropped = telemetry.statistics?.log.dropped[.invalidMeasurement]
        #expect(dropped == 1)
        await telemetry.shutdown()
    }

    @Test func everySeverityArrivesWithTheCurrentSpan() async throws {
        let receiver = try Receiver()
        let dir = LogDirectory()
        let telemetry = try await Self.client(receiver, dir)
        telemetry.start()
        let severities: [Severity] = [.trace, .debug, .info, .warn, .error, .fatal]
        let span = telemetry.withSpan("request", kind: .server) { span in
            for (i, severity) in severities.enumerated() {
                telemetry.log(severity, "message \(i)", ["i": .int(Int64(i))], error: severity == .error ? Failure() : nil)
            }
            return span
        }
        telemetry.log(.info, "outside")
        #expect(await telemetry.forceExport(timeout: .seconds(30)))
        _ = try await receiver.waitFor { $0["logs"] ?? 0 >= 7 }
        let logs = try #require(try await receiver.received()["logs"] as? [[String: Any]])
        for (i, severity) in severities.enumerated() {
            let record = try #require(logs.first { $0["body"] as? String == "message \(i)" })
            #expect(record["severityText"] as? String == severity.text)
            #expect(record["traceId"] as? String == span.context.traceID.hex)
            #expect(record["spanId"] as? String == span.context.spanID.hex)
            #expect((record["attributes"] as? [String: Any])?["i"] as? Int == i)
            if severity == .error {
                #expect((record["attributes"] as? [String: Any])?["exception.message"] as? String == "payment declined")
            }
        }
        let outside = try #require(logs.first { $0["body"] as? String == "outside" })
        #expect(outside["traceId"] as? String ?? "" == "")
        await telemetry.shutdown()
    }

    /// Nested `withSpan` across `await`, task groups and a detached task given the context: the right tree.
    @Test func nestedSpansFormTheRightTree() async throws {
        let receiver = try Receiver()
        let dir = LogDirectory()
        let telemetry = try await Self.client(receiver, dir)
        telemetry.start()
        do {
            try await telemetry.withSpan("root", kind: .server, attributes: ["http.route": "/cart"]) { root in
                root.setAttribute("items", 3)
                try await Task.sleep(for: .milliseconds(5))
                await telemetry.withSpan("after-await") { _ in try? await Task.sleep(for: .milliseconds(1)) }
                await withTaskGroup(of: Void.self) { group in
                    for n in 0..<3 {
                        group.addTask { telemetry.withSpan("child-\(n)") { $0.addEvent("tick", attributes: ["n": .int(Int64(n))]) } }
                    }
                }
                let context = ServiceContext.current
                await Task.detached { telemetry.withSpan("detached", context: context) { _ in } }.value
                root.addLink(SpanContext(traceID: TraceID(high: 1, low: 2), spanID: SpanID(3)), attributes: ["why": "batch"])
                throw Failure()
            }
        } catch {}
        let unsampled = telemetry.startSpan("lonely", context: ServiceContext.topLevel)
        unsampled.end()
        #expect(await telemetry.forceExport(timeout: .seconds(30)))
        _ = try await receiver.waitFor { $0["spans"] ?? 0 >= 7 }
        let spans = try #require(try await receiver.received()["spans"] as? [[String: Any]])
        func span(_ name: String) throws -> [String: Any] { try #require(spans.first { $0["name"] as? String == name }, "\(name)") }
        let root = try span("root")
        let rootID = try #require(root["spanId"] as? String)
        let traceID = try #require(root["traceId"] as? String)
        #expect(root["parentSpanId"] as? String ?? "" == "")
        #expect(root["kind"] as? String == "SPAN_KIND_SERVER")
        #expect((root["status"] as? [String: Any])?["code"] as? String == "STATUS_CODE_ERROR")
        #expect((root["attributes"] as? [String: Any])?["items"] as? Int == 3)
        let exception = (root["events"] as? [[String: Any]])?.first { $0["name"] as? String == "exception" }
        #expect((exception?["attributes"] as? [String: Any])?["exception.message"] as? String == "payment declined")
        #expect((root["links"] as? [[String: Any]])?.first?["spanId"] as? String == "0000000000000003")
        for name in ["after-await", "child-0", "child-1", "child-2", "detached"] {
            let child = try span(name)
            #expect(child["parentSpanId"] as? String == rootID, "\(name)")
            #expect(child["traceId"] as? String == traceID, "\(name)")
            #expect((child["end"] as? Int ?? 0) >= (child["start"] as? Int ?? 0))
        }
        #expect(((try span("child-1"))["events"] as? [[String: Any]])?.first?["name"] as? String == "tick")
        #expect(try span("lonely")["traceId"] as? String != traceID)
        await telemetry.shutdown()
    }

    @Test func sampledOutSpansArriveNowhereAndAreCounted() async throws {
        let receiver = try Receiver()
        let dir = LogDirectory()
        let telemetry = try await Self.client(receiver, dir) { $0.sampler = .traceIDRatio(0) }
        telemetry.start()
        for n in 0..<10 {
            telemetry.withSpan("dropped-\(n)") { span in
                #expect(!span.isRecording)
                #expect(span.context.isValid && !span.context.isSampled)
                span.setAttribute("ignored", true)
            }
        }
        // Children of an unsampled parent follow it under the parent-based sampler.
        let parentBased = try await Self.client(receiver, LogDirectory()) { $0.sampler = .parentBased(root: .alwaysOn) }
        var context = ServiceContext.topLevel
        W3CPropagation.extract(["traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"], into: &context)
        parentBased.withSpan("child-of-unsampled", context: context) { #expect(!$0.isRecording) }
        telemetry.counter("marker").add(1)
        #expect(await telemetry.forceExport(timeout: .seconds(30)))
        _ = try await receiver.waitFor { $0["points"] ?? 0 >= 1 }
        let stats = try await receiver.stats()
        #expect(stats["spans"] == 0)
        #expect(telemetry.statistics?.log.dropped[.sampledOut] == 10)
        #expect(parentBased.statistics?.log.dropped[.sampledOut] == 1)
        await telemetry.shutdown()
        await parentBased.shutdown()
    }

    /// Inject then extract gives the same context; a traceparent from another implementation is honoured.
    @Test func propagationRoundTripsThroughHeaders() async throws {
        let dir = LogDirectory()
        var c = TelemetryFlow.Configuration(service: "propagation")
        c.log.directory = dir.path
        c.exporters = []
        let telemetry = try await TelemetryFlowClient(configuration: c)
        var headers: [String: String] = [:]
        let sent = telemetry.withSpan("outgoing", kind: .client) { span -> SpanContext in
            var context = ServiceContext.current ?? .topLevel
            context.baggage = Baggage(["user.id": "42", "note": "a b,c"])
            W3CPropagation.inject(context, into: &headers)
            return span.context
        }
        #expect(headers["traceparent"] == "00-\(sent.traceID.hex)-\(sent.spanID.hex)-01")
        var received = ServiceContext.topLevel
        W3CPropagation.extract(headers, into: &received)
        #expect(received.spanContext?.traceID == sent.traceID && received.spanContext?.spanID == sent.spanID)
        #expect(received.spanContext?.isRemote == true && received.spanContext?.isSampled == true)
        #expect(received.baggage?["user.id"] == "42" && received.baggage?["note"] == "a b,c")
        let child = telemetry.withSpan("server", kind: .server, context: received) { $0 }
        // The client's own inject/extract follow the configured propagators.
        var clientHeaders: [String: String] = [:]
        telemetry.withSpan("via-client") { _ in telemetry.inject(into: &clientHeaders) }
        #expect(clientHeaders["traceparent"] != nil)
        var baggageOnly = c
        baggageOnly.propagators = [.baggage]
        baggageOnly.log.directory = dir.path + "/b"
        let limited = try await TelemetryFlowClient(configuration: baggageOnly)
        var limitedHeaders: [String: String] = [:]
        var withBaggage = received
        withBaggage.baggage = Baggage(["k": "v"])
        limited.inject(into: &limitedHeaders, context: withBaggage)
        #expect(limitedHeaders == ["baggage": "k=v"])
        await limited.shutdown()
        #expect(child.parentSpanID == sent.spanID && child.context.traceID == sent.traceID)

        // A traceparent and tracestate as the W3C specification's example (and every OpenTelemetry SDK) writes them.
        var foreign = ServiceContext.topLevel
        W3CPropagation.extract(["TraceParent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "congo=t61rcWkgMzE"], into: &foreign)
        #expect(foreign.spanContext?.traceID.hex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(foreign.spanContext?.spanID.hex == "00f067aa0ba902b7")
        #expect(foreign.spanContext?.traceState == "congo=t61rcWkgMzE")
        // Malformed: ignored, the next span starts a new trace.
        for bad in ["00-00000000000000000000000000000000-00f067aa0ba902b7-01", "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "garbage"] {
            var context = ServiceContext.topLevel
            W3CPropagation.extract(["traceparent": bad], into: &context)
            #expect(context.spanContext == nil, "\(bad)")
        }
        await telemetry.shutdown()
    }

    /// Events not exported before `shutdown` (the backend was down) arrive after the next start.
    @Test func whatShutdownCouldNotExportArrivesAfterTheNextStart() async throws {
        let receiver = try Receiver()
        try await receiver.setDown(true)
        let dir = LogDirectory()
        let first = try await Self.client(receiver, dir)
        first.start()
        for n in 0..<20 { first.log(.info, "kept \(n)") }
        await first.shutdown(timeout: .milliseconds(500))
        #expect(try await receiver.stats()["logs"] == 0)
        first.log(.info, "after shutdown")
        #expect(first.statistics?.log.dropped[.afterShutdown] == 1)
        try await receiver.setDown(false)
        let second = try await Self.client(receiver, dir)
        second.start()
        _ = try await receiver.waitFor { $0["logs"] ?? 0 >= 20 }
        let logs = try #require(try await receiver.received()["logs"] as? [[String: Any]])
        #expect(Set(logs.compactMap { $0["body"] as? String }) == Set((0..<20).map { "kept \($0)" }))
        await second.shutdown()
    }

    /// In a `ServiceGroup`: the client exports while the group runs, and its graceful shutdown exports what was
    /// recorded (metrics collected once more) before the log closes.
    @Test func aServiceGroupRunsTheClientAndShutsItDownGracefully() async throws {
        let receiver = try Receiver()
        let dir = LogDirectory()
        let telemetry = try await Self.client(receiver, dir)
        let group = ServiceGroup(services: [telemetry], logger: Logger(label: "client-test"))
        let running = Task { try await group.run() }
        telemetry.log(.info, "while running")
        _ = try await receiver.waitFor { $0["logs"] ?? 0 >= 1 }
        telemetry.counter("jobs").add(3)
        telemetry.withSpan("last work") { _ in }
        await group.triggerGracefulShutdown()
        try await running.value
        let stats = try await receiver.stats()
        #expect(stats["spans"] == 1 && stats["points"] == 1, "\(stats)")
        let metrics = try #require(try await receiver.received()["metrics"] as? [[String: Any]])
        #expect(metrics.first?["value"] as? Int == 3)
        telemetry.log(.info, "after")
        #expect(telemetry.statistics?.log.dropped[.afterShutdown] == 1)
    }

    @Test func aDisabledClientOpensNothingAndRecordsNothing() async throws {
        let dir = LogDirectory()
        let telemetry = try await TelemetryFlowBuilder()
            .withEnvironment(variables: ["OTEL_SDK_DISABLED": "true", "TELEMETRYFLOW_DATA_DIR": dir.path + "/never"])
            .build()
        telemetry.counter("x").add(1)
        telemetry.withSpan("y") { #expect(!$0.isRecording) }
        telemetry.log(.info, "z")
        #expect(telemetry.eventLog == nil)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/never"))
        await telemetry.shutdown()
    }
}
