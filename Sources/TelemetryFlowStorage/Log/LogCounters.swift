import Synchronization
import TelemetryFlowCore

/// The log's running totals — committed, corrupted and dropped events, bytes on disk, the last error — shared by
/// the producers, the writer, readers and ``EventLog/statistics``, and persisted in the metadata's `counters`
/// database (Docs/LogFormat.md) so that they survive restarts.
///
/// Every field is an atomic or behind its own lock: any thread may update any of them.
final class LogCounters: Sendable {
    let committed: Atomic<UInt64>
    let corrupted: Atomic<UInt64>
    let diskBytes = Atomic<UInt64>(0)
    /// Whether the writer is held by the byte quota (a full queue is then the quota's doing).
    let stalledByQuota = Atomic<Bool>(false)
    let drops: Locked<DropCounts>
    /// Events each cursor lost to `drop_oldest` before it read them.
    let droppedPerCursor: Locked<[String: UInt64]>
    let lastError = Locked<String?>(nil)
    /// Set by threads other than the writer when a counter changed (a plugin's drop); the writer persists the
    /// counters at its next periodic work.
    private let changed = Atomic<Bool>(false)

    /// Totals as read back from the metadata (`committed`, `corrupted`, `dropped.<reason>`,
    /// `cursor_dropped.<cursor>`); missing ones start at zero.
    init(persisted counters: [String: UInt64]) {
        committed = Atomic(counters["committed"] ?? 0)
        corrupted = Atomic(counters["corrupted"] ?? 0)
        var dropCounts = DropCounts(builtIn: DropReason.allCases.map { counters["dropped." + $0.name] ?? 0 })
        var perCursor: [String: UInt64] = [:]
        for (name, value) in counters {
            if name.hasPrefix("dropped.") {
                let reason = String(name.dropFirst("dropped.".count))
                if !DropReason.allCases.contains(where: { $0.name == reason }) { dropCounts.plugin[reason] = value }
            } else if name.hasPrefix("cursor_dropped.") {
                perCursor[String(name.dropFirst("cursor_dropped.".count))] = value
            }
        }
        drops = Locked(dropCounts)
        droppedPerCursor = Locked(perCursor)
    }

    func countDrop(_ reason: DropReason, _ count: UInt64) {
        guard count > 0 else { return }
        drops.withLock { counts in
            if let index = reason.builtInIndex { counts.builtIn[index] += count } else { counts.plugin[reason.name, default: 0] += count }
        }
    }

    /// Notes a change made off the writer thread; true for the first change since the writer last took them
    /// (the caller then wakes the writer, once).
    func markChanged() -> Bool { !changed.exchange(true, ordering: .relaxed) }

    /// Whether a counter changed since the last call (the writer's cue to persist them).
    func takeChanged() -> Bool { changed.exchange(false, ordering: .relaxed) }

    /// The values to persist; the writer adds the sequence watermarks it alone knows.
    func persistedValues(adding watermarks: [String: UInt64]) -> [String: UInt64] {
        var values = watermarks
        values["committed"] = committed.load(ordering: .relaxed)
        values["corrupted"] = corrupted.load(ordering: .relaxed)
        for (reason, count) in drops.withLock({ $0.byReason }) { values["dropped." + reason.name] = count }
        for (name, value) in droppedPerCursor.withLock({ $0 }) { values["cursor_dropped." + name] = value }
        return values
    }
}
