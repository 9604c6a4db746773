import Foundation
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

/// A fresh temporary directory, removed when the test ends.
final class TemporaryDirectory {
    let path: String

    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("tflow-test-\(UUID().uuidString)").path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    var log: String { path + "/log" }

    func files(in sub: String = "log") -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: path + "/" + sub).sorted()) ?? []
    }
}

func smallConfiguration(_ directory: String, durability: Durability = .never) -> LogConfiguration {
    var configuration = LogConfiguration(directory: directory)
    configuration.durability = durability
    configuration.segmentSize = 1 << 20
    configuration.quotaBytes = 256 << 20
    configuration.queueCapacityBytes = 256 << 10
    return configuration
}

/// A ~200-byte span-ended event tagged with `n`.
func spanEvent(_ n: Int, marker: String = "") -> TelemetryEvent {
    let span = SpanData(
        traceID: TraceID(high: UInt64(n) + 1, low: 7), spanID: SpanID(UInt64(n) + 1), name: "op\(marker)",
        kind: .server, startTimeUnixNano: UInt64(n), endTimeUnixNano: UInt64(n) + 1000,
        attributes: ["n": .int(Int64(n)), "route": "/api/items", "ok": true])
    return .spanEnded(span, scope: InstrumentationScope(name: "tests"))
}

func counterEvent(_ n: Int) -> TelemetryEvent {
    .measurement(MetricMeasurement(kind: .counter, name: "c", attributes: ["n": .int(Int64(n))], value: .int(Int64(n))))
}

/// Reads every event after `position` and returns them in order.
func readAll(_ log: EventLog, after position: UInt64 = 0) throws -> [StoredEvent] {
    var out: [StoredEvent] = []
    var position = position
    while true {
        let batch = try log.read(after: position, maxCount: 8192)
        out.append(contentsOf: batch)
        if batch.endSequence == position { return out }
        position = batch.endSequence
    }
}

/// Path of the built `tflow` executable (the test target depends on it, so it is built first).
func tflowExecutable() throws -> String {
    let root = String(#filePath).components(separatedBy: "/Tests/").first!
    let candidates = [
        ProcessInfo.processInfo.environment["TFLOW_BIN"],
        root + "/.build/debug/tflow",
        root + "/.build/release/tflow",
    ].compactMap { $0 }
    return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) }, "tflow not built")
}

/// Reads a child's output on its own thread and hands out the lines seen so far.
final class LineCollector: @unchecked Sendable {
    private let condition = NSCondition()
    private var lines: [String] = []
    private var finished = false
    private let thread: Thread

    init(_ handle: FileHandle) {
        let box = Box()
        thread = Thread {
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    box.collector?.add(line)
                }
            }
            if !pending.isEmpty { box.collector?.add(String(decoding: pending, as: UTF8.self)) }
            box.collector?.end()
        }
        box.collector = self
        thread.start()
    }

    private final class Box: @unchecked Sendable { var collector: LineCollector? }

    private func add(_ line: String) {
        condition.lock(); lines.append(line); condition.broadcast(); condition.unlock()
    }

    private func end() {
        condition.lock(); finished = true; condition.broadcast(); condition.unlock()
    }

    /// Waits until `count` lines arrived (true) or the stream ended or the time ran out (false).
    func waitForLines(_ count: Int, timeoutSeconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        condition.lock(); defer { condition.unlock() }
        while lines.count < count && !finished {
            if !condition.wait(until: deadline) { break }
        }
        return lines.count >= count
    }

    /// The lines seen so far.
    func snapshot() -> [String] {
        condition.lock(); defer { condition.unlock() }
        return lines
    }

    /// Waits for the end of the stream (the process has exited) and returns every line.
    func finish() -> [String] {
        condition.lock(); defer { condition.unlock() }
        while !finished { condition.wait() }
        return lines
    }
}

/// Runs blocking work (waiting on a child process, reading a whole log) on a thread of its own. The suites run
/// in parallel on a cooperative pool as wide as the machine has cores; blocking two of its threads for seconds
/// stalls every other suite's tasks — exporters mid-retry included.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// How a child `tflow` run ended.
struct ChildRun: Sendable {
    var status: Int32
    /// The signal that ended it, or nil when it exited.
    var signal: Int32?
    /// It was still running at the timeout and was killed.
    var hung: Bool
    var stdout: [String]
    var stderr: String

    /// The JSON object `tflow verify` printed, or nil.
    var json: [String: Any]? {
        guard let line = stdout.last(where: { $0.hasPrefix("{") }) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    }

    /// The sequences `tflow verify` read back, from its ranges.
    var sequences: [UInt64] {
        guard let ranges = json?["ranges"] as? [[NSNumber]] else { return [] }
        return ranges.flatMap { $0.count == 2 ? Array($0[0].uint64Value...$0[1].uint64Value) : [] }
    }

    var acked: [UInt64] { stdout.compactMap { $0.hasPrefix("acked ") ? UInt64($0.dropFirst(6)) : nil } }

    var describe: String { "status \(status) signal \(signal.map(String.init) ?? "-") hung \(hung); stderr: \(stderr.prefix(1200))…\(stderr.suffix(300)); stdout: \(stdout.suffix(3))" }
}

/// Runs `tflow` with `arguments` (and `environment` added to this process's) on a thread of its own, killing it
/// with SIGKILL after `timeoutSeconds` (then `hung` is true) or after `killAfterMilliseconds`.
func runTflow(
    _ arguments: [String], environment: [String: String] = [:], timeoutSeconds: Double = 60, killAfterMilliseconds: Int? = nil
) async throws -> ChildRun {
    let executable = try tflowExecutable()
    return try await runBlocking {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let lines = LineCollector(output.fileHandleForReading)
        let errorLines = LineCollector(errors.fileHandleForReading)
        let deadline = Date(timeIntervalSinceNow: killAfterMilliseconds.map { Double($0) / 1000 } ?? timeoutSeconds)
        var hung = false
        while process.isRunning {
            if Date() >= deadline {
                hung = killAfterMilliseconds == nil
                kill(process.processIdentifier, SIGKILL)
                break
            }
            usleep(2_000)
        }
        process.waitUntilExit()
        let stdout = lines.finish()
        let stderr = errorLines.finish().joined(separator: "\n")
        let signalled = process.terminationReason == .uncaughtSignal
        return ChildRun(
            status: signalled ? -1 : process.terminationStatus, signal: signalled ? process.terminationStatus : nil, hung: hung,
            stdout: stdout, stderr: stderr)
    }
}

/// Copies the directory tree at `from` to `to` (which must not exist).
func copyTree(_ from: String, _ to: String) throws {
    try FileManager.default.copyItem(atPath: from, toPath: to)
}

/// The sequences that a `tflow stress --continue-on-error` run's output says were acknowledged but that are not in
/// `stored` (at most five per flush): each `acked T` acknowledges everything after the previous flush's target
/// (`flush-failed <target> …` lines carry theirs), starting after the `opened last=` line.
func acknowledgedButMissing(_ lines: [String], stored: Set<UInt64>) -> [UInt64] {
    var missing: [UInt64] = []
    var previous: UInt64 = 0
    for line in lines {
        let parts = line.split(separator: " ")
        if parts.first == "opened", let value = parts.last.flatMap({ UInt64($0.dropFirst(5)) }) { previous = value }
        if parts.first == "flush-failed", parts.count > 1, let target = UInt64(parts[1]) { previous = target }
        if parts.first == "acked", parts.count > 1, let through = UInt64(parts[1]) {
            if through > previous { missing += (previous + 1...through).filter { !stored.contains($0) }.prefix(5) }
            previous = through
        }
    }
    return missing
}
