import ArgumentParser
import Foundation
import TelemetryFlow

/// Options shared by the commands that open a log.
struct LogOptions: ParsableArguments {
    @Option(help: "Directory of the log.")
    var dir: String

    @Option(help: "Durability: always, never, interval or interval(<ms>).")
    var durability: String = "interval(1000)"

    @Option(parsing: .unconditional, help: "Segment size in bytes (at least 1 MiB).")
    var segmentSize: Int = 64 << 20

    @Option(parsing: .unconditional, help: "Disk quota in bytes (at least twice the segment size).")
    var quota: Int = 1 << 30

    @Option(help: "Quota policy: block, drop_oldest or drop_newest.")
    var quotaPolicy: String = "block"

    @Option(parsing: .unconditional, help: "Longest wait, in milliseconds, for queue space or a failing write before events are dropped.")
    var blockTimeoutMs: Int = 1000

    func validate() throws {
        guard segmentSize > 0 else { throw ValidationError("--segment-size must be a positive number of bytes, not \(segmentSize)") }
        guard quota > 0 else { throw ValidationError("--quota must be a positive number of bytes, not \(quota)") }
        do { _ = try configuration() } catch let error as TelemetryFlowError { throw ValidationError(error.message) }
    }

    func configuration() throws -> LogConfiguration {
        var configuration = LogConfiguration(directory: dir)
        configuration.durability = try Durability(parsing: durability)
        configuration.segmentSize = segmentSize
        configuration.quotaBytes = UInt64(max(0, quota))
        configuration.quotaPolicy = try QuotaPolicy(parsing: quotaPolicy)
        configuration.blockTimeoutMilliseconds = blockTimeoutMs
        try configuration.validate()
        return configuration
    }
}

func describe(_ statistics: LogStatistics) -> String {
    var lines = [
        "  appended:   \(statistics.appended)",
        "  committed:  \(statistics.committed)",
        "  dropped:    \(statistics.droppedTotal)" + (statistics.droppedTotal == 0 ? "" : " " + statistics.dropped.filter { $0.value > 0 }.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")),
        "  corrupted:  \(statistics.corrupted)",
        "  sequences:  \(statistics.firstSequence.map(String.init) ?? "-") … \(statistics.lastSequence)",
        "  segments:   \(statistics.segmentCount) (\(statistics.diskBytes) bytes on disk)",
    ]
    for (name, position) in statistics.cursors.sorted(by: { $0.key < $1.key }) { lines.append("  cursor \(name): \(position)") }
    if let error = statistics.lastError { lines.append("  last error: \(error)") }
    return lines.joined(separator: "\n")
}

/// Counts the stored events by type and returns a few decoded samples.
func summarize(_ log: EventLog, samples: Int) throws -> (counts: [String: Int], samples: [String], total: Int) {
    var counts: [String: Int] = [:]
    var shown: [String] = []
    var position: UInt64 = 0
    var total = 0
    while true {
        let batch = try log.read(after: position, maxCount: 4096)
        if batch.isEmpty && batch.endSequence == position { break }
        for event in batch {
            counts[event.type.description, default: 0] += 1
            total += 1
            if shown.count < samples { shown.append("  #\(event.sequence) \(try event.decode().summary)") }
        }
        position = batch.endSequence
    }
    return (counts, shown, total)
}

