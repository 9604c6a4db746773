// Engine benchmark: prints one JSON line per figure. Run with `make bench` (release build).
//
//   tflow-bench [--raw PATH-TO-lmdb-raw] [--events N] [--runs R] [--dir DIR] [--queue-bytes B]
//               [--interval-ms MS] [--only MODE/EVENT/PRODUCERS]
//
// Every throughput figure (engine and raw liblmdb) is the median of R runs (default 5), each run's figure
// listed beside it: on a shared machine single runs vary by a third. For span events each engine run is paired
// with a raw liblmdb run just before it, and the ratio printed is the median of the pairs' ratios, so that the
// machine's speed drifting between the start of the benchmark and a given case does not show as the engine's.
// `--queue-bytes` sets the log's queue capacity (default: the configuration's default, 8 MiB).
// `--interval-ms` sets the `interval` mode's period (default 1000, the configuration's default). A run of 1 M
// spans lasts about 150 ms, so with the default no periodic sync falls inside it; a shorter period (for
// example 50) measures the engine with its background syncs writing to disk while it appends.
// `--only never/span/1` runs just that throughput case (for profiling); `*` matches any part;
// `--only encode/-/-` runs only the codec figures, `--only latency/-/-` only the append latencies.
import Foundation
import TelemetryFlowCore
import TelemetryFlowStorage

var arguments = CommandLine.arguments.dropFirst()
var rawPath: String?
var eventCount = 1_000_000
var runs = 5
var baseDir = NSTemporaryDirectory() + "tflow-bench-\(getpid())"
var only: [Substring]?
var queueBytes: Int?
var intervalMilliseconds = 1000
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}
@MainActor func number(after option: String) -> Int {
    guard let value = arguments.popFirst().flatMap({ Int($0) }), value > 0 else { fail("\(option) takes a positive number") }
    return value
}
while let argument = arguments.popFirst() {
    switch argument {
    case "--raw": rawPath = arguments.popFirst()
    case "--events": eventCount = number(after: argument)
    case "--runs": runs = number(after: argument)
    case "--queue-bytes": queueBytes = number(after: argument)
    case "--interval-ms": intervalMilliseconds = number(after: argument)
    case "--dir": baseDir = arguments.popFirst() ?? baseDir
    case "--only":
        only = (arguments.popFirst() ?? "").split(separator: "/")
        guard only?.count == 3 else { fail("--only takes MODE/EVENT/PRODUCERS") }
    default: fail("unknown argument \(argument)")
    }
}

func emit(_ fields: [(String, Any)]) {
    let body = fields.map { key, value -> String in
        switch value {
        case let s as String where key == "runs" || key == "raw_runs" || key == "ratios": return "\"\(key)\":\(s)"
        case let s as String: return "\"\(key)\":\"\(s)\""
        case let d as Double:
            return "\"\(key)\":\(d.isFinite ? String(format: key.hasPrefix("ratio") ? "%.3f" : "%.1f", d) : "null")"
        default: return "\"\(key)\":\(value)"
        }
    }.joined(separator: ",")
    print("{\(body)}")
    fflush(nil)
}

func monotonic() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Anonymous resident memory (heap, stacks; not the mapped log files, which are page cache) in KiB, from
/// /proc/self/status.
func rssAnonKiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

/// The highest anonymous RSS seen, sampled every 5 ms on a background thread for the whole run.
final class AnonymousMemorySampler: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    init() {
        Thread.detachNewThread { [self] in
            while true {
                let now = rssAnonKiB()
                lock.withLock { peak = max(peak, now) }
                usleep(5_000)
            }
        }
    }
    var peakKiB: Int { lock.withLock { peak } }
}
let memorySampler = AnonymousMemorySampler()

let scope = InstrumentationScope(name: "bench")
let spanTemplate = SpanData(
    traceID: TraceID(high: 0x0102_0304_0506_0708, low: 0x1112_1314_1516_1718), spanID: SpanID(42), name: "GET /api/items",
    kind: .server, startTimeUnixNano: 1_700_000_000_000_000_000, endTimeUnixNano: 1_700_000_000_001_000_000,
    attributes: ["http.request.method": "GET", "http.route": "/api/items", "http.response.status_code": .int(200)],
    status: .ok)
let spanEvent = TelemetryEvent.spanEnded(spanTemplate, scope: scope)
let counterEvent = TelemetryEvent.measurement(MetricMeasurement(kind: .counter, name: "requests", scope: scope, value: .int(1)))
let spanBytes = EventCodec.encode(spanEvent, timestampUnixNano: 1, sequence: 1).count
let counterBytes = EventCodec.encode(counterEvent, timestampUnixNano: 1, sequence: 1).count
emit([("bench", "record_sizes"), ("span_record_bytes", spanBytes), ("counter_record_bytes", counterBytes)])

@MainActor func freshDirectory(_ name: String) -> String {
    let path = baseDir + "/" + name
    try? FileManager.default.removeItem(atPath: path)
    return path
}

@MainActor func configuration(_ dir: String, _ durability: Durability) -> LogConfiguration {
    var configuration = LogConfiguration(directory: dir)
    configuration.durability = durability
    configuration.quotaBytes = 8 << 30
    if let queueBytes { configuration.queueCapacityBytes = queueBytes }
    return configuration
}

/// Producer-side cost of one append: the median over blocks of 100 calls.
@MainActor func appendNanos(_ event: TelemetryEvent, _ durability: Durability) throws -> (median: Double, p99: Double) {
    let log = try EventLog(configuration(freshDirectory("latency"), durability))
    defer { log.close() }
    var samples: [Double] = []
    for _ in 0..<2000 {
        let t0 = monotonic()
        for _ in 0..<100 { log.append(event, timestampUnixNano: 1) }
        samples.append(Double(monotonic() - t0) / 100)
    }
    samples.sort()
    return (samples[samples.count / 2], samples[samples.count * 99 / 100])
}

/// CPU time each thread of this process has run, in ns, by thread id, with the thread's name
/// (/proc/self/task/*/schedstat and comm).
func threadCPU() -> [Int: (name: String, nanos: UInt64)] {
    var result: [Int: (name: String, nanos: UInt64)] = [:]
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? [] {
        guard let tid = Int(entry),
              let stat = try? String(contentsOfFile: "/proc/self/task/\(entry)/schedstat", encoding: .utf8),
              let nanos = UInt64(stat.split(separator: " ").first ?? "") else { continue }
        let name = (try? String(contentsOfFile: "/proc/self/task/\(entry)/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        result[tid] = (name, nanos)
    }
    return result
}

/// CPU ns spent between two ``threadCPU()`` snapshots by the log's writer thread and by every other thread
/// (the producers; the memory sampler's share is negligible).
func cpuSplit(_ before: [Int: (name: String, nanos: UInt64)], _ after: [Int: (name: String, nanos: UInt64)]) -> (writer: UInt64, others: UInt64) {
    var writer: UInt64 = 0
    var others: UInt64 = 0
    for (tid, now) in after {
        let spent = now.nanos - (before[tid]?.nanos ?? 0)
        if now.name == "tflow-writer" { writer += spent } else if now.name != "tflow-sync" { others += spent }
    }
    return (writer, others)
}

/// Events per second from the first append to `flush()` returning, with `producers` threads, and the CPU ns
/// per event the writer thread and the producers spent.
@MainActor func throughput(_ event: TelemetryEvent, _ durability: Durability, producers: Int, count: Int) throws -> (
    perSecond: Double, diskPerEvent: Double, log: EventLog, writerNanos: Double, producerNanos: Double
) {
    let log = try EventLog(configuration(freshDirectory("throughput"), durability))
    let perProducer = count / producers
    let cpuBefore = threadCPU()
    let start = monotonic()
    DispatchQueue.concurrentPerform(iterations: producers) { _ in
        for _ in 0..<perProducer { log.append(event, timestampUnixNano: 1) }
    }
    let done = DispatchSemaphore(value: 0)
    Task.detached { _ = try? await log.flush(); done.signal() }
    done.wait()
    let seconds = Double(monotonic() - start) / 1e9
    let cpu = cpuSplit(cpuBefore, threadCPU())
    let stats = log.statistics
    precondition(stats.droppedTotal == 0, "benchmark dropped events: \(stats.dropped)")
    let events = Double(perProducer * producers)
    return (events / seconds, Double(stats.diskBytes) / events, log, Double(cpu.writer) / events, Double(cpu.others) / events)
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func runList(_ values: [Double]) -> String { "[" + values.map { String(format: "%.0f", $0) }.joined(separator: ",") + "]" }

/// The median of `runs` raw liblmdb runs, and each run's figure.
@MainActor func rawFigure(_ sync: String, recordBytes: Int) -> (median: Double, runs: [Double])? {
    var figures: [Double] = []
    for _ in 0..<runs {
        guard let figure = rawRun(sync, recordBytes: recordBytes) else { return nil }
        figures.append(figure)
    }
    emit([
        ("bench", "raw_lmdb_append"), ("sync", sync), ("records", eventCount), ("record_bytes", recordBytes), ("batch", 1000),
        ("records_per_s", median(figures)), ("runs", runList(figures)),
    ])
    return (median(figures), figures)
}

@MainActor func rawRun(_ sync: String, recordBytes: Int) -> Double? {
    guard let rawPath else { return nil }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: rawPath)
    let dir = freshDirectory("raw")
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    process.arguments = [dir, String(eventCount), String(recordBytes), "1000", sync]
    let pipe = Pipe()
    process.standardOutput = pipe
    guard (try? process.run()) != nil else { return nil }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard let range = output.range(of: "\"records_per_s\":") else { return nil }
    return Double(output[range.upperBound...].prefix { $0.isNumber || $0 == "." })
}

_ = rawFigure("fsync", recordBytes: spanBytes)
_ = rawFigure("nosync", recordBytes: spanBytes)

let modes: [(String, Durability)] = [("always", .always), ("interval", .interval(milliseconds: intervalMilliseconds)), ("never", .never)]
for (modeName, durability) in modes {
    for (kind, event) in [("span", spanEvent), ("counter", counterEvent)] {
        for producers in [1, 2] {
            if let only, !zip(only, [modeName, kind, String(producers)]).allSatisfy({ $0 == "*" || $0 == $1 }) { continue }
            // Span cases pair each engine run with a raw run just before it (fsync for `always`, else NOSYNC).
            let rawSync: String? = kind == "span" && rawPath != nil ? (modeName == "always" ? "fsync" : "nosync") : nil
            var figures: [Double] = []
            var rawFigures: [Double] = []
            var writerNanos: [Double] = []
            var producerNanos: [Double] = []
            var result: (perSecond: Double, diskPerEvent: Double, log: EventLog, writerNanos: Double, producerNanos: Double)?
            for _ in 0..<runs {
                result?.log.close()
                if let rawSync {
                    guard let raw = rawRun(rawSync, recordBytes: spanBytes) else { fail("the raw liblmdb run failed") }
                    rawFigures.append(raw)
                }
                let run = try throughput(event, durability, producers: producers, count: eventCount)
                figures.append(run.perSecond)
                writerNanos.append(run.writerNanos)
                producerNanos.append(run.producerNanos)
                result = run
            }
            guard let result else { break }
            var fields: [(String, Any)] = [
                ("bench", "append_throughput"), ("durability", modeName), ("event", kind), ("producers", producers),
                ("events", eventCount), ("events_per_s", median(figures)), ("runs", runList(figures)),
                ("disk_bytes_per_event", result.diskPerEvent),
                ("writer_cpu_ns_per_event", median(writerNanos)), ("producer_cpu_ns_per_event", median(producerNanos)),
            ]
            if modeName == "interval" { fields.insert(("interval_ms", intervalMilliseconds), at: 2) }
            if let rawSync {
                let ratios = zip(figures, rawFigures).map { $0 / $1 }
                fields.append(("raw_lmdb_sync", rawSync))
                fields.append(("raw_lmdb_records_per_s", median(rawFigures)))
                fields.append(("raw_runs", runList(rawFigures)))
                fields.append(("ratio_engine_to_raw", median(ratios)))
                fields.append(("ratios", "[" + ratios.map { String(format: "%.3f", $0) }.joined(separator: ",") + "]"))
            }
            emit(fields)
            if modeName == "never" && kind == "span" && producers == 1 {
                // Read throughput after a cursor over the backlog just written.
                let log = result.log
                let t0 = monotonic()
                var position: UInt64 = 0
                var read = 0
                while true {
                    let batch = try log.read(after: position, maxCount: 8192, maxBytes: 8 << 20)
                    if batch.endSequence == position { break }
                    read += batch.count
                    position = batch.endSequence
                }
                emit([("bench", "cursor_read"), ("events", read), ("events_per_s", Double(read) / (Double(monotonic() - t0) / 1e9))])
            }
            result.log.close()
        }
    }
}

/// What checking a backlog costs: page checksums at seal and before a first read, the page walker's validation of
/// the active segment at open, salvage of a damaged segment, and opening a log with a large backlog.
@MainActor func verificationFigures() throws {
    let dir = freshDirectory("verify")
    var config = configuration(dir, .never)
    config.quotaBytes = 4 << 30
    let count = max(eventCount * 5, 1_000_000)
    do {
        let log = try EventLog(config)
        for n in 0..<count { _ = log.append(spanEvent, timestampUnixNano: UInt64(n)) }
        let done = DispatchSemaphore(value: 0)
        Task.detached { _ = try? await log.flush(); done.signal() }
        done.wait()
        log.close()
    }
    let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("segment-") && $0.hasSuffix(".mdb") }.sorted()
    let sealed = segments.dropLast().map { dir + "/" + $0 }
    let sealedBytes = sealed.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
    let gib = Double(sealedBytes) / Double(1 << 30)
    func timed(_ body: () throws -> Void) rethrows -> Double {
        let t0 = monotonic()
        try body()
        return Double(monotonic() - t0) / 1e6
    }
    var checksumMs: [Double] = []
    var verifyMs: [Double] = []
    for _ in 0..<runs {
        checksumMs.append(try timed { for path in sealed { _ = try VerificationProbe.checksum(path: path) } })
        verifyMs.append(try timed { for path in sealed { let ok = try VerificationProbe.verify(path: path); precondition(ok) } })
    }
    emit([("bench", "page_checksums"), ("sealed_segments", sealed.count), ("sealed_gib", gib),
          ("compute_ms_per_gib", median(checksumMs) / gib), ("verify_ms_per_gib", (median(verifyMs) - median(checksumMs)) / gib),
          ("runs_ms", runList(checksumMs)), ("note", "page cache warm; verify = read and compare")])
    let one = sealed[0]
    let oneBytes = Double((try? FileManager.default.attributesOfItem(atPath: one)[.size] as? Int) ?? 1)
    var validateMs: [Double] = []
    var salvageMs: [Double] = []
    var records = 0
    for _ in 0..<runs {
        validateMs.append(try timed { records = try VerificationProbe.validate(path: one).records })
        salvageMs.append(try timed { let kept = try VerificationProbe.salvage(path: one); precondition(kept == records) })
    }
    emit([("bench", "page_walker"), ("segment_mib", oneBytes / 1_048_576), ("records", records),
          ("validate_ms_per_gib", median(validateMs) * Double(1 << 30) / oneBytes),
          ("salvage_mib_per_s", oneBytes / 1_048_576 / (median(salvageMs) / 1000)), ("salvage_records_per_s", Double(records) / (median(salvageMs) / 1000)),
          ("validate_runs_ms", runList(validateMs))])
    var openMs: [Double] = []
    var firstReadMs: [Double] = []
    for _ in 0..<runs {
        var log: EventLog?
        openMs.append(try timed { log = try EventLog(config) })
        firstReadMs.append(try timed { _ = try log!.read(after: 0, maxCount: 1) })
        log!.close()
    }
    emit([("bench", "open_backlog"), ("events", count), ("segments", segments.count), ("open_ms", median(openMs)),
          ("first_read_of_a_sealed_segment_ms", median(firstReadMs)), ("open_runs_ms", runList(openMs))])
    try? FileManager.default.removeItem(atPath: dir)
}

if only?[0] == "verify" || only == nil { try verificationFigures() }

/// Codec cost alone: ns to encode one record into a stack scratch writer, as `append` does before it takes the
/// queue's lock.
func encodeNanos(_ event: TelemetryEvent) -> Double {
    let rounds = 500_000
    var total = 0
    let t0 = monotonic()
    for n in 0..<rounds {
        total &+= ProtobufWriter.withScratch { EventCodec.encode(event, timestampUnixNano: UInt64(n), into: &$0, sequence: UInt64(n)) }
    }
    precondition(total > 0)
    return Double(monotonic() - t0) / Double(rounds)
}

for (kind, event) in [("counter", counterEvent), ("span", spanEvent)] where only == nil || only?[0] == "encode" {
    emit([("bench", "encode"), ("event", kind), ("ns_per_record", encodeNanos(event)), ("crc32c_hardware", "\(CRC32C.usesHardware)")])
}

for (kind, event) in [("counter", counterEvent), ("span", spanEvent)] where only == nil || only?[0] == "latency" {
    let latency = try appendNanos(event, .never)
    emit([("bench", "append_latency"), ("event", kind), ("median_ns", latency.median), ("p99_ns", latency.p99)])
}

var usage = rusage()
getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
// The log files are memory-mapped, so total RSS counts the pages read back; the anonymous peak is what the
// process itself holds while appending (queue buffers, heap), whatever the backlog written.
emit([
    ("bench", "memory"), ("max_rss_mib", Double(usage.ru_maxrss) / 1024),
    ("peak_rss_anon_mib", Double(memorySampler.peakKiB) / 1024), ("queue_capacity_mib", Double(LogConfiguration(directory: "/").queueCapacityBytes) / 1_048_576),
])
try? FileManager.default.removeItem(atPath: baseDir)
