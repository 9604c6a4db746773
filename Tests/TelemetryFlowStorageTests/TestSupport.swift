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
