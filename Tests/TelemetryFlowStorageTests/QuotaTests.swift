import Foundation
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

@Suite struct QuotaTests {
    func quotaConfiguration(_ dir: TemporaryDirectory, _ policy: QuotaPolicy) -> LogConfiguration {
        var configuration = smallConfiguration(dir.log)
        configuration.quotaBytes = 3 << 20
        configuration.quotaPolicy = policy
        configuration.blockTimeoutMilliseconds = 100
        return configuration
    }

    func appendMany(_ log: EventLog, _ count: Int) -> (appended: Int, dropped: [DropReason: Int]) {
        var appended = 0
        var dropped: [DropReason: Int] = [:]
        for n in 0..<count {
            switch log.append(spanEvent(n), timestampUnixNano: UInt64(n)) {
            case .appended: appended += 1
            case .dropped(let reason): dropped[reason, default: 0] += 1
            }
        }
        return (appended, dropped)
    }

    @Test func dropNewestRefusesNewEventsAndKeepsTheOldest() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(quotaConfiguration(dir, .dropNewest))
        defer { log.close() }
        _ = try await log.registerCursor("slow")
        _ = appendMany(log, 40_000)
        // The flush does not acknowledge what the quota refused: it says how many and why.
        let refused = try await #require(throws: TelemetryFlowError.self) { try await log.flush() }
        #expect(refused.code == .quotaExceeded && refused.message.contains("quota_drop_newest"), "\(refused)")
        let stats = log.statistics
        #expect(stats.dropped[.quotaDropNewest, default: 0] > 0)
        #expect(refused.message.hasPrefix("\(stats.dropped[.quotaDropNewest, default: 0]) events"), "\(refused)")
        // Reported once: the next flush covers only what came after.
        try await log.flush()
        #expect(stats.diskBytes <= (3 << 20) + (1 << 20), "disk use stays near the quota (\(stats.diskBytes))")
        let events = try readAll(log)
        #expect(events.first?.sequence == 1, "the oldest events are kept")
        #expect(UInt64(events.count) == stats.committed)
        #expect(stats.committed + stats.droppedTotal == 40_000)
    }

    @Test func dropOldestDeletesUnreadSegmentsAndCountsThemPerCursor() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(quotaConfiguration(dir, .dropOldest))
        defer { log.close() }
        _ = try await log.registerCursor("slow")
        let result = appendMany(log, 40_000)
        try await log.flush()
        #expect(result.appended == 40_000, "drop_oldest never refuses new events")
        let stats = log.statistics
        let droppedOldest = stats.dropped[.quotaDropOldest, default: 0]
        #expect(droppedOldest > 0)
        #expect(stats.droppedPerCursor["slow"] == droppedOldest, "the cursor lost exactly the deleted events")
        #expect(stats.diskBytes <= (3 << 20) + (1 << 20))
        let events = try readAll(log, after: log.cursor("slow")!)
        #expect(events.last?.sequence == 40_000, "the newest events are kept")
        #expect(UInt64(events.count) + droppedOldest == 40_000)
    }

    @Test func blockWaitsBoundedThenDropsAndRecoversWhenConsumersCatchUp() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(quotaConfiguration(dir, .block))
        defer { log.close() }
        _ = try await log.registerCursor("consumer")
        let first = appendMany(log, 40_000)
        let refused = try await #require(throws: TelemetryFlowError.self) { try await log.flush() }
        #expect(refused.code == .quotaExceeded && refused.message.contains("quota_block_timeout"), "\(refused)")
        let blockedDrops = first.dropped[.quotaBlockTimeout, default: 0] + first.dropped[.queueFull, default: 0]
        let stats = log.statistics
        #expect(blockedDrops > 0 || stats.dropped[.quotaBlockTimeout, default: 0] > 0, "the bounded wait ran out and events were dropped")
        #expect(stats.diskBytes <= (3 << 20) + (1 << 20))
        // The consumer catches up: space frees and appends succeed again.
        try await log.setCursor("consumer", to: stats.lastSequence)
        let second = appendMany(log, 2000)
        try await log.flush()
        #expect(second.appended == 2000)
        #expect(second.dropped.isEmpty)
    }

    @Test func diskUsageFallsBackAfterConsumersPassABacklog() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log))
        defer { log.close() }
        _ = try await log.registerCursor("a")
        _ = try await log.registerCursor("b")
        _ = appendMany(log, 50_000)
        let last = try await log.flush()
        let before = log.statistics
        #expect(before.segmentCount >= 8)
        #expect(before.diskBytes >= 7 << 20)
        try await log.setCursor("a", to: last)
        #expect(log.statistics.segmentCount == before.segmentCount, "b still needs every segment")
        try await log.setCursor("b", to: last)
        let after = log.statistics
        #expect(after.segmentCount == 1)
        #expect(after.diskBytes < 2 << 20, "disk use fell from \(before.diskBytes) to \(after.diskBytes)")
        let files = dir.files().filter { $0.hasPrefix("segment-") && $0.hasSuffix(".mdb") }
        #expect(files.count == 1, "segment files are deleted from disk: \(files)")
    }

    @Test func retentionKeepsConsumedSegmentsForReplay() async throws {
        let dir = TemporaryDirectory()
        var configuration = smallConfiguration(dir.log)
        configuration.retentionSeconds = 3600
        let log = try EventLog(configuration)
        defer { log.close() }
        _ = try await log.registerCursor("exporter")
        _ = appendMany(log, 20_000)
        let last = try await log.flush()
        try await log.setCursor("exporter", to: last)
        #expect(log.statistics.segmentCount > 1, "segments stay inside the retention window")
        try await log.setCursor("exporter", to: 0)
        #expect(try readAll(log).count == 20_000, "a replay reads everything again")
    }

    /// Nothing happens after the cursor moves: the idle writer wakes by itself when the consumed segments leave the
    /// retention window (it has no periodic wake-up to find them by).
    @Test func consumedSegmentsAreDeletedWhenTheRetentionWindowPassesWhileIdle() async throws {
        let dir = TemporaryDirectory()
        var configuration = smallConfiguration(dir.log)
        configuration.retentionSeconds = 5
        let log = try EventLog(configuration)
        defer { log.close() }
        _ = try await log.registerCursor("exporter")
        let started = ContinuousClock.now
        _ = appendMany(log, 20_000)
        let last = try await log.flush()
        try await log.setCursor("exporter", to: last)
        let sealed = log.statistics.segmentCount
        // On a loaded machine the appends can outlast the window, and the first segments then go at once.
        if ContinuousClock.now - started < .seconds(4) {
            #expect(sealed > 1, "the consumed segments stay inside the window at first")
        }
        var remaining = sealed
        for _ in 0..<600 where remaining > 1 {
            try await Task.sleep(for: .milliseconds(50))
            remaining = log.statistics.segmentCount
        }
        #expect(remaining == 1, "\(sealed) segments before, \(remaining) 25 seconds after the window passed")
    }
}
