// Export benchmark: OTLP protobuf encoding throughput and the end-to-end drain of a span backlog to a local
// receiver that only counts bytes. Prints one JSON line per figure. Run with `make bench`.
//
//   tflow-export-bench [--spans N] [--dir DIR] [--idle-seconds S] [--only encode|drain|idle]
//
// The idle figure: a log and an export pipeline with two exporters, started and then left with nothing to send;
// the CPU time the whole process used over S seconds (default 10), read from /proc/self/stat, and the context
// switches of all its threads (/proc/self/task/*/status).
import Foundation
import Synchronization
import TelemetryFlow

var arguments = CommandLine.arguments.dropFirst()
var spanCount = 1_000_000
var baseDir = NSTemporaryDirectory() + "tflow-export-bench-\(getpid())"
var idleSeconds = 10
var only: String?
while let argument = arguments.popFirst() {
    switch argument {
    case "--spans": spanCount = Int(arguments.popFirst() ?? "") ?? spanCount
    case "--dir": baseDir = arguments.popFirst() ?? baseDir
    case "--idle-seconds": idleSeconds = Int(arguments.popFirst() ?? "") ?? idleSeconds
    case "--only": only = arguments.popFirst()
    default: FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8)); exit(2)
    }
}

func emit(_ text: String) { print(text); fflush(nil) }

let scope = InstrumentationScope(name: "bench", version: "1.0")
func span(_ n: Int) -> TelemetryEvent {
    .spanEnded(SpanData(
        traceID: TraceID(high: 0x0102_0304_0506_0708, low: UInt64(n) + 1), spanID: SpanID(UInt64(n) + 1), name: "GET /api/items",
        kind: .server, startTimeUnixNano: 1_700_000_000_000_000_000, endTimeUnixNano: 1_700_000_000_001_000_000,
        attributes: ["http.request.method": "GET", "http.route": "/api/items", "http.response.status_code": .int(200)],
        status: .ok), scope: scope)
}

// 1. Encoding: stored span records → ExportTraceServiceRequest bytes, batches of 1,024 on one core.
if only == nil || only == "encode" {
    var batch = EventBatch(startingAfter: 0)
    for n in 0..<1024 { batch.append(sequence: UInt64(n + 1), event: span(n), timestampUnixNano: 1) }
    let encoder = OTLPProtobufEncoder(resource: Resource(attributes: ["service.name": "bench"]))
    var bytes = 0
    let rounds = 2000
    let start = ContinuousClock.now
    for _ in 0..<rounds { bytes += try encoder.encode(.traces, batch)!.bytes.count }
    let seconds = (ContinuousClock.now - start) / .seconds(1)
    emit(#"{"bench":"otlp_protobuf_encode","spans_per_s":\#(Int(Double(rounds * 1024) / seconds)),"request_bytes_per_span":\#(bytes / rounds / 1024)}"#)
    let json = OTLPJSONEncoder(resource: Resource(attributes: ["service.name": "bench"]))
    let jsonStart = ContinuousClock.now
    for _ in 0..<100 { _ = try json.encode(.traces, batch) }
    let jsonSeconds = (ContinuousClock.now - jsonStart) / .seconds(1)
    emit(#"{"bench":"otlp_json_encode","spans_per_s":\#(Int(Double(100 * 1024) / jsonSeconds))}"#)
}

// 2. Drain: a backlog of spans exported over HTTP/protobuf to a receiver that reads the body and answers 200.
final class CountingServer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    let bytes = Mutex<Int>(0)

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 16)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        self.fd = fd
    }

    func start() {
        Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                Thread { [self] in serve(client) }.start()
            }
        }.start()
    }

    func serve(_ client: Int32) {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var pending: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
            if n <= 0 { close(client); return }
            pending += buffer[0..<n]
            while let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
                guard pending.count >= end.upperBound + length else { break }
                pending.removeSubrange(..<(end.upperBound + length))
                bytes.withLock { $0 += length }
                let reply = Array("HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n".utf8)
                _ = reply.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
            }
        }
    }
}

if only == nil || only == "drain" {
    try? FileManager.default.removeItem(atPath: baseDir)
    var configuration = LogConfiguration(directory: baseDir + "/drain")
    configuration.durability = .never
    configuration.quotaBytes = 8 << 30
    let log = try EventLog(configuration)
    for n in 0..<spanCount { _ = log.append(span(n), timestampUnixNano: UInt64(n)) }
    let last = try await log.flush()
    let server = CountingServer()
    server.start()
    var exporter = ExporterConfiguration.otlp(
        OTLPExporterConfiguration(endpoint: "http://127.0.0.1:\(server.port)", protocol: .httpProtobuf), name: "bench")
    exporter.policy.maxBatchCount = 8192
    exporter.policy.maxBatchBytes = 8 << 20
    exporter.policy.scheduleDelay = .zero
    let pipeline = try await ExportPipeline(log: log, exporters: [exporter], registry: .standard())
    let start = ContinuousClock.now
    pipeline.start()
    let done = await pipeline.waitUntilHandled(through: last, timeout: .seconds(600))
    let seconds = (ContinuousClock.now - start) / .seconds(1)
    await pipeline.stop()
    let received = server.bytes.withLock { $0 }
    emit(#"{"bench":"otlp_http_protobuf_drain","spans":\#(spanCount),"complete":\#(done),"spans_per_s":\#(Int(Double(spanCount) / seconds)),"mb_per_s":\#(Int(Double(received) / seconds / 1e6)),"seconds":\#(String(format: "%.2f", seconds))}"#)
    log.close()
    try? FileManager.default.removeItem(atPath: baseDir)
}

// 3. Idle: what a started pipeline with two exporters costs while nothing is recorded.
/// User + system CPU time of the whole process, from /proc/self/stat (clock ticks of 10 ms).
func processCPU() -> Duration {
    let stat = (try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8)) ?? ""
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    // After the command name: state is field 3, utime 14 and stime 15 (1-based), so indices 11 and 12 here.
    guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return .zero }
    return .milliseconds((user + system) * 1000 / Int(sysconf(Int32(_SC_CLK_TCK))))
}

/// Voluntary plus involuntary context switches of each thread of the process, by thread id and name.
func contextSwitches() -> [String: (name: String, switches: Int)] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    var out: [String: (name: String, switches: Int)] = [:]
    for task in tasks {
        let status = (try? String(contentsOfFile: "/proc/self/task/\(task)/status", encoding: .utf8)) ?? ""
        let switches = status.split(separator: "\n").filter { $0.contains("ctxt_switches") }
            .compactMap { Int($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) }.reduce(0, +)
        let name = ((try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
        out[task] = (name, switches)
    }
    return out
}

if only == nil || only == "idle" {
    try? FileManager.default.removeItem(atPath: baseDir)
    var configuration = LogConfiguration(directory: baseDir + "/idle")
    configuration.durability = .interval(milliseconds: 100)
    let log = try EventLog(configuration)
    let server = CountingServer()
    server.start()
    let otlp = ExporterConfiguration.otlp(OTLPExporterConfiguration(endpoint: "http://127.0.0.1:\(server.port)", protocol: .httpProtobuf))
    let file = ExporterConfiguration.file(FileExporterConfiguration(path: baseDir + "/idle-export.jsonl"))
    let pipeline = try await ExportPipeline(log: log, exporters: [otlp, file], registry: .standard())
    pipeline.start()
    // Something to send first, so that the workers, the HTTP connection and the file are all set up.
    for n in 0..<100 { _ = log.append(span(n), timestampUnixNano: UInt64(n)) }
    let last = try await log.flush()
    let delivered = await pipeline.waitUntilHandled(through: last, timeout: .seconds(60))
    try await Task.sleep(for: .seconds(1))
    let cpuBefore = processCPU()
    let switchesBefore = contextSwitches()
    try await Task.sleep(for: .seconds(idleSeconds))
    let cpu = processCPU() - cpuBefore
    let switchesAfter = contextSwitches()
    var byThread: [String: Int] = [:]
    for (task, after) in switchesAfter { byThread[after.name, default: 0] += after.switches - (switchesBefore[task]?.switches ?? 0) }
    let switches = byThread.values.reduce(0, +)
    let busiest = byThread.filter { $0.value > 0 }.sorted { $0.value > $1.value }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
    await pipeline.stop()
    log.close()
    let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
    emit(#"{"bench":"idle_pipeline_two_exporters","delivered_first":\#(delivered),"seconds":\#(idleSeconds),"cpu_ms":\#(cpu / .milliseconds(1)),"context_switches":\#(switches),"threads":\#(threads),"switches_by_thread":{\#(busiest)}}"#)
    try? FileManager.default.removeItem(atPath: baseDir)
}
