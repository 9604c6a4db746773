// The code of Docs/Extending.md, compiled and run by the test suite. Keep the two in step.
import Synchronization
import Testing
import TelemetryFlow
import TelemetryFlowTesting

// MARK: An exporter

/// Counts spans per service; a stand-in for a exporter that writes to your own backend.
final class SpanCounterExporter: TelemetryExporter {
    let acceptedSignals: Set<SignalType> = [.traces]
    let counted = Mutex<Int>(0)

    func export(_ batch: EventBatch) async -> ExportResult {
        var spans = 0
        for event in batch where event.type == .spanEnded {
            do {
                guard case .spanEnded = try event.decode() else { continue }
                spans += 1
            } catch {
                return .permanent(reason: "undecodable span #\(event.sequence): \(error)")  // goes to the dead-letter store
            }
        }
        counted.withLock { $0 += spans }
        return .success  // the worker moves this exporter's cursor past the batch
    }
}

struct SpanCounterPlugin: ExporterPlugin {
    let name = "span-counter"
    let exporter = SpanCounterExporter()

    func makeExporter(_ configuration: ExporterConfiguration, context: ExporterContext) throws -> any TelemetryExporter {
        try configuration.checkOptions([])  // unknown options are errors, never ignored
        return exporter
    }
}

// MARK: A signal type

struct AuditTrailSignal: SignalTypePlugin {
    let signal = try! SignalType("audit")

    func validate(_ record: CustomSignalRecord) throws {
        guard record.attributes["actor"] != nil else {
            throw TelemetryFlowError(.invalidArgument, "an audit record needs an actor attribute")
        }
    }

    func describe(_ record: CustomSignalRecord) -> String {
        "\(record.name) by \(record.attributes["actor"]?.description ?? "?")"
    }
}

// MARK: A protocol

/// A protocol that sends each signal's batch as OTLP/JSON lines to a closure (a stand-in for a message bus).
struct JSONLinesProtocol: ProtocolPlugin {
    let name = "jsonl"
    let sink: @Sendable (String) -> Void

    func makeSender(_ configuration: OTLPExporterConfiguration, context: ExporterContext) throws -> any SignalSender {
        JSONLinesSender(encoder: OTLPJSONEncoder(resource: context.resource), sink: sink)
    }
}

struct JSONLinesSender: SignalSender {
    let encoder: OTLPJSONEncoder
    let sink: @Sendable (String) -> Void
    var acceptedSignals: Set<SignalType> { [.traces, .logs, .metrics] }

    func send(_ signal: SignalType, _ batch: EventBatch) async -> ExportResult {
        do {
            if let request = try encoder.encode(signal, batch) { sink(String(decoding: request.bytes, as: UTF8.self)) }
            return .success
        } catch {
            return .permanent(reason: "\(error)")
        }
    }

    func shutdown() async {}
}

// MARK: Wiring it together

@Suite struct ExtendingGuideTests {
    @Test func theGuidesPluginsRegisterAndRun() async throws {
        let dir = LogDirectory()
        let log = try makeLog(dir.path)
        defer { log.close() }

        let registry = PluginRegistry.standard()
        let counter = SpanCounterPlugin()
        try registry.register(exporter: counter)
        try registry.register(signalType: AuditTrailSignal())
        let lines = Mutex<[String]>([])
        try registry.register(protocol: JSONLinesProtocol { line in lines.withLock { $0.append(line) } })

        let audit = CustomSignalRecord(signal: try SignalType("audit"), name: "login", attributes: ["actor": "alice"])
        try registry.signalType(audit.signal).validate(audit)
        let invalid = #expect(throws: TelemetryFlowError.self) {
            try registry.signalType(audit.signal).validate(CustomSignalRecord(signal: audit.signal, name: "login"))
        }
        #expect(invalid?.code == .invalidArgument)
        _ = log.append(.custom(audit), timestampUnixNano: 1)
        for n in 0..<3 { _ = log.append(.spanEnded(sampleSpan(n), scope: testScope), timestampUnixNano: 2) }
        let last = try await log.flush()

        let bus = ExporterConfiguration.otlp(OTLPExporterConfiguration(protocol: ExportProtocol("jsonl")), name: "bus")  // OTLP over a third-party protocol
        let pipeline = try await ExportPipeline(
            log: log, exporters: [.plugin(name: "span-counter", instance: "counter"), bus], registry: registry,
            resource: Resource(attributes: ["service.name": "guide"]))
        pipeline.start()
        // The timeout only guards against a hang: at the start of `make test` pass 1, 28 suites share two cores and this
        // took 19.6 s once (0.22 s alone).
        #expect(await pipeline.waitUntilHandled(through: last, timeout: .seconds(60)))
        await pipeline.stop()
        #expect(counter.exporter.counted.withLock { $0 } == 3)
        #expect(lines.withLock { $0.count } == 1 && lines.withLock { $0[0].contains("\"resourceSpans\"") })
        #expect(registry.signalTypes.map(\.name).contains("audit"))
    }

    @Test func spanCounterCountsAndTheWorkerRetriesOnSchedule() async throws {
        let temporary = try TemporaryLog()
        for n in 0..<3 { temporary.log.append(.spanEnded(sampleSpan(n), scope: testScope), timestampUnixNano: 1) }
        let last = try await temporary.log.flush()

        let clock = ManualClock()
        let flaky = InMemoryExporter(answers: [.retryable(reason: "503"), .success], clock: clock)
        let counter = SpanCounterPlugin()
        let registry = PluginRegistry.standard()
        try registry.register(exporter: counter)
        try registry.register(exporter: flaky.plugin(name: "memory"))
        var memory = ExporterConfiguration.plugin(name: "memory")
        memory.policy.jitter = 0
        memory.policy.scheduleDelay = .zero
        var spans = ExporterConfiguration.plugin(name: "span-counter")
        spans.policy.scheduleDelay = .zero
        let pipeline = try await ExportPipeline(log: temporary.log, exporters: [spans, memory], registry: registry, clock: clock)
        pipeline.start()
        #expect(await clock.advance(until: { pipeline.status.allSatisfy { $0.cursor == last } }))
        await pipeline.stop()

        #expect(counter.exporter.counted.withLock { $0 } == 3)
        #expect(flaky.calls.map(\.at) == [.zero, .milliseconds(500)], "one retry after the 500 ms initial backoff")
    }
}
