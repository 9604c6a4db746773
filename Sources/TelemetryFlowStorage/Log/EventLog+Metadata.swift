public import TelemetryFlowCore

/// A batch an exporter could not deliver for good, kept with the reason.
public struct DeadLetter: Sendable {
    /// The exporter instance that gave up on it.
    public var exporter: String
    /// The cursor position the batch was read after.
    public var afterSequence: UInt64
    /// Wall-clock time it was stored, in unix nanoseconds.
    public var storedAtUnixNano: UInt64
    /// Why the backend refused it.
    public var reason: String
    /// The events, as they were stored in the log.
    public var batch: EventBatch
}

extension EventLog {
    // MARK: Cursor moves committed with metadata

    /// Moves cursor `name` to `position` and stores `value` under checkpoint `checkpoint` in one metadata
    /// transaction: a projection's state and the position it was folded through can never disagree.
    public func setCursor(_ name: String, to position: UInt64, checkpoint: String, value: [UInt8]) async throws {
        try await engine.setCursors([name: position], validate: true, extra: { (meta, txn) throws(TelemetryFlowError) in
            try meta.put(txn, meta.checkpoints, Array(checkpoint.utf8), value)
        })
    }

    /// The value last stored under checkpoint `name`, or nil.
    public func checkpoint(_ name: String) throws -> [UInt8]? {
        let meta = engine.meta
        return try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
            try meta.get(txn, meta.checkpoints, Array(name.utf8))
        }
    }

    /// Stores `batch` in the dead-letter store of `exporter` with `reason` and moves cursor `cursor` to the batch's
    /// end, in one metadata transaction. The store keeps at most `maxBatches` batches per exporter; the oldest
    /// are evicted and counted (``deadLetterEvictions(exporter:)``).
    public func deadLetter(
        _ batch: EventBatch, exporter: String, reason: String, cursor: String, maxBatches: Int
    ) async throws {
        let after = batch.first.map { $0.sequence - 1 } ?? batch.endSequence
        var value: [UInt8] = []
        value.append(contentsOf: MetadataStore.u64(wallClockNanos()))
        let reasonBytes = Array(reason.utf8.prefix(4096))
        value.append(contentsOf: MetadataStore.u64(UInt64(reasonBytes.count)))
        value.append(contentsOf: reasonBytes)
        value.append(contentsOf: MetadataStore.u64(batch.endSequence))
        for event in batch {
            value.append(contentsOf: MetadataStore.u64(event.sequence))
            value.append(contentsOf: MetadataStore.u64(UInt64(event.record.count)))
            value.append(contentsOf: event.record)
        }
        let prefix = Array(exporter.utf8) + [0]
        let key = prefix + MetadataStore.u64(after)
        let evictionKey = Array(exporter.utf8) + [1]
        let stored = value
        try await engine.setCursors([cursor: batch.endSequence], validate: true, extra: { (meta, txn) throws(TelemetryFlowError) in
            try meta.put(txn, meta.deadLetters, key, stored)
            let mine = try meta.all(txn, meta.deadLetters).filter { $0.key.count == prefix.count + 8 && $0.key.starts(with: prefix) }
            let excess = mine.count - max(1, maxBatches)
            if excess > 0 {
                for entry in mine.prefix(excess) { try meta.delete(txn, meta.deadLetters, entry.key) }
                let evicted = (try meta.get(txn, meta.deadLetters, evictionKey)).flatMap { MetadataStore.u64($0) } ?? 0
                try meta.put(txn, meta.deadLetters, evictionKey, MetadataStore.u64(evicted + UInt64(excess)))
            }
        })
    }

    /// The dead letters of `exporter`, oldest first.
    public func deadLetters(exporter: String) throws -> [DeadLetter] {
        let meta = engine.meta
        let prefix = Array(exporter.utf8) + [0]
        let entries = try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
            try meta.all(txn, meta.deadLetters).filter { $0.key.count == prefix.count + 8 && $0.key.starts(with: prefix) }
        }
        return try entries.map { entry in
            var r = entry.value[...]
            func u64() throws -> UInt64 {
                guard r.count >= 8 else { throw TelemetryFlowError(.corruptedRecord, "dead letter of \(exporter) is truncated") }
                defer { r = r.dropFirst(8) }
                return MetadataStore.u64(Array(r.prefix(8)))!
            }
            let time = try u64()
            let reasonLength = Int(try u64())
            guard r.count >= reasonLength else { throw TelemetryFlowError(.corruptedRecord, "dead letter of \(exporter) is truncated") }
            let reason = String(decoding: r.prefix(reasonLength), as: UTF8.self)
            r = r.dropFirst(reasonLength)
            let end = try u64()
            let after = MetadataStore.u64(Array(entry.key.suffix(8)))!
            var batch = EventBatch(startingAfter: after)
            while !r.isEmpty {
                let sequence = try u64()
                let length = Int(try u64())
                guard r.count >= length else { throw TelemetryFlowError(.corruptedRecord, "dead letter of \(exporter) is truncated") }
                try batch.append(sequence: sequence, record: r.prefix(length))
                r = r.dropFirst(length)
            }
            batch.endSequence = end
            return DeadLetter(exporter: exporter, afterSequence: after, storedAtUnixNano: time, reason: reason, batch: batch)
        }
    }

    /// How many dead letters of `exporter` were evicted because the store was full.
    public func deadLetterEvictions(exporter: String) throws -> UInt64 {
        let meta = engine.meta
        return try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
            try meta.get(txn, meta.deadLetters, Array(exporter.utf8) + [1]).flatMap { MetadataStore.u64($0) } ?? 0
        }
    }

    /// The sequence of the last event handed to the writer (0 before the first). Cheap; exporters poll it to
    /// learn that new events exist.
    public var lastAppendedSequence: UInt64 { engine.queue.lastQueuedSequence }
}
