import CLMDB
import Synchronization
import TelemetryFlowCore

/// The read side of the engine: batches after a position, across segments, through LMDB or — for a damaged
/// segment — the salvaged records; damage found while reading is counted once and announced in the log.
extension LogEngine {
    func read(after position: UInt64, maxCount: Int, maxBytes: Int, types: EventTypeSet?) throws -> EventBatch {
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
        while index < segments.count && batch.examined < maxCount && batch.byteCount < maxBytes {
            let segment = segments[index]
            let failure: TelemetryFlowError?
            do throws(TelemetryFlowError) {
                try readSegment(
                    segment, from: max(from, segment.firstSequence), into: &batch, maxCount: maxCount, maxBytes: maxBytes, types: types,
                    damaged: &found)
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
                counters.lastError.withLock { $0 = error.description }
            }
            index += 1
            if index < segments.count { from = segments[index].firstSequence }
        }
        if !found.isEmpty { noteCorrupted(found) }
        batch.skippedCorrupted = found.count
        return batch
    }

    private func readSegment(
        _ segment: Segment, from start: UInt64, into batch: inout EventBatch, maxCount: Int, maxBytes: Int, types: EventTypeSet?,
        damaged: inout [UInt64: String]
    ) throws(TelemetryFlowError) {
        var damage: Segment.Damage?
        let reader = segment.reader(damage: &damage)
        if let damage { noteSegmentDamage(segment, damage) }
        func add(_ seq: UInt64, _ record: UnsafeRawBufferPointer) {
            if let types, record.count >= 2, !types.contains(record[1]) {
                batch.passedOver += 1
                batch.endSequence = seq
                return
            }
            do throws(TelemetryFlowError) {
                let envelope = try EventCodec.envelope(of: record, sequence: seq)
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
            while index < records.count && batch.examined < maxCount && batch.byteCount < maxBytes {
                records.record(at: index).withUnsafeBytes { add(records.sequences[index], $0) }
                index += 1
            }
            // What the walker could not recover is counted (``noteSegmentDamage``); consumers move past it.
            if index == records.count, let last = segment.lastSequence, batch.examined < maxCount, batch.byteCount < maxBytes {
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
                    if batch.examined >= maxCount || batch.byteCount >= maxBytes { return }
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
        counters.corrupted.add(UInt64(fresh.count), ordering: .relaxed)
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
        counters.corrupted.add(fresh, ordering: .relaxed)
        counters.lastError.withLock { $0 = reason }
        _ = queue.submit(.recordLost(damage.lost.map { ($0, reason) }, damagedSegment: segment.id))
        if fresh > 0 { announceLoss(damage.lost, reason: reason, segment: Segment.fileName(id: segment.id)) }
    }
}
