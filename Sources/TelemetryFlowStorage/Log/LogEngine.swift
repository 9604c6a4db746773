import CLMDB
import Glibc
import Synchronization
import TelemetryFlowCore

/// The shared state behind ``EventLog``: the queue, the segment list, cursors, counters and the writer thread.
/// (The public class wraps it so that the writer thread, which holds the engine, does not keep the log alive.)
///
/// `@unchecked Sendable`: shared state is behind `Locked` or atomics; `writer` (the ``WriterState``) is read and
/// written only by the writer thread, and by `init` and `close()` when that thread is not running (before
/// `start()`, after it was joined); `recoveryReport` is written only in `init`.
final class LogEngine: @unchecked Sendable {
    let configuration: LogConfiguration
    let directory: String
    let meta: MetadataStore
    let fileLock: Locked<FileLock?>
    let queue: AppendQueue
    var recoveryReport = RecoveryReport()

    /// The segments readers may open, oldest first. Replaced (never mutated in place) by the writer.
    let segmentList: Locked<[Segment]>
    let cursorState: Locked<[String: UInt64]>
    /// Sequence ranges found lost or damaged (each counted once).
    let lost: Locked<LostRanges>
    /// Flush waiters, the processed sequence, drops not yet reported, and the commit watch consumers sleep on.
    let flushes = FlushTracker()
    let stalledByQuota = Atomic<Bool>(false)
    let closed = Atomic<Bool>(false)
    let committedTotal: Atomic<UInt64>
    let corruptedTotal: Atomic<UInt64>
    let diskBytes = Atomic<UInt64>(0)
    let drops: Locked<DropCounts>
    /// Set by threads other than the writer when a counter changed (a plugin's drop); the writer persists the
    /// counters at its next periodic work.
    let countersChanged = Atomic<Bool>(false)
    let droppedPerCursor: Locked<[String: UInt64]>
    let lastError = Locked<String?>(nil)
    private let thread = Locked<NamedThread?>(nil)
    /// Syncs files off the writer thread under ``Durability/interval(milliseconds:)``; nil in the other modes.
    let syncer: BackgroundSyncer?
    /// Checksums sealed segments and refreshes the metadata backup off the writer thread (set in `start()`).
    private(set) var sealer: SegmentSealer?
    /// How many times `meta.backup` was written by this process; its lock keeps the writer and the sealer from
    /// writing the backup at the same time.
    let backupsWritten = Locked<UInt64>(0)

    /// Writer-thread state: touched only by the writer thread after `start()`.
    var writer: WriterState

    /// Called by the writer when it drops sequences it had handed out, before it publishes them as processed.
    func recordDrop(_ range: ClosedRange<UInt64>, reason: DropReason, cause: TelemetryFlowError?) {
        let error: TelemetryFlowError
        if let cause {
            let errno = (cause.underlying as? CResultCode)?.code
            let code: TelemetryFlowError.Code = isDiskFull(cause) ? .diskFull : (cause.code == .io || errno == EIO ? .io : .storage)
            error = TelemetryFlowError(code, "writing failed (\(reason)): \(cause.message)", underlying: cause.underlying)
        } else {
            error = TelemetryFlowError(.quotaExceeded, "the disk quota of \(configuration.quotaBytes) bytes is full (\(reason))")
        }
        flushes.recordDrop(range, error)
    }

    var processedSequence: UInt64 { flushes.processed }

    var firstRetainedSequence: UInt64? {
        let segments = segmentList.withLock { $0 }
        guard let first = segments.first else { return nil }
        return first.firstSequence
    }

    init(configuration: LogConfiguration) throws {
        self.configuration = configuration
        directory = configuration.directory.hasSuffix("/") && configuration.directory.count > 1
            ? String(configuration.directory.dropLast()) : configuration.directory
        try PosixFile.makeDirectories(directory)
        let recovered = try LogRecovery.open(directory: directory, configuration: configuration)
        meta = recovered.meta
        fileLock = Locked(recovered.lock)
        recoveryReport = recovered.report
        segmentList = Locked(recovered.segments.map(\.segment))
        cursorState = Locked(recovered.cursors)
        lost = Locked(recovered.lost)
        committedTotal = Atomic(recovered.counters["committed"] ?? 0)
        corruptedTotal = Atomic(recovered.counters["corrupted"] ?? 0)
        var dropCounts = DropCounts(builtIn: DropReason.allCases.map { recovered.counters["dropped." + $0.name] ?? 0 })
        for (name, value) in recovered.counters where name.hasPrefix("dropped.") {
            let reason = String(name.dropFirst("dropped.".count))
            if !DropReason.allCases.contains(where: { $0.name == reason }) { dropCounts.plugin[reason] = value }
        }
        drops = Locked(dropCounts)
        var perCursor: [String: UInt64] = [:]
        for (name, value) in recovered.counters where name.hasPrefix("cursor_dropped.") {
            perCursor[String(name.dropFirst("cursor_dropped.".count))] = value
        }
        droppedPerCursor = Locked(perCursor)
        queue = AppendQueue(configuration: configuration, nextSequence: recovered.nextSequence)
        flushes.publish(recovered.nextSequence - 1)
        writer = WriterState(
            segments: recovered.segments, committed: recovered.nextSequence - 1,
            spare: queue.writerBuffer, now: monotonicNanos())
        writer.stored = recovered.counters["stored_through"] ?? 0
        diskBytes.store(writer.totalBytes, ordering: .relaxed)
        if case .interval = configuration.durability { syncer = BackgroundSyncer() } else { syncer = nil }
    }

    func start() {
        let engine = self
        sealer = SegmentSealer(
            store: { id, sums in _ = engine.queue.submit(.storeChecksums(id, sums)) },
            backup: { engine.writeBackup() },
            activity: { engine.queue.lastQueuedSequence })
        thread.withLock { $0 = NamedThread(name: "tflow-writer") { engine.writerMain() } }
    }

    // MARK: Producer side

    /// Encodes `event` on the caller's stack and queues the record.
    func append(_ event: borrowing TelemetryEvent, timestampUnixNano: UInt64) -> AppendOutcome {
        // The writer thread computes the checksum as it commits the record.
        EventCodec.withUnsealedRecord(event, timestampUnixNano: timestampUnixNano) { append($0) }
    }

    @inline(__always)
    func append(_ record: UnsafeRawBufferPointer) -> AppendOutcome {
        var outcome = queue.append(record)
        if case .dropped(var reason) = outcome {
            // A queue that stayed full while the writer was held by the byte quota is the quota's doing.
            if reason == .queueFull && stalledByQuota.load(ordering: .relaxed) { reason = .quotaBlockTimeout }
            countDrop(reason, 1)
            outcome = .dropped(reason)
        }
        return outcome
    }

    func markCountersDirty() { countersChanged.store(true, ordering: .relaxed) }

    func countDrop(_ reason: DropReason, _ count: UInt64) {
        guard count > 0 else { return }
        drops.withLock { counts in
            if let index = reason.builtInIndex { counts.builtIn[index] += count } else { counts.plugin[reason.name, default: 0] += count }
        }
    }

    func flush() async throws -> UInt64 {
        let target = queue.lastQueuedSequence
        queue.hurry()
        return try await flushes.wait(through: target)
    }

    /// Called by the writer once everything up to `sequence` is committed or dropped.
    func publishProcessed(_ sequence: UInt64) { flushes.publish(sequence) }

    // MARK: Cursors

    func setCursors(_ changes: [String: UInt64?], validate: Bool, extra: MetadataWrite? = nil) async throws {
        if validate {
            for (name, position) in changes {
                guard !name.isEmpty, name.utf8.count <= 200 else {
                    throw TelemetryFlowError(.invalidArgument, "cursor name \"\(name)\" must be 1–200 bytes")
                }
                guard let position else { continue }
                let last = queue.lastQueuedSequence
                guard position <= last else {
                    throw TelemetryFlowError(
                        .invalidArgument, "cursor \(name) cannot move to \(position): the last appended sequence is \(last)")
                }
                if let first = firstRetainedSequence, position + 1 < first {
                    throw TelemetryFlowError(
                        .invalidArgument,
                        "cursor \(name) cannot move to \(position): the log retains sequences from \(first) on")
                }
            }
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let submitted = queue.submit(.setCursors(changes, extra: extra, done: { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }))
            if !submitted { continuation.resume(throwing: TelemetryFlowError(.closed, "the log is closed")) }
        }
    }

    func position(beforeTimestamp timestamp: UInt64) throws -> UInt64 {
        // Segments are in sequence order and timestamps are nearly monotonic: scan batches from the start.
        var position = (firstRetainedSequence ?? 1) - 1
        while true {
            let batch = try read(after: position, maxCount: 4096, maxBytes: 16 << 20)
            if batch.isEmpty { return position }
            for event in batch where event.timestampUnixNano >= timestamp { return event.sequence - 1 }
            position = batch.endSequence
        }
    }

    // MARK: Reading

    func read(after position: UInt64, maxCount: Int, maxBytes: Int) throws -> EventBatch {
        guard !closed.load(ordering: .relaxed) else { throw TelemetryFlowError(.closed, "the log is closed") }
        var batch = EventBatch(after: position)
        let segments = segmentList.withLock { $0 }
        guard !segments.isEmpty, maxCount > 0 else { return batch }
        var index = 0
        var low = 0
        var high = segments.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if segments[mid].firstSequence <= position &+ 1 { index = mid; low = mid + 1 } else { high = mid - 1 }
        }
        var found: [UInt64: String] = [:]
        var from = position &+ 1
        while index < segments.count && batch.count < maxCount && batch.byteCount < maxBytes {
            let segment = segments[index]
            let failure: TelemetryFlowError?
            do throws(TelemetryFlowError) {
                try readSegment(segment, from: max(from, segment.firstSequence), into: &batch, maxCount: maxCount, maxBytes: maxBytes, damaged: &found)
                failure = nil
            } catch {
                failure = error
            }
            if let error = failure {
                guard error.code == .corruptedRecord else { throw error }
                // Structural damage inside LMDB: skip the rest of this segment rather than loop on it.
                let next = index + 1 < segments.count ? segments[index + 1].firstSequence : queue.lastQueuedSequence + 1
                batch.endSequence = max(batch.endSequence, next - 1)
                found[batch.endSequence] = "segment structure damaged: \(error.message)"
                lastError.withLock { $0 = error.description }
            }
            index += 1
            if index < segments.count { from = segments[index].firstSequence }
        }
        if !found.isEmpty { noteCorrupted(found) }
        batch.skippedCorrupted = found.count
        return batch
    }

    private func readSegment(
        _ segment: Segment, from start: UInt64, into batch: inout EventBatch, maxCount: Int, maxBytes: Int,
        damaged: inout [UInt64: String]
    ) throws(TelemetryFlowError) {
        var damage: Segment.Damage?
        let reader = segment.reader(damage: &damage)
        if let damage { noteSegmentDamage(segment, damage) }
        func add(_ seq: UInt64, _ record: UnsafeRawBufferPointer) {
            do throws(TelemetryFlowError) {
                let envelope = try EventCodec.envelope(of: record)
                let base = batch.storage.count
                batch.storage.append(contentsOf: record)
                batch.entries.append(.init(
                    sequence: seq, type: envelope.type, timestamp: envelope.timestampUnixNano, start: base,
                    payloadStart: base + envelope.payload.lowerBound, payloadEnd: base + envelope.payload.upperBound,
                    end: base + record.count))
            } catch {
                damaged[seq] = error.message
            }
            batch.endSequence = seq
        }
        switch reader {
        case .salvaged(let records):
            var index = records.index(atOrAfter: start)
            while index < records.count && batch.count < maxCount && batch.byteCount < maxBytes {
                records.record(at: index).withUnsafeBytes { add(records.sequences[index], $0) }
                index += 1
            }
            // What the walker could not recover is counted (``noteSegmentDamage``); consumers move past it.
            if index == records.count, let last = segment.lastSequence, batch.count < maxCount, batch.byteCount < maxBytes {
                batch.endSequence = max(batch.endSequence, last)
            }
        case .lmdb(let env, let dbi):
            try env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
                var cursor: OpaquePointer?
                try lmdbCheck(mdb_cursor_open(txn, dbi, &cursor), "cannot open a cursor on \(segment.path)")
                defer { mdb_cursor_close(cursor) }
                var keyBytes = start.bigEndian
                var k = MDB_val()
                var v = MDB_val()
                var rc = withUnsafeMutableBytes(of: &keyBytes) { raw in
                    k = MDB_val(mv_size: 8, mv_data: raw.baseAddress)
                    return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
                }
                while rc == 0 {
                    guard let seq = sequence(fromKey: k.raw) else {
                        throw TelemetryFlowError(.corruptedRecord, "a key in \(segment.path) is not a sequence")
                    }
                    add(seq, v.raw)
                    if batch.count >= maxCount || batch.byteCount >= maxBytes { return }
                    rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
                }
                if rc != MDB_NOTFOUND { try lmdbCheck(rc, "cannot read \(segment.path)") }
            }
        }
    }

    /// Counts newly found damaged records once each and has the writer remember them.
    func noteCorrupted(_ found: [UInt64: String]) {
        let fresh = lost.withLock { ranges in found.filter { ranges.insert($0.key...$0.key) > 0 } }
        guard !fresh.isEmpty else { return }
        corruptedTotal.add(UInt64(fresh.count), ordering: .relaxed)
        _ = queue.submit(.recordLost(fresh.map { ($0.key...$0.key, $0.value) }, damagedSegment: nil))
        let sorted = fresh.keys.sorted()
        announceLoss(sorted.map { $0...$0 }, reason: fresh[sorted[0]] ?? "a record fails its checksum", segment: nil)
    }

    /// Appends a ``LifecycleEvent/Kind/dataLost`` event saying what was lost and why, so that the loss travels with
    /// the telemetry to every exporter, not only into the statistics.
    func announceLoss(_ ranges: [ClosedRange<UInt64>], reason: String, segment: String?) {
        guard !ranges.isEmpty else { return }
        let count = ranges.reduce(UInt64(0)) { $0 + ($1.upperBound - $1.lowerBound + 1) }
        let text = ranges.prefix(64).map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
            + (ranges.count > 64 ? ",…" : "")
        var attributes: Attributes = [
            "telemetryflow.lost.count": .int(Int64(clamping: count)), "telemetryflow.lost.ranges": .string(text),
            "telemetryflow.lost.reason": .string(String(reason.prefix(512))),
        ]
        if let segment { attributes.set("telemetryflow.lost.segment", .string(segment)) }
        _ = append(.lifecycle(LifecycleEvent(kind: .dataLost, attributes: attributes)), timestampUnixNano: wallClockNanos())
    }

    /// Counts what the first read of a damaged sealed segment could not recover, and has the writer record it
    /// (and mark the segment, so that later opens read it through the walker at once).
    func noteSegmentDamage(_ segment: Segment, _ damage: Segment.Damage) {
        let reason = "\(Segment.fileName(id: segment.id)) failed verification: \(damage.reason)"
        let fresh = lost.withLock { ranges in damage.lost.reduce(UInt64(0)) { $0 + ranges.insert($1) } }
        if damage.alreadyMarked && fresh == 0 { return }
        corruptedTotal.add(fresh, ordering: .relaxed)
        lastError.withLock { $0 = reason }
        _ = queue.submit(.recordLost(damage.lost.map { ($0, reason) }, damagedSegment: segment.id))
        if fresh > 0 { announceLoss(damage.lost, reason: reason, segment: Segment.fileName(id: segment.id)) }
    }

    // MARK: Status

    func statistics() -> LogStatistics {
        let segments = segmentList.withLock { $0 }
        let dropped = drops.withLock { $0.byReason }
        return LogStatistics(
            appended: queue.lastQueuedSequence,
            committed: committedTotal.load(ordering: .relaxed),
            dropped: dropped,
            corrupted: corruptedTotal.load(ordering: .relaxed),
            firstSequence: segments.isEmpty ? nil : segments[0].firstSequence,
            lastSequence: processedSequence,
            segmentCount: segments.count,
            diskBytes: diskBytes.load(ordering: .relaxed),
            cursors: cursorState.withLock { $0 },
            droppedPerCursor: droppedPerCursor.withLock { $0 },
            lostRanges: lost.withLock { $0.ranges },
            lastError: lastError.withLock { $0 } ?? syncer?.lastFailure.withLock { $0 })
    }

    // MARK: Closing

    func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Checksums of segments sealed since the last pause are computed now, while the writer can store them.
        sealer?.finish()
        queue.stop()
        let writerThread = thread.withLock { t -> NamedThread? in
            defer { t = nil }
            return t
        }
        writerThread?.join()
        sealer?.stop()
        // The sealer's closures hold the engine: dropping the sealer breaks that cycle, so a closed log is freed
        // (AddressSanitizer's leak check found every closed engine, with its queue buffers, still allocated).
        sealer = nil
        syncer?.stop()
        // Release the files so the log can be reopened, here or by another process. Readers still inside a
        // segment keep its environment open until they finish.
        writer.segments = []
        segmentList.withLock { $0 = [] }
        meta.env.close()
        fileLock.withLock { $0 = nil }
        flushes.close()
    }
}
