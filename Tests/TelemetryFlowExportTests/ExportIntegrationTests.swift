import Foundation
import Testing
import TelemetryFlow
import TelemetryFlowCore
import TelemetryFlowStorage

func makeLog(_ dir: String) throws -> EventLog {
    var configuration = LogConfiguration(directory: dir)
    configuration.durability = .never
    configuration.segmentSize = 4 << 20
    configuration.quotaBytes = 512 << 20
    return try EventLog(configuration)
}

/// The resource of the test "process": every pipeline talking to a receiver is given it.
let testResource = Resource(attributes: ["service.name": "export-tests", "host.cores": .int(2)])

func exporterConfiguration(_ name: String, _ protocolName: String, _ receiver: Receiver) -> ExporterConfiguration {
    var otlp = OTLPExporterConfiguration(endpoint: receiver.endpoint(protocolName), protocol: ExportProtocol(protocolName))
    otlp.timeout = .seconds(5)
    var c = ExporterConfiguration.otlp(otlp, name: name)
    c.policy.scheduleDelay = .milliseconds(20)
    c.policy.initialBackoff = .milliseconds(50)
    c.policy.maxBackoff = .milliseconds(400)
    c.policy.breakerCooldown = .milliseconds(300)
    return c
}

let testScope = InstrumentationScope(name: "export-tests", version: "1.2.3")

func sampleSpan(_ n: Int) -> SpanData {
    var span = SpanData(
        traceID: TraceID(high: 0xABCD, low: UInt64(n) + 1), spanID: SpanID(UInt64(n) + 100), name: "GET /items/\(n)",
        kind: .server, startTimeUnixNano: 1_700_000_000_000_000_000 + UInt64(n), endTimeUnixNano: 1_700_000_000_002_000_000 + UInt64(n),
        attributes: ["http.route": "/items/:id", "n": .int(Int64(n)), "ratio": .double(0.25), "ok": true, "tags": .stringArray(["a", "b"])])
    span.parentSpanID = SpanID(7)
    span.events = [SpanEvent(name: "cache.miss", timeUnixNano: 1_700_000_000_001_000_000, attributes: ["key": .string("item-\(n)")])]
    span.links = [SpanLink(traceID: TraceID(high: 1, low: 2), spanID: SpanID(3), attributes: ["link.kind": "follows"])]
    span.status = n % 2 == 0 ? SpanStatus(.error, message: "boom \(n)") : .ok
    return span
}

func sampleLog(_ severity: UInt8) -> LogRecordData {
    var record = LogRecordData(
        timeUnixNano: 1_700_000_000_000_000_000 + UInt64(severity), severity: try! Severity(number: severity),
        body: .string("log with severity \(severity)"), attributes: ["severity.n": .int(Int64(severity))])
    record.traceID = TraceID(high: 0xABCD, low: 1)
    record.spanID = SpanID(100)
    return record
}

func sampleMetrics(through: UInt64) -> CollectedMetrics {
    var histogram = HistogramPoint(bounds: [1, 5, 10])
    for v in [0.5, 3, 7, 12] { histogram.record(v) }
    return CollectedMetrics(foldedThrough: through, timeUnixNano: 1_700_000_010_000_000_000, metrics: [
        MetricData(name: "requests", unit: "1", scope: testScope, kind: .sum(monotonic: true, temporality: .cumulative), points: [
            MetricPoint(attributes: ["route": "/a"], startTimeUnixNano: 1_700_000_000_000_000_000, timeUnixNano: 1_700_000_010_000_000_000, value: .number(.int(42))),
        ]),
        MetricData(name: "temperature", unit: "Cel", scope: testScope, kind: .gauge, points: [
            MetricPoint(attributes: [:], startTimeUnixNano: 0, timeUnixNano: 1_700_000_010_000_000_000, value: .number(.double(21.5))),
        ]),
        MetricData(name: "latency", unit: "ms", scope: testScope, kind: .histogram(temporality: .delta), points: [
            MetricPoint(attributes: ["route": "/b"], startTimeUnixNano: 1_700_000_000_000_000_000, timeUnixNano: 1_700_000_010_000_000_000, value: .histogram(histogram)),
        ]),
    ])
}

/// Appends the mixed workload and returns the last sequence.
func recordWorkload(_ log: EventLog, spans: Int = 10) async throws -> UInt64 {
    for n in 0..<spans { _ = log.append(.spanEnded(sampleSpan(n), scope: testScope), timestampUnixNano: UInt64(n)) }
    for severity in UInt8(1)...24 { _ = log.append(.log(sampleLog(severity), scope: testScope), timestampUnixNano: 1) }
    _ = log.append(.metricsCollected(sampleMetrics(through: 0)), timestampUnixNano: 2)
    return try await log.flush()
}

@Suite(.serialized) struct ExportIntegrationTests {
    @Test(arguments: ["grpc", "http/protobuf", "http/json"])
    func everySignalArrivesWithExactlyTheRecordedContent(protocolName: String) async throws {
        let receiver = try Receiver()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tflow-export-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try makeLog(dir)
        defer { log.close() }
        let last = try await recordWorkload(log)
        var configuration = exporterConfiguration("otlp", protocolName, receiver)
        configuration.otlp!.compression = protocolName == "http/json" ? .none : .gzip
        configuration.otlp!.credentials = try Credentials(keyID: "tfk_test12345", keySecret: "tfs_secret12345")
        configuration.otlp!.headers = ["x-tenant": "t1"]
        let pipeline = try await ExportPipeline(log: log, exporters: [configuration], registry: .standard(), resource: testResource)
        pipeline.start()
        #expect(await pipeline.waitUntilHandled(through: last, timeout: .seconds(30)), "\(pipeline.status)")
        await pipeline.stop()
        let status = try #require(pipeline.status.first)
        #expect(status.deadLetteredBatches == 0 && status.rejectedItems == 0, "\(status)")

        let received = try await receiver.received()
        let spans = try #require(received["spans"] as? [[String: Any]])
        #expect(spans.count == 10)
        for (n, item) in spans.enumerated() {
            let span = sampleSpan(n)
            #expect(item["traceId"] as? String == span.traceID.hex)
            #expect(item["spanId"] as? String == span.spanID.hex)
            #expect(item["parentSpanId"] as? String == "0000000000000007")
            #expect(item["name"] as? String == span.name)
            #expect(item["kind"] as? String == "SPAN_KIND_SERVER")
            #expect(item["start"] as? Int == Int(span.startTimeUnixNano))
            #expect(item["end"] as? Int == Int(span.endTimeUnixNano))
            #expect(item["scope"] as? String == "export-tests" && item["scopeVersion"] as? String == "1.2.3")
            let resource = try #require(item["resource"] as? [String: Any])
            #expect(resource["service.name"] as? String == "export-tests" && resource["host.cores"] as? Int == 2)
            let attributes = try #require(item["attributes"] as? [String: Any])
            #expect(attributes["http.route"] as? String == "/items/:id" && attributes["n"] as? Int == n)
            #expect(attributes["ratio"] as? Double == 0.25 && attributes["ok"] as? Bool == true)
            #expect(attributes["tags"] as? [String] == ["a", "b"])
            let events = try #require(item["events"] as? [[String: Any]])
            #expect(events.count == 1 && events[0]["name"] as? String == "cache.miss")
            #expect((events[0]["attributes"] as? [String: Any])?["key"] as? String == "item-\(n)")
            let links = try #require(item["links"] as? [[String: Any]])
            #expect(links.count == 1 && links[0]["spanId"] as? String == "0000000000000003")
            let statusItem = try #require(item["status"] as? [String: Any])
            #expect(statusItem["code"] as? String == (n % 2 == 0 ? "STATUS_CODE_ERROR" : "STATUS_CODE_OK"))
            #expect(statusItem["message"] as? String == (n % 2 == 0 ? "boom \(n)" : ""))
        }
        let logs = try #require(received["logs"] as? [[String: Any]])
        #expect(logs.count == 24)
        for (i, item) in logs.enumerated() {
            let record = sampleLog(UInt8(i + 1))
            #expect(item["body"] as? String == "log with severity \(i + 1)")
            #expect(item["time"] as? Int == Int(record.timeUnixNano))
            #expect(item["traceId"] as? String == record.traceID.hex && item["spanId"] as? String == record.spanID.hex)
            #expect((item["attributes"] as? [String: Any])?["severity.n"] as? Int == i + 1)
            #expect((item["severityNumber"] as? String)?.hasPrefix("SEVERITY_NUMBER_") == true)
        }
        let points = try #require(received["metrics"] as? [[String: Any]])
        #expect(points.count == 3)
        let sum = try #require(points.first { $0["name"] as? String == "requests" })
        #expect(sum["kind"] as? String == "sum" && sum["value"] as? Int == 42 && sum["monotonic"] as? Bool == true)
        #expect(sum["temporality"] as? String == "AGGREGATION_TEMPORALITY_CUMULATIVE")
        let gauge = try #require(points.first { $0["name"] as? String == "temperature" })
        #expect(gauge["kind"] as? String == "gauge" && gauge["value"] as? Double == 21.5)
        let histogram = try #require(points.first { $0["name"] as? String == "latency" })
        #expect(histogram["count"] as? Int == 4 && histogram["sum"] as? Double == 22.5)
        #expect(histogram["bucketCounts"] as? [Int] == [1, 1, 1, 1] && histogram["explicitBounds"] as? [Double] == [1, 5, 10])
        #expect(histogram["min"] as? Double == 0.5 && histogram["max"] as? Double == 12)
        #expect(histogram["temporality"] as? String == "AGGREGATION_TEMPORALITY_DELTA")
        let headers = try #require(received["headers"] as? [[String: String]])
        for h in headers {
            let lower = Dictionary(h.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
            #expect(lower["x-telemetryflow-key-id"] == "tfk_test12345" && lower["x-telemetryflow-key-secret"] == "tfs_secret12345")
            #expect(lower["x-tenant"] == "t1")
        }
        #expect((received["protocols"] as? [String])?.allSatisfy { $0 == protocolName } == true)
    }
}

@Suite(.serialized) struct DemoExportTests {
    @Test(arguments: ["grpc", "http/protobuf", "http/json"])
    func demoDeliversItsWorkloadToTheConfiguredEndpoint(protocolName: String) async throws {
        let receiver = try Receiver()
        let dir = LogDirectory()
        let run = try await runChild(["demo", "--dir", dir.path + "/log", "--requests", "40"], killAfter: nil, environment: [
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint(protocolName), "OTEL_EXPORTER_OTLP_PROTOCOL": protocolName,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-demo=yes%21",
        ])
        #expect(run.status == 0 && run.output.contains("every recorded event was delivered"), "\(run.output.suffix(600))")
        let stats = try await receiver.stats()
        #expect(stats["spans"] == 40 && stats["logs"] == 40 && (stats["points"] ?? 0) > 0, "\(stats)")
        let received = try await receiver.received()
        let headers = try #require(received["headers"] as? [[String: String]])
        #expect(headers.allSatisfy { $0.contains { $0.key.lowercased() == "x-demo" && $0.value == "yes!" } })
    }

    @Test func environmentConfigurationIsValidatedWithClearErrors() throws {
        func fromEnvironment(_ env: [String: String]) throws -> TelemetryFlow.Configuration {
            var c = TelemetryFlow.Configuration()
            try c.applyEnvironment(env)
            return c
        }
        #expect(try fromEnvironment([:]).exporters.first?.otlp?.endpoint == nil)
        let c = try #require(try fromEnvironment([
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_SERVICE_NAME": "checkout",
            "TELEMETRYFLOW_API_KEY_ID": "tfk_abcdefgh", "TELEMETRYFLOW_API_KEY_SECRET": "tfs_abcdefgh",
        ]).exporters.first)
        #expect(c.otlp!.compression == .gzip && c.otlp!.timeout == .milliseconds(2500) && c.otlp!.protocol == .httpProtobuf)
        #expect(c.otlp!.requestHeaders["X-TelemetryFlow-Key-ID"] == "tfk_abcdefgh")
        // The resource belongs to the process, read once from the same variables.
        let resource = try fromEnvironment(["OTEL_SERVICE_NAME": "checkout", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=ignored"]).resource
        #expect(resource.attributes["service.name"] == .string("checkout") && resource.attributes["deployment.environment.name"] == .string("prod"))
        #expect(try fromEnvironment([:]).resource.attributes["service.name"] == .string("unknown_service:swift"))
        let badAttributes = #expect(throws: TelemetryFlowError.self) { try fromEnvironment(["OTEL_RESOURCE_ATTRIBUTES": "novalue"]) }
        #expect(badAttributes?.code == .invalidConfiguration)
        let protocolError = #expect(throws: TelemetryFlowError.self) { try fromEnvironment(["OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"]) }
        #expect(protocolError?.code == .invalidConfiguration && protocolError?.message.contains("OTEL_EXPORTER_OTLP_PROTOCOL") == true)
        let halfKey = #expect(throws: TelemetryFlowError.self) { try fromEnvironment(["TELEMETRYFLOW_API_KEY_ID": "tfk_abcdefgh"]) }
        #expect(halfKey?.code == .invalidCredentials)
        let timeout = #expect(throws: TelemetryFlowError.self) { try fromEnvironment(["OTEL_EXPORTER_OTLP_TIMEOUT": "-1"]) }
        #expect(timeout?.code == .invalidConfiguration && timeout?.message.contains("OTEL_EXPORTER_OTLP_TIMEOUT") == true)
        // An endpoint without a scheme is refused where it is read.
        let noScheme = #expect(throws: TelemetryFlowError.self) { try fromEnvironment(["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"]) }
        #expect(noScheme?.message.contains("http:// or https://") == true)
        // Set in code, it is refused by the HTTP protocols when the exporter is built.
        let scheme = #expect(throws: TelemetryFlowError.self) { try PluginRegistry.standard().makeExporter(.otlp(OTLPExporterConfiguration(endpoint: "collector:4318"))) }
        #expect(scheme?.code == .invalidConfiguration)
    }
}

@Suite struct RegistryTests {
    struct NullExporter: TelemetryExporter {
        let acceptedSignals: Set<SignalType> = [.logs]
        func export(_ batch: EventBatch) async -> ExportResult { .success }
    }

    struct NullPlugin: ExporterPlugin {
        let name = "null"
        func makeExporter(_ configuration: ExporterConfiguration, context: ExporterContext) throws -> any TelemetryExporter {
            try configuration.checkOptions([])
            return NullExporter()
        }
    }

    @Test func unknownAndDuplicateNamesAreClearErrors() throws {
        let registry = PluginRegistry.standard()
        #expect(registry.exporterNames == ["console", "file", "otlp"])
        #expect(registry.protocolNames == ["grpc", "http/json", "http/protobuf"])
        #expect(registry.processorNames == ["attribute_limits", "redaction"])
        try registry.register(exporter: NullPlugin())
        do {
            try registry.register(exporter: NullPlugin())
            Issue.record("a duplicate name was accepted")
        } catch let error as TelemetryFlowError {
            #expect(error.code == .duplicatePlugin && error.message.contains("null"))
        }
        do {
            _ = try registry.exporter(named: "kafka")
            Issue.record("an unknown name was accepted")
        } catch let error as TelemetryFlowError {
            #expect(error.code == .unknownPlugin && error.message.contains("console, file, null, otlp"))
        }
        let thrift = ExporterConfiguration.otlp(OTLPExporterConfiguration(protocol: ExportProtocol("thrift")), name: "x")
        let unknownProtocol = #expect(throws: TelemetryFlowError.self) { try registry.makeExporter(thrift) }
        #expect(unknownProtocol?.code == .unknownPlugin && unknownProtocol?.message.contains("thrift") == true)
        let colour = ExporterConfiguration.plugin(name: "null", options: ["colour": "red"], instance: "n")
        let unknownOption = #expect(throws: TelemetryFlowError.self) { try registry.makeExporter(colour) }
        #expect(unknownOption?.code == .invalidConfiguration && unknownOption?.message.contains("colour") == true)
        // A built-in plugin given another kind's configuration says so.
        let mismatched = ExporterConfiguration(name: "m", .plugin(name: "file", options: ["path": "/tmp/x"]))
        let wrongKind = #expect(throws: TelemetryFlowError.self) { try registry.makeExporter(mismatched) }
        #expect(wrongKind?.code == .invalidConfiguration && wrongKind?.message.contains(".file(") == true)
    }

    @Test func processorsRedactAndLimitAttributes() throws {
        let registry = PluginRegistry.standard()
        let chain = try ProcessorChain([("redaction", ["keys": "password, token"]), ("attribute_limits", ["max_count": "2", "max_value_length": "3"])], registry: registry)
        var event = TelemetryEvent.log(LogRecordData(timeUnixNano: 1, severity: .info, body: "x", attributes: ["password": "hunter2", "user": "alice", "extra": "1"]), scope: testScope)
        #expect(chain.process(&event) == .keep)
        guard case .log(let record, _) = event else { return }
        #expect(record.attributes["password"] == .string("[RE") && record.attributes["user"] == .string("ali"))
        #expect(record.attributes.count == 2 && record.droppedAttributesCount == 1)
        let noKeys = #expect(throws: TelemetryFlowError.self) { try registry.processor(named: "redaction").makeProcessor(options: [:]) }
        #expect(noKeys?.code == .invalidConfiguration)
        let unknown = #expect(throws: TelemetryFlowError.self) { try registry.processor(named: "attribute_limits").makeProcessor(options: ["max": "1"]) }
        #expect(unknown?.code == .invalidConfiguration && unknown?.message.contains("max") == true)
    }
}

@Suite struct FileExporterTests {
    @Test func jsonLinesRotateAndKeepTheConfiguredNumberOfFiles() async throws {
        let dir = LogDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let log = try makeLog(dir.path + "/log")
        defer { log.close() }
        for n in 0..<200 { _ = log.append(.spanEnded(sampleSpan(n), scope: testScope), timestampUnixNano: UInt64(n)) }
        let last = try await log.flush()
        var file = ExporterConfiguration.file(FileExporterConfiguration(path: dir.path + "/spans.jsonl", maxBytes: 20000, maxFiles: 2))
        file.policy.maxBatchCount = 50
        let pipeline = try await ExportPipeline(log: log, exporters: [file], registry: .standard())
        pipeline.start()
        #expect(await pipeline.waitUntilHandled(through: last, timeout: .seconds(60)))
        await pipeline.stop()
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("spans.jsonl") }.sorted()
        #expect(names == ["spans.jsonl", "spans.jsonl.1", "spans.jsonl.2"], "\(names)")
        var sequences: [Int] = []
        for name in names.reversed() {
            let text = try String(contentsOfFile: dir.path + "/" + name, encoding: .utf8)
            #expect(text.utf8.count <= 20000)
            for line in text.split(separator: "\n") {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(object["type"] as? String == "span_ended" && (object["span"] as? [String: Any])?["traceId"] != nil)
                sequences.append(object["sequence"] as! Int)
            }
        }
        #expect(sequences == sequences.sorted() && sequences.last == 200, "the newest lines are kept, in order")
        let bad = ExporterConfiguration.file(FileExporterConfiguration(path: dir.path + "/bad.jsonl", maxBytes: 10), name: "bad")
        let small = #expect(throws: TelemetryFlowError.self) { try PluginRegistry.standard().makeExporter(bad) }
        #expect(small?.code == .invalidConfiguration && small?.message.contains("maxBytes") == true)
    }
}
