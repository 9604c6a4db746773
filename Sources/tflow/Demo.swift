import ArgumentParser
import Foundation
import TelemetryFlow

/// Records a mixed workload into a log, closes it, reopens it, prints what it holds, aggregates the metrics and
/// exports everything: to `OTEL_EXPORTER_OTLP_ENDPOINT` when set, else to the console and a JSON-lines file.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record a mixed telemetry workload into a log, reopen it and print what it holds.")

    @Option(help: "Directory of the log (default: a new temporary directory).")
    var dir: String?

    @Option(parsing: .unconditional, help: "Requests to simulate (1 or more); each records a span, logs and metrics.")
    var requests: Int = 200

    func validate() throws {
        guard requests >= 1 else { throw ValidationError("--requests must be 1 or more, not \(requests)") }
    }

    func run() async throws {
        let directory = dir ?? (NSTemporaryDirectory() + "tflow-demo-" + UUID().uuidString)
        var configuration = LogConfiguration(directory: directory)
        configuration.durability = .always
        print("TelemetryFlow demo — log at \(directory)")

        let log = try EventLog(configuration)
        let recorded = try await DemoWorkload.record(into: log, requests: requests)
        let durable = try await log.flush()
        print("recorded \(recorded) events; durable through sequence \(durable)")
        log.close()

        let reopened = try EventLog(configuration)
        defer { reopened.close() }
        let report = reopened.recoveryReport
        print("reopened: last sequence \(report.lastSequence), verified \(report.verifiedRecords) tail records, \(report.corruptedRecords) damaged")
        let (counts, samples, total) = try summarize(reopened, samples: 8)
        print("the log holds \(total) events:")
        for (type, count) in counts.sorted(by: { $0.key < $1.key }) { print("  \(type): \(count)") }
        print("first events:")
        samples.forEach { print($0) }
        print("statistics:")
        print(describe(reopened.statistics))
        guard total == recorded else {
            throw ValidationError("the log holds \(total) events but \(recorded) were recorded")
        }
        try await export(reopened, directory: directory)
    }

    /// Aggregates the measurements into one `metrics_collected` event, then runs the export pipeline until every
    /// exporter's cursor has passed the end of the log.
    func export(_ log: EventLog, directory: String) async throws {
        let projection = try await MetricsProjection(log: log)
        let collected = try await projection.collect()
        print("metrics projection: \(collected?.pointCount ?? 0) points in \(collected?.metrics.count ?? 0) metrics")
        let registry = PluginRegistry.standard()
        try registry.register(signalType: AuditSignal())
        var exporters: [ExporterConfiguration] = []
        let environment = ProcessInfo.processInfo.environment
        var configuration = TelemetryFlow.Configuration()
        try configuration.applyEnvironment(environment)
        let endpointSet = environment.keys.contains { $0 == "TELEMETRYFLOW_ENDPOINT" || ($0.hasPrefix("OTEL_EXPORTER_OTLP_") && $0.hasSuffix("ENDPOINT")) }
        if endpointSet {
            exporters = configuration.effectiveExporters.filter { $0.otlp != nil }
            for exporter in exporters {
                let otlp = exporter.otlp!
                print("exporting to \(otlp.endpoint ?? otlp.signalEndpoints.values.sorted().joined(separator: ", ")) over \(otlp.protocol)")
            }
        } else {
            var console = ExporterConfiguration.console()
            console.signals = [.traces, .logs, .metrics, try SignalType("demo.audit")]
            exporters = [console, .file(FileExporterConfiguration(path: directory + "/export.jsonl"))]
            print("OTEL_EXPORTER_OTLP_ENDPOINT is not set: exporting to the console and \(directory)/export.jsonl")
        }
        let last = log.statistics.lastSequence
        let pipeline = try await ExportPipeline(
            log: log, exporters: exporters, registry: registry, resource: configuration.resource)
        pipeline.start()
        let delivered = await pipeline.waitUntilHandled(through: last, timeout: .seconds(60))
        await pipeline.stop()
        print("delivery:")
        for s in pipeline.status {
            print("  \(s.name) (\(s.plugin)): \(s.exportedEvents) events in \(s.exportedBatches) batches accepted, "
                + "\(s.rejectedItems) rejected, \(s.deadLetteredEvents) dead-lettered, \(s.retries) retries, cursor \(s.cursor)/\(last)"
                + (s.lastError.map { ", last error: \($0)" } ?? ""))
        }
        let failed = pipeline.status.filter { $0.deadLetteredEvents > 0 || $0.rejectedItems > 0 }
        guard delivered, failed.isEmpty else {
            throw ValidationError("not everything was accepted by the backend (see the delivery lines above)")
        }
        print("every recorded event was delivered")
    }
}

/// The demo's custom signal type, registered like any third-party one.
struct AuditSignal: SignalTypePlugin {
    let signal = try! SignalType("demo.audit")
    func describe(_ record: CustomSignalRecord) -> String { "\"\(String(decoding: record.body, as: UTF8.self))\"" }
}

/// The demo's workload: an HTTP-server-like service handling requests.
enum DemoWorkload {
    static let scope = InstrumentationScope(name: "demo.http-server", version: "1.0.0")

    /// Records `requests` simulated requests. Returns the number of events appended.
    static func record(into log: EventLog, requests: Int) async throws -> Int {
        var appended = 0
        func append(_ event: TelemetryEvent, _ time: UInt64) {
            if log.append(event, timestampUnixNano: time).sequence != nil { appended += 1 }
        }
        let start = wallClockNanos()
        append(.lifecycle(LifecycleEvent(kind: .started, attributes: ["service.name": "demo", "pid": .int(Int64(getpid()))])), start)
        let routes = ["/checkout", "/cart", "/search", "/login"]
        let severities: [Severity] = [.trace, .debug, .info, .warn, .error, .fatal]
        var previous: (TraceID, SpanID)?
        for i in 0..<requests {
            let t0 = start + UInt64(i) * 1_000_000
            let route = routes[i % routes.count]
            let failed = i % 17 == 0
            let traceID = TraceID.random()
            let spanID = SpanID.random()
            var span = SpanData(
                traceID: traceID, spanID: spanID, name: "GET \(route)", kind: .server, startTimeUnixNano: t0,
                attributes: ["http.request.method": "GET", "http.route": .string(route), "url.scheme": "https"])
            append(.spanStarted(span, scope: scope), t0)
            let event = SpanEvent(name: "cache.lookup", timeUnixNano: t0 + 100_000, attributes: ["cache.hit": .bool(i % 3 == 0)])
            append(.spanEventAdded(traceID: traceID, spanID: spanID, event: event), t0 + 100_000)
            let severity = failed ? Severity.error : severities[i % severities.count]
            append(.log(LogRecordData(
                timeUnixNano: t0 + 200_000, observedTimeUnixNano: t0 + 200_000, severity: severity,
                body: .string(failed ? "payment declined for request \(i)" : "handled request \(i)"),
                attributes: ["http.route": .string(route)], flags: 1, traceID: traceID, spanID: spanID), scope: scope), t0 + 200_000)
            let latency = Double(5 + (i * 37) % 250) / 1000
            append(.measurement(MetricMeasurement(kind: .counter, name: "http.server.requests", unit: "{request}", scope: scope,
                attributes: ["http.route": .string(route), "http.response.status_code": .int(failed ? 500 : 200)], value: .int(1))), t0 + 300_000)
            append(.measurement(MetricMeasurement(kind: .histogram, name: "http.server.request.duration", unit: "s", scope: scope,
                attributes: ["http.route": .string(route)], value: .double(latency))), t0 + 300_000)
            append(.measurement(MetricMeasurement(kind: .upDownCounter, name: "http.server.active_requests", unit: "{request}", scope: scope,
                value: .int(i % 2 == 0 ? 1 : -1))), t0 + 300_000)
            if i % 10 == 0 {
                append(.measurement(MetricMeasurement(kind: .gauge, name: "process.memory.usage", unit: "By", scope: scope,
                    value: .int(Int64(50_000_000 + i * 1000)))), t0 + 300_000)
            }
            span.events = [event]
            span.endTimeUnixNano = t0 + UInt64(latency * 1e9)
            span.status = failed ? SpanStatus(.error, message: "payment declined") : .ok
            if let previous { span.links = [SpanLink(traceID: previous.0, spanID: previous.1, attributes: ["link.kind": "previous"])] }
            append(.spanEnded(span, scope: scope), span.endTimeUnixNano)
            if i % 50 == 0 {
                let signal = try SignalType("demo.audit")
                append(.custom(CustomSignalRecord(signal: signal, name: "audit.checkpoint", attributes: ["request": .int(Int64(i))],
                    body: Array("checkpoint \(i)".utf8))), t0 + 400_000)
            }
            previous = (traceID, spanID)
        }
        append(.lifecycle(LifecycleEvent(kind: .shutdown)), wallClockNanos())
        return appended
    }
}
