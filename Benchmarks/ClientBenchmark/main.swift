// Client benchmark: the public recording calls as a user writes them, on a client with durable logging on
// (`interval`, 1000 ms), from 1 and 2 threads. Prints one JSON line per figure. Run with `make bench`.
//
//   tflow-client-bench [--calls N] [--memory-calls N] [--dir DIR]
//                      [--only counter|histogram|log|span|memory|projections|span-parts] [--mode paced|saturated]
//                      [--threads N] [--part NAME[,NAME…]] [--rounds R]
//
// Per call: the median and p99 of the time per call over blocks of 64 calls (one clock read per block), the
// recording threads' own CPU time per call (CLOCK_THREAD_CPUTIME_ID: what a call costs its caller, preemption
// excluded), and the throughput of all threads together. Each operation runs in two modes:
//   paced      each thread records bursts of 4,096 calls and, between bursts, waits until the log has committed
//              everything appended (not timed): the cost of a call while the log keeps up, with no drops;
//   saturated  the threads record without pause: the throughput the writer sustains. Calls the log had to drop
//              (its queue full while the writer was behind; recording never waits) are counted and printed — a
//              dropped call is cheaper than a recorded one, so a figure with drops says so.
// Memory: the process's anonymous RSS (/proc/self/status RssAnon) sampled every million calls while one thread
// records 10 M counter adds. `--only span-parts` (not in the full run; `--part NAME[,NAME…]` for some) measures where a
// span's time goes, one thread, paced: the task-local context alone and its pieces (read, one key set, a bind), a
// span started and ended with an explicit context, and `withSpan`; `--rounds R` runs those parts R times in turn, so
// that the machine's changes of speed touch them alike. Projections: what folding costs per event in the background
// (the open-spans projection per span, the metrics projection per measurement).
// The measuring code is in Measure.swift, which the swift-otel peer benchmark (Benchmarks/Peers) shares.
import Foundation
import Synchronization
import TelemetryFlow

var arguments = CommandLine.arguments.dropFirst()
var calls = 2_000_000
var memoryCalls = 10_000_000
var baseDir = NSTemporaryDirectory() + "tflow-client-bench-\(getpid())"
var only: String?
var onlyMode: String?
var threadCounts = [1, 2]
var onlyPart: String?
var rounds = 1
while let argument = arguments.popFirst() {
    switch argument {
    case "--calls": calls = Int(arguments.popFirst() ?? "") ?? calls
    case "--memory-calls": memoryCalls = Int(arguments.popFirst() ?? "") ?? memoryCalls
    case "--dir": baseDir = arguments.popFirst() ?? baseDir
    case "--only": only = arguments.popFirst()
    case "--mode": onlyMode = arguments.popFirst()
    case "--part": onlyPart = arguments.popFirst()
    case "--rounds": rounds = Int(arguments.popFirst() ?? "") ?? rounds
    case "--threads": threadCounts = [Int(arguments.popFirst() ?? "") ?? 1]
    default: FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8)); exit(2)
    }
}

func emit(_ text: String) { print(text); fflush(nil) }

func anonymousKiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") })
    else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

@MainActor func makeClient(_ name: String) async throws -> TelemetryFlowClient {
    var configuration = TelemetryFlow.Configuration(service: "client-bench")
    configuration.log.directory = baseDir + "/" + name
    configuration.log.durability = .interval(milliseconds: 1000)
    configuration.log.quotaBytes = 8 << 30
    configuration.exporters = []
    // Collections move the metrics projection's cursor, so consumed segments are deleted as the run goes.
    configuration.metricExportInterval = .seconds(1)
    let client = try await TelemetryFlowClient(configuration: configuration)
    client.start()
    return client
}

/// The pause of paced mode: until the log has committed everything appended (or dropped it).
func untilCommitted(_ telemetry: TelemetryFlowClient) -> @Sendable () -> Void {
    {
        while let s = telemetry.statistics?.log, s.committed + s.droppedTotal < s.appended { usleep(200) }
    }
}

let operations: [(String, Int)] = [("counter", calls), ("histogram", calls), ("log", calls / 2), ("span", calls / 4)]
for (operation, count) in operations where only == nil || only == operation {
    for threads in threadCounts {
        let telemetry = try await makeClient("\(operation)-\(threads)")
        let counter = telemetry.counter("http.server.requests", unit: "{request}")
        let histogram = telemetry.histogram("http.server.duration", unit: "ms")
        let body: @Sendable () -> Void
        switch operation {
        case "counter": body = { counter.add(1, ["http.route": "/api/items"]) }
        case "histogram": body = { histogram.record(12.5, ["http.route": "/api/items"]) }
        case "log": body = { telemetry.log(.info, "request served", ["http.route": "/api/items", "http.status_code": 200, "user.id": "u-42"]) }
        default:
            body = {
                telemetry.withSpan("GET /api/items", kind: .server, attributes: ["http.route": "/api/items", "http.request.method": "GET", "http.response.status_code": 200]) { _ in }
            }
        }
        let perThread = count / threads
        for mode in ["paced", "saturated"] where onlyMode == nil || onlyMode == mode {
            await telemetry.flush(timeout: .seconds(120))
            let before = telemetry.statistics?.log
            let result = measure(threads: threads, perThread: perThread, pause: mode == "paced" ? untilCommitted(telemetry) : nil, body)
            await telemetry.flush(timeout: .seconds(120))
            let after = telemetry.statistics?.log
            let dropped = (after?.droppedTotal ?? 0) - (before?.droppedTotal ?? 0)
            let appended = (after?.appended ?? 0) - (before?.appended ?? 0)
            let total = perThread * threads
            emit(#"{"bench":"client_\#(operation)","mode":"\#(mode)","threads":\#(threads),"calls":\#(total),"median_ns":\#(Int(result.median.rounded())),"p99_ns":\#(Int(result.p99.rounded())),"cpu_ns_per_call":\#(Int(result.cpu.rounded())),"calls_per_s":\#(Int(Double(total) / result.seconds)),"dropped":\#(dropped),"appended":\#(appended)}"#)
        }
        await telemetry.shutdown(timeout: .seconds(5))
        try? FileManager.default.removeItem(atPath: baseDir + "/\(operation)-\(threads)")
    }
}

if only == nil || only == "memory" {
    let telemetry = try await makeClient("memory")
    let counter = telemetry.counter("http.server.requests", unit: "{request}")
    var samples: [Int] = [anonymousKiB()]
    let t0 = monotonic()
    var recorded = 0
    while recorded < memoryCalls {
        for _ in 0..<1_000_000 { counter.add(1, ["http.route": "/api/items"]) }
        recorded += 1_000_000
        samples.append(anonymousKiB())
    }
    let seconds = Double(monotonic() - t0) / 1e9
    await telemetry.flush(timeout: .seconds(120))
    let dropped = telemetry.statistics?.log.dropped.values.reduce(0, +) ?? 0
    let mib = samples.map { String(format: "%.1f", Double($0) / 1024) }.joined(separator: ",")
    emit(#"{"bench":"client_memory","calls":\#(recorded),"seconds":\#(String(format: "%.1f", seconds)),"dropped":\#(dropped),"rss_anon_mib_every_million":[\#(mib)]}"#)
    await telemetry.shutdown(timeout: .seconds(5))
}
// Where a span's time goes, one thread, paced: the task-local context alone (a child context set and bound, no
// span) and its pieces (reading the current context, setting one key on an empty one, binding a context), a span
// started and ended with an explicit context (no task-local), `withSpan`, and `withSpan` under a parent span (a
// context holding a span given to it).
if only == "span-parts" {
    let telemetry = try await makeClient("span-parts")
    let attributes: Attributes = ["http.route": "/api/items", "http.request.method": "GET", "http.response.status_code": 200]
    let parked = telemetry.startSpan("parked", context: .topLevel)
    let prebuilt = { var context = ServiceContext.topLevel; context.span = parked; return context }()
    let parts: [(String, @Sendable () -> Void)] = [
        ("context_only", {
            let base = ServiceContext.current ?? .topLevel
            var child = base
            child.span = parked
            ServiceContext.withValue(child) { }
        }),
        ("context_read", { _ = ServiceContext.current }),
        ("context_set_one_key", { var context = ServiceContext.topLevel; context.span = parked; withExtendedLifetime(context) {} }),
        ("context_bind", { ServiceContext.withValue(prebuilt) { } }),
        ("start_end_explicit_context", { telemetry.startSpan("GET /api/items", kind: .server, attributes: attributes, context: .topLevel).end() }),
        ("with_span", { telemetry.withSpan("GET /api/items", kind: .server, attributes: attributes) { _ in } }),
        ("with_span_child", { telemetry.withSpan("SELECT items", kind: .client, attributes: attributes, context: prebuilt) { _ in } }),
    ]
    // `--rounds R` runs the parts R times in turn, so that a change of the machine's speed touches them alike.
    for round in 0..<rounds {
        for (name, body) in parts where onlyPart == nil || onlyPart.map({ $0.split(separator: ",").contains(Substring(name)) }) == true {
            await telemetry.flush(timeout: .seconds(120))
            let result = measure(threads: 1, perThread: calls / 4, pause: untilCommitted(telemetry), body)
            emit(#"{"bench":"client_span_part","round":\#(round),"part":"\#(name)","calls":\#(calls / 4),"median_ns":\#(Int(result.median.rounded())),"cpu_ns_per_call":\#(Int(result.cpu.rounded()))}"#)
        }
    }
    parked.end()
    await telemetry.shutdown(timeout: .seconds(5))
}
// What the projections cost per event in the background: each of 5 runs opens a fresh log, starts both projections
// on it, appends `--calls`/4 spans (each started and ended, 3 attributes, as `withSpan` records them) with a counter
// add (1 attribute) between each span's two events, and times each projection's `catchUp()` over all of it (the
// open-spans projection per span, passing over the measurements; the metrics projection per measurement, passing
// over the spans). Median of the 5 runs.
if only == nil || only == "projections" {
    let spans = calls / 4
    let scope = TelemetryFlowClient.defaultScope
    let add = MetricMeasurement(kind: .counter, name: "http.server.requests", unit: "{request}", scope: scope, attributes: ["http.route": "/api/items"], value: .int(1))
    var perEvent: [String: [Double]] = [:]
    for run in 0..<5 {
        var configuration = LogConfiguration(directory: baseDir + "/projections-\(run)")
        configuration.durability = .never
        configuration.quotaBytes = 8 << 30
        let log = try EventLog(configuration)
        let openSpans = try await OpenSpansProjection(log: log)
        let metrics = try await MetricsProjection(log: log)
        var start: UInt64 = 1_700_000_000_000_000_000
        for i in 0..<spans {
            var span = SpanData(
                traceID: TraceID(high: 0x0123_4567_89ab_cdef, low: UInt64(i + 1)), spanID: SpanID(UInt64(i + 1)), flags: 0x101,
                name: "GET /api/items", kind: .server, startTimeUnixNano: start,
                attributes: ["http.route": "/api/items", "http.request.method": "GET", "http.response.status_code": 200])
            _ = log.append(.spanStarted(span, scope: scope), timestampUnixNano: start)
            _ = log.append(.measurement(add), timestampUnixNano: start)
            start += 1_000
            span.endTimeUnixNano = start
            _ = log.append(.spanEnded(span, scope: scope), timestampUnixNano: start)
            if i % 4096 == 4095 { _ = try await log.flush() }
        }
        _ = try await log.flush()
        var t0 = monotonic()
        try openSpans.catchUp()
        perEvent["open_spans", default: []].append(Double(monotonic() - t0) / Double(spans))
        precondition(openSpans.openSpans.isEmpty, "every span ended")
        t0 = monotonic()
        try metrics.catchUp()
        perEvent["metrics", default: []].append(Double(monotonic() - t0) / Double(spans))
        let series = try metrics.currentMetrics().count
        precondition(series == 1, "one series, not \(series)")
        log.close()
        try? FileManager.default.removeItem(atPath: configuration.directory)
    }
    for (projection, runs) in perEvent.sorted(by: { $0.key > $1.key }) {
        emit(#"{"bench":"client_projection_fold","projection":"\#(projection)","events":\#(spans),"ns_per_event":\#(Int(runs.sorted()[2].rounded())),"runs":[\#(runs.map { String(Int($0.rounded())) }.joined(separator: ","))]}"#)
    }
}
try? FileManager.default.removeItem(atPath: baseDir)
