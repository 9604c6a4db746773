import ArgumentParser
import Foundation
import TelemetryFlow

/// Opens a log, reads it to the end, optionally appends to it, and prints what it found as one JSON object
/// (`events` and `ranges` count the events appended to it; the log's own `data_lost` notices are `lossEvents`).
///
/// The damage and fault-injection tests run it as a child process against damaged copies of a log: it must
/// never die of a signal or hang, and what it prints says what was read back and what was counted lost.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open a log, read every event, optionally append, and print a JSON summary of what survived.")

    @Option(help: "Directory of the log (it must exist).")
    var dir: String

    @Option(help: "Durability to open with: always, never, interval or interval(<ms>).")
    var durability: String = "never"

    @Option(parsing: .unconditional, help: "Events to append (and flush) after reading, then read back (0 or more).")
    var append: Int = 0

    @Option(help: "Segment size in bytes, for the appended events.")
    var segmentSize: Int = 64 << 20

    func validate() throws {
        guard append >= 0 else { throw ValidationError("--append must be 0 or more, not \(append)") }
        guard FileManager.default.fileExists(atPath: dir) else { throw ValidationError("no log at \(dir): the directory does not exist") }
    }

    func run() async throws {
        var configuration = LogConfiguration(directory: dir)
        configuration.durability = try Durability(parsing: durability)
        configuration.segmentSize = segmentSize
        configuration.quotaBytes = max(configuration.quotaBytes, 4 * UInt64(segmentSize))
        let log = try EventLog(configuration)
        let report = log.recoveryReport
        var ranges: [[UInt64]] = []
        var events = 0
        var undecodable = 0
        var lossEvents = 0
        var position: UInt64 = 0
        var batches = 0
        while true {
            let batch = try log.read(after: position, maxCount: 8192)
            for event in batch {
                let decoded = try? event.decode()
                if case .lifecycle(let lifecycle) = decoded, lifecycle.kind == .dataLost {
                    // The log's own notices of loss are reported apart from the events it was given.
                    lossEvents += 1
                    continue
                }
                events += 1
                if decoded == nil { undecodable += 1 }
                if let last = ranges.last, last[1] + 1 == event.sequence { ranges[ranges.count - 1][1] = event.sequence } else { ranges.append([event.sequence, event.sequence]) }
            }
            batches += 1
            guard batch.endSequence > position else { break }
            position = batch.endSequence
        }
        var appendedRange: [UInt64] = []
        var readBack = true
        var flushError: String?
        if append > 0 {
            let scope = InstrumentationScope(name: "verify")
            var sequences: [UInt64] = []
            for n in 0..<append {
                let event = TelemetryEvent.log(LogRecordData(timeUnixNano: UInt64(n), severity: .info, body: .string("verify \(n)")), scope: scope)
                if let sequence = log.append(event, timestampUnixNano: UInt64(n)).sequence { sequences.append(sequence) }
            }
            do { try await log.flush() } catch { flushError = "\(error)" }
            if let first = sequences.first, let last = sequences.last {
                appendedRange = [first, last]
                let stored = try log.read(after: first - 1, maxCount: append + 1)
                readBack = stored.map(\.sequence) == sequences
            }
        }
        let statistics = log.statistics
        log.close()
        var out: [String: Any] = [
            "events": events, "ranges": ranges, "lossEvents": lossEvents, "undecodable": undecodable, "corrupted": statistics.corrupted,
            "openCorrupted": report.corruptedRecords, "lastSequence": statistics.lastSequence,
            "salvaged": report.salvagedSegments, "adopted": report.adoptedSegments, "removed": report.removedOrphans,
            "problems": report.problems, "lostRanges": report.lostRanges.map { [$0.lowerBound, $0.upperBound] },
            "cursors": statistics.cursors, "appended": appendedRange, "readBack": readBack,
            "metadataRebuilt": report.metadataRebuilt ?? "", "dropped": statistics.droppedTotal,
            "staleReadersCleared": report.staleReadersCleared,
            "lastError": statistics.lastError ?? "",
        ]
        if let flushError { out["flushError"] = flushError }
        let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
