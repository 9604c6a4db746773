import CLMDB
import Glibc
import Synchronization
import TelemetryFlowCore

/// A segment as the writer thread tracks it.
struct SegmentState {
    var record: SegmentRecord
    var segment: Segment
}

/// State only the writer thread touches.
struct WriterState {
    var segments: [SegmentState]
    /// The highest sequence committed or dropped by the writer.
    var committed: UInt64
    /// The buffer swapped with the queue's; holds the records being committed.
    var spare: RecordBuffer
    var pending: Pending?
    var lastSync: UInt64
    var lastCollect: UInt64
    var lastCounterPersist: UInt64
    var countersDirty = false
    /// Records or operations arrived since the last periodic sync (under `interval`): the next one is due.
    var unsynced = false
    /// Records or operations arrived since the last garbage collection: the next one is due within a second.
    var collectDue = true
    /// The active segment was sealed in the metadata but its successor could not be created yet: nothing may be
    /// written to it any more, and the next commit retries the roll first.
    var rollPending = false
    /// The highest sequence written to a segment (``committed`` also counts dropped ones).
    var stored: UInt64 = 0
    /// The error of the last failed write attempt, reported to the flushes of the events it made the writer drop.
    var lastWriteError: TelemetryFlowError?
    /// Under `interval`: segments sealed since the last periodic sync, synced with the active one at the next.
    var sealedSinceSync: [String] = []

    struct Pending {
        var offset: Int
        var firstSequence: UInt64
        var count: Int
        var since: UInt64
    }

    init(segments: [SegmentState], committed: UInt64, spare: RecordBuffer, now: UInt64) {
        self.segments = segments
        self.committed = committed
        self.spare = spare
        lastSync = now
        lastCollect = now
        lastCounterPersist = now
    }

    var sealedBytes: UInt64 { segments.dropLast().reduce(0) { $0 + $1.record.bytes } }
    var totalBytes: UInt64 { sealedBytes + (segments.last?.segment.usedBytes ?? 0) }
}

extension LogEngine {
    /// The longest an idle writer sleeps when nothing is scheduled: everything it does while idle has a deadline
    /// (``nextRetentionExpiry()``, the sync, collection and counter persistence after activity), so this bound is
    /// only a safety net.
    static let idleWakeNanos: UInt64 = 3_600_000_000_000

    private var blockNanos: UInt64 { UInt64(configuration.blockTimeoutMilliseconds) * 1_000_000 }

    func writerMain() {
        while true {
            // Idle, the writer sleeps until work arrives or the oldest segment leaves the retention window; periodic
            // work (sync, garbage collection, counters) is scheduled only when something happened since it last ran.
            let now = monotonicNanos()
            var deadline = now + Self.idleWakeNanos
            let expiry = nextRetentionExpiry()
            if expiry < Self.idleWakeNanos {
                // At most one collection a second, even if deleting the segment keeps failing.
                deadline = min(deadline, max(now + expiry, writer.lastCollect + 1_000_000_000))
            }
            if case .interval(let ms) = configuration.durability, writer.unsynced || !writer.sealedSinceSync.isEmpty {
                deadline = min(deadline, writer.lastSync + UInt64(ms) * 1_000_000)
            }
            if writer.collectDue { deadline = min(deadline, writer.lastCollect + 1_000_000_000) }
            if writer.countersDirty { deadline = min(deadline, writer.lastCounterPersist + 1_000_000_000) }
            if writer.pending != nil { deadline = min(deadline, now + 20_000_000) }
            let canTake = writer.pending == nil
            if canTake { writer.spare.reset() }
            let work = queue.take(into: &writer.spare, takeRecords: canTake, until: deadline)
            if !work.operations.isEmpty { apply(work.operations) }
            if work.count > 0 || !work.operations.isEmpty {
                writer.unsynced = true
                writer.collectDue = true
            }
            if work.count > 0 {
                writer.pending = .init(offset: 0, firstSequence: work.firstSequence, count: work.count, since: monotonicNanos())
            }
            if writer.pending != nil { commitPending() }
            periodic(force: false)
            if work.stopping {
                if writer.pending == nil && work.count == 0 && work.operations.isEmpty { break }
                if writer.pending != nil { usleep(2_000) }
            }
        }
        periodic(force: true)
        // Sealed segments still waiting for their periodic sync are synced by the syncer as it stops.
        requestSync()
        let active = writer.segments.last?.segment
        try? active?.writable?.env.sync()
        try? meta.env.sync()
        writeBackup()
    }

    // MARK: Committing

    /// The size of the record at `offset` of the spare buffer, from its envelope.
    @inline(__always)
    private func recordSize(at offset: Int) -> Int {
        let raw = writer.spare.bytes
        return Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))) + EventCodec.overhead
    }

    private func commitPending() {
        guard var pending = writer.pending else { return }
        // LMDB stores a node header and the key beside each value.
        let perRecordOverhead = 16
        /// How many pending records fit under the quota, and their bytes. Walks the records only when the
        /// whole batch does not fit.
        func fitting() -> (count: Int, bytes: Int) {
            let used = writer.totalBytes
            guard configuration.quotaBytes > used else { return (0, 0) }
            var room = configuration.quotaBytes - used
            let allBytes = writer.spare.count - pending.offset
            if UInt64(allBytes + pending.count * perRecordOverhead) <= room { return (pending.count, allBytes) }
            var n = 0
            var offset = pending.offset
            while n < pending.count {
                let size = recordSize(at: offset)
                let cost = UInt64(size + perRecordOverhead)
                guard cost <= room else { break }
                room -= cost
                n += 1
                offset += size
            }
            return (n, offset - pending.offset)
        }
        var (fit, bytes) = (0, 0)
        do throws(TelemetryFlowError) {
            if writer.rollPending || (writer.segments.last?.segment.usedBytes ?? 0) >= UInt64(configuration.segmentSize) {
                try roll(firstSequence: pending.firstSequence)
            }
            (fit, bytes) = fitting()
            if fit < pending.count && configuration.quotaPolicy == .dropOldest {
                while fit < pending.count && dropOldestSegment() { (fit, bytes) = fitting() }
            }
            if fit > 0 { try writeRecords(offset: pending.offset, firstSequence: pending.firstSequence, count: fit) }
        } catch {
            // Nothing of this attempt was committed. The quota policy decides: make room, give up now, or keep the
            // batch (producers then wait for queue space) until the bounded wait runs out.
            counters.lastError.withLock { $0 = error.description }
            writer.lastWriteError = error
            let full = isDiskFull(error)
            if full && configuration.quotaPolicy == .dropOldest && writer.segments.count > 1 && dropOldestSegment() { return }
            if (full && configuration.quotaPolicy == .dropNewest) || monotonicNanos() - pending.since >= blockNanos {
                dropPending(pending.count, reason: .storageError)
            }
            return
        }
        if fit > 0 {
            counters.lastError.withLock { $0 = nil }
            writer.lastWriteError = nil
            counters.committed.add(UInt64(fit), ordering: .relaxed)
            writer.countersDirty = true
            writer.committed = pending.firstSequence + UInt64(fit) - 1
            writer.stored = writer.committed
            pending.offset += bytes
            pending.firstSequence += UInt64(fit)
            pending.count -= fit
        }
        if pending.count == 0 {
            writer.pending = nil
            counters.stalledByQuota.store(false, ordering: .relaxed)
        } else {
            writer.pending = pending
            counters.stalledByQuota.store(true, ordering: .relaxed)
            switch configuration.quotaPolicy {
            case .dropNewest: dropPending(pending.count, reason: .quotaDropNewest)
            case .dropOldest: dropPending(pending.count, reason: .quotaDropOldest)
            case .block:
                if monotonicNanos() - pending.since >= blockNanos { dropPending(pending.count, reason: .quotaBlockTimeout) }
            }
        }
        counters.diskBytes.store(writer.totalBytes, ordering: .relaxed)
        publishProcessed(writer.committed)
    }

    private func dropPending(_ count: Int, reason: DropReason) {
        guard let pending = writer.pending else { return }
        counters.countDrop(reason, UInt64(count))
        writer.countersDirty = true
        let range = pending.firstSequence...(pending.firstSequence + UInt64(pending.count) - 1)
        writer.committed = range.upperBound
        writer.pending = nil
        // Flushes covering these sequences fail with the cause: they were handed out but are not stored.
        recordDrop(range, reason: reason, cause: reason == .storageError ? writer.lastWriteError : nil)
        publishProcessed(writer.committed)
    }

    /// Whether `error` means there was no room. LMDB reports a short write as EIO, so an EIO while the file
    /// system has less than a segment free counts as a full disk too.
    func isDiskFull(_ error: TelemetryFlowError) -> Bool {
        guard let code = (error.underlying as? CResultCode)?.code else { return false }
        if code == ENOSPC || code == EDQUOT || code == MDB_MAP_FULL { return true }
        guard code == EIO else { return false }
        var fs = statvfs()
        guard statvfs(directory, &fs) == 0 else { return false }
        return UInt64(fs.f_bavail) * UInt64(fs.f_frsize) < UInt64(configuration.segmentSize)
    }

    private func writeRecords(offset: Int, firstSequence: UInt64, count: Int) throws(TelemetryFlowError) {
        var attempt = 0
        while true {
            guard let active = writer.segments.last else { throw TelemetryFlowError(.storage, "the log has no active segment") }
            do throws(TelemetryFlowError) {
                try putRecords(into: active.segment, offset: offset, firstSequence: firstSequence, count: count)
                return
            } catch let error where attempt == 0 && (error.underlying as? CResultCode)?.code == MDB_MAP_FULL {
                attempt += 1
                try roll(firstSequence: firstSequence)
            }
        }
    }

    /// Appends `count` records found from `offset` of the spare buffer, sealing each one's checksum on the way.
    private func putRecords(into segment: Segment, offset: Int, firstSequence: UInt64, count: Int) throws(TelemetryFlowError) {
        guard let (env, dbi) = segment.writable, !writer.rollPending else {
            throw TelemetryFlowError(.storage, "the active segment \(segment.path) is sealed; the next segment could not be created")
        }
        let path = segment.path
        let base = writer.spare.base
        // The time of the records that ask for the commit's (measurements): read once per commit.
        let now = wallClockNanos()
        try env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
            // One cursor for the whole batch: it stays on the last page, where every append lands.
            var cursor: OpaquePointer?
            try lmdbCheck(mdb_cursor_open(txn, dbi, &cursor), "cannot open a cursor on \(path)")
            defer { mdb_cursor_close(cursor) }
            var position = offset
            var key = UInt64(0)
            for i in 0..<count {
                key = (firstSequence + UInt64(i)).bigEndian
                let size = recordSize(at: position)
                let record = base + position
                EventCodec.sealQueuedRecord(
                    UnsafeMutableRawBufferPointer(start: record, count: size), sequence: firstSequence + UInt64(i), commitTimeUnixNano: now)
                let rc = withUnsafeMutableBytes(of: &key) { keyRaw -> Int32 in
                    var k = MDB_val(mv_size: 8, mv_data: keyRaw.baseAddress)
                    var v = MDB_val(mv_size: size, mv_data: record)
                    return mdb_cursor_put(cursor, &k, &v, UInt32(MDB_APPEND))
                }
                try lmdbCheck(rc, "cannot append sequence \(firstSequence + UInt64(i)) to \(path)")
                position += size
            }
        }
    }

    // MARK: Segments

    /// Seals the active segment and starts a new one whose sequences begin at `firstSequence`.
    ///
    /// Crash-safe in this order: one metadata transaction seals it and names the next segment; then the next file
    /// is created; then the sealer thread computes the sealed file's page checksums and the writer stores them. An open after a kill between the steps either still finds the old segment active or creates the
    /// named successor. When the successor cannot be created (a full disk), nothing more is written to the sealed
    /// file and the next commit retries.
    private func roll(firstSequence: UInt64) throws(TelemetryFlowError) {
        guard var active = writer.segments.last else { throw TelemetryFlowError(.storage, "the log has no active segment") }
        CrashPoint.hit("roll.begin")
        if !writer.rollPending {
            active.record.lastSequence = max(writer.committed, active.record.firstSequence)
            active.record.sealedAtNanos = wallClockNanos()
        }
        active.record.bytes = PosixFile.size(active.segment.path) ?? active.segment.usedBytes
        CrashPoint.hit("roll.checksummed")
        let next = SegmentRecord(id: active.record.id + 1, firstSequence: firstSequence)
        let values = counterSnapshot()
        let sealed = active.record
        try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
            try meta.putSegment(txn, sealed)
            try meta.putSegment(txn, next)
            try meta.putCounters(txn, values)
        }
        writer.rollPending = true
        writer.segments[writer.segments.count - 1] = active
        CrashPoint.hit("roll.recorded")
        let segment = try Segment(activeIn: directory, id: next.id, firstSequence: next.firstSequence, configuration: configuration)
        CrashPoint.hit("roll.created")
        writer.rollPending = false
        // Reopen the sealed segment read-only: the writable environment is released once readers let go.
        active.segment = Segment(sealing: active.segment, lastSequence: sealed.lastSequence)
        writer.segments[writer.segments.count - 1] = active
        writer.segments.append(SegmentState(record: next, segment: segment))
        // `always` synced every commit; `interval` has the sealed file synced at the next periodic sync, off this
        // thread (a whole segment takes tens of milliseconds, long enough to fill the queue); `never` leaves it
        // to the kernel.
        if syncer != nil { writer.sealedSinceSync.append(active.segment.path) }
        publishSegments()
        // The sealed file takes no more writes: its page checksums are computed off this thread, then stored.
        sealer?.request(.checksum(id: sealed.id, path: active.segment.path))
        sealer?.request(.backup)
    }

    /// Refreshes `meta.backup` (best effort: a failure is reported in the statistics, the metadata itself is intact).
    func writeBackup() {
        do {
            // The writer (at close) and the sealer both write it: one at a time, through the same temporary file.
            try backupsWritten.withLock { (count: inout UInt64) throws(TelemetryFlowError) in
                try MetadataBackup.write(meta, directory: directory, sync: configuration.durability == .always)
                count += 1
            }
        } catch {
            counters.lastError.withLock { $0 = "cannot write the metadata backup: \(error)" }
        }
    }

    private func publishSegments() {
        let list = writer.segments.map(\.segment)
        segmentList.withLock { $0 = list }
        counters.diskBytes.store(writer.totalBytes, ordering: .relaxed)
    }

    /// Deletes the oldest segment for the quota, counting what consumers had not read. Seals the active
    /// segment first when it is the only one. Returns false when nothing could be freed.
    private func dropOldestSegment() -> Bool {
        if writer.segments.count == 1 {
            guard let active = writer.segments.last, active.segment.usedBytes > 0, writer.committed >= active.record.firstSequence else {
                return false
            }
            do throws(TelemetryFlowError) {
                try roll(firstSequence: writer.pending?.firstSequence ?? writer.committed + 1)
            } catch {
                counters.lastError.withLock { $0 = "cannot start a new segment: \(error)" }
                return false
            }
            guard writer.segments.count > 1 else { return false }
        }
        let oldest = writer.segments[0].record
        let lost = oldest.lastSequence >= oldest.firstSequence ? oldest.lastSequence - oldest.firstSequence + 1 : 0
        counters.countDrop(.quotaDropOldest, lost)
        let cursors = cursorState.withLock { $0 }
        counters.droppedPerCursor.withLock { perCursor in
            for (name, position) in cursors where position < oldest.lastSequence {
                perCursor[name, default: 0] += oldest.lastSequence - max(position, oldest.firstSequence - 1)
            }
        }
        return deleteOldestSegment()
    }

    /// Removes `writer.segments[0]`: first from the metadata, then its files.
    @discardableResult
    private func deleteOldestSegment() -> Bool {
        let oldest = writer.segments[0]
        do {
            let values = counterSnapshot()
            try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
                try meta.deleteSegment(txn, id: oldest.record.id)
                try meta.putCounters(txn, values)
            }
        } catch {
            counters.lastError.withLock { $0 = "cannot delete segment \(oldest.segment.path): \(error)" }
            return false
        }
        oldest.segment.removeFiles()
        writer.segments.removeFirst()
        publishSegments()
        return true
    }

    /// Nanoseconds until the oldest sealed segment, already passed by every cursor, leaves the retention window
    /// (0: it has; `UInt64.max`: no segment is waiting for the window).
    private func nextRetentionExpiry() -> UInt64 {
        guard writer.segments.count > 1, let slowest = cursorState.withLock({ $0.values.min() }) else { return .max }
        let oldest = writer.segments[0].record
        guard oldest.lastSequence <= slowest else { return .max }
        let expiry = oldest.sealedAtNanos &+ UInt64(configuration.retentionSeconds * 1e9)
        let now = wallClockNanos()
        return expiry <= now ? 0 : expiry - now
    }

    /// Deletes sealed segments that every cursor and the retention window have passed. With no cursor at all,
    /// nothing is consumed, so nothing is deleted here (the quota policy still applies).
    private func collectGarbage() {
        let cursors = cursorState.withLock { $0 }
        guard let slowest = cursors.values.min() else { return }
        let retention = UInt64(configuration.retentionSeconds * 1e9)
        let now = wallClockNanos()
        var freed = false
        while writer.segments.count > 1 {
            let oldest = writer.segments[0].record
            guard oldest.lastSequence <= slowest, now >= oldest.sealedAtNanos &+ retention else { break }
            guard deleteOldestSegment() else { break }
            freed = true
        }
        if freed && writer.totalBytes < configuration.quotaBytes { counters.stalledByQuota.store(false, ordering: .relaxed) }
    }

    // MARK: Operations and housekeeping

    private func apply(_ operations: [WriterOperation]) {
        for operation in operations {
            switch operation {
            case .setCursors(let changes, let extra, let done):
                do {
                    let values = counterSnapshot()
                    try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
                        for (name, position) in changes {
                            if let position {
                                try meta.put(txn, meta.cursors, Array(name.utf8), MetadataStore.u64(position))
                            } else {
                                try meta.delete(txn, meta.cursors, Array(name.utf8))
                            }
                        }
                        try extra?(meta, txn)
                        try meta.putCounters(txn, values)
                    }
                    cursorState.withLock { state in
                        for (name, position) in changes { state[name] = position }
                    }
                    // Free what the move made deletable before the caller resumes, so it sees the result.
                    collectGarbage()
                    done(nil)
                } catch {
                    done(error)
                }
            case .recordLost(let ranges, let damagedSegment):
                let values = counterSnapshot()
                var marked: SegmentRecord?
                if let id = damagedSegment, let index = writer.segments.firstIndex(where: { $0.record.id == id }) {
                    writer.segments[index].record.flags |= SegmentRecord.damaged
                    marked = writer.segments[index].record
                }
                let record = marked
                try? meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
                    for (range, reason) in ranges { try meta.putLost(txn, range, reason: reason) }
                    if let record { try meta.putSegment(txn, record) }
                    try meta.putCounters(txn, values)
                }
            case .storeChecksums(let id, let sums):
                // Only for a segment still in the log and not found damaged since.
                guard let index = writer.segments.firstIndex(where: { $0.record.id == id }), index < writer.segments.count - 1,
                    !writer.segments[index].record.isDamaged
                else { break }
                try? meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try meta.putChecksums(txn, id: id, sums) }
                sealer?.request(.backup)
            case .countersChanged:
                writer.countersDirty = true
            }
        }
    }

    private func periodic(force: Bool) {
        let now = monotonicNanos()
        if counters.takeChanged() { writer.countersDirty = true }
        // Closing syncs on this thread once the writer is done (see `writerMain`).
        if case .interval(let ms) = configuration.durability, !force, writer.unsynced || !writer.sealedSinceSync.isEmpty,
            now - writer.lastSync >= UInt64(ms) * 1_000_000
        {
            requestSync([writer.segments.last?.segment.path, meta.env.path].compactMap { $0 })
            writer.lastSync = now
            writer.unsynced = false
        }
        let sinceCollect = now - writer.lastCollect
        if force || (sinceCollect >= 1_000_000_000 && (writer.collectDue || nextRetentionExpiry() == 0))
            || sinceCollect >= Self.idleWakeNanos
        {
            collectGarbage()
            writer.lastCollect = now
            writer.collectDue = false
        }
        if force || (writer.countersDirty && now - writer.lastCounterPersist >= 1_000_000_000) {
            let values = counterSnapshot()
            try? meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try meta.putCounters(txn, values) }
            writer.countersDirty = false
            writer.lastCounterPersist = now
        }
    }

    /// Hands the syncer the segments sealed since the last periodic sync, then `others`.
    private func requestSync(_ others: [String] = []) {
        syncer?.request(writer.sealedSinceSync + others)
        writer.sealedSinceSync = []
    }

    /// Counters as persisted in the metadata environment.
    func counterSnapshot() -> [String: UInt64] {
        counters.persistedValues(adding: [
            "high_water": max(writer.committed, queue.lastQueuedSequence),
            "committed_through": writer.committed,
            "stored_through": writer.stored,
        ])
    }
}
