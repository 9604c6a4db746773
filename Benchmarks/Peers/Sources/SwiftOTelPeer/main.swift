// swift-otel's recording calls, measured as `tflow-client-bench` measures TelemetryFlow's: the calls a user
// writes, from 1 and 2 threads, median and p99 ns per call over blocks of 64, recording threads' CPU per call
// (`Measure.swift` is `tflow-client-bench`'s own file, linked).
// swift-otel keeps telemetry in memory (batch processors) and exports on a schedule; its exporters are off
// (`.none`) so that, as in `tflow-client-bench` (no exporter), only the recording path is measured. Paced mode:
// bursts of 4,096 calls per thread with an untimed 5 ms pause between them, so the batch processors drain and
// nothing is measured as a drop.
//
//   swift-otel-peer [--calls N] [--only counter|histogram|log|span] [--threads N]
import Foundation
import Logging
import Metrics
import OTel
import Tracing

var arguments = CommandLine.arguments.dropFirst()
var calls = 2_000_000
var only: String?
var threadCounts = [1, 2]
while let argument = arguments.popFirst() {
    switch argument {
    case "--calls": calls = Int(arguments.popFirst() ?? "") ?? calls
    case "--only": only = arguments.popFirst()
    case "--threads": threadCounts = [Int(arguments.popFirst() ?? "") ?? 1]
    default:
        FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
        exit(2)
    }
}

/// The pause of paced mode: 5 ms, for the batch processors to drain.
let pause: @Sendable () -> Void = { usleep(5000) }

var configuration = OTel.Configuration.default
configuration.serviceName = "client-bench"
configuration.diagnosticLogLevel = .error
configuration.traces.exporter = .none
configuration.metrics.exporter = .none
configuration.logs.exporter = .none
configuration.logs.level = .info
configuration.traces.batchSpanProcessor.maxQueueSize = 1 << 20
configuration.logs.batchLogRecordProcessor.maxQueueSize = 1 << 20
let observability = try OTel.bootstrap(configuration: configuration)
let service = Task { try await observability.run() }

let logger = Logger(label: "client-bench")
let counter = Counter(label: "http.server.requests", dimensions: [("http.route", "/api/items")])
let histogram = Recorder(label: "http.server.duration", dimensions: [("http.route", "/api/items")], aggregate: true)
// (figure name, `--only` group, calls, body). swift-metrics handles carry their dimensions, so a counter whose
// attributes vary per call is a handle made per call: both forms are measured beside TelemetryFlow's counter (one
// cached handle, attributes per call).
let operations: [(String, String, Int, @Sendable () -> Void)] = [
    ("counter", "counter", calls, { counter.increment(by: 1) }),
    ("counter_handle_per_call", "counter", calls, { Counter(label: "http.server.requests", dimensions: [("http.route", "/api/items")]).increment(by: 1) }),
    ("histogram", "histogram", calls, { histogram.record(12.5) }),
    ("log", "log", calls / 2, { logger.info("request served", metadata: ["http.route": "/api/items", "http.status_code": "200", "user.id": "u-42"]) }),
    ("span", "span", calls / 4, {
        withSpan("GET /api/items", ofKind: .server) { span in
            span.attributes["http.route"] = "/api/items"
            span.attributes["http.request.method"] = "GET"
            span.attributes["http.response.status_code"] = 200
        }
    }),
]
for (operation, group, count, body) in operations where only == nil || only == group {
    for threads in threadCounts {
        let result = measure(threads: threads, perThread: count / threads, pause: pause, body)
        print(#"{"bench":"peer_swift_otel_\#(operation)","mode":"paced","threads":\#(threads),"calls":\#(count),"median_ns":\#(Int(result.median.rounded())),"p99_ns":\#(Int(result.p99.rounded())),"cpu_ns_per_call":\#(Int(result.cpu.rounded()))}"#)
        fflush(nil)
    }
}
service.cancel()
exit(0)
