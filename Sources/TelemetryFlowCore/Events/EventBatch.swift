/// Events read after a cursor, copied into one contiguous buffer.
public struct EventBatch: Sendable, RandomAccessCollection {
    /// Inlinable, as the counts below, into the log's read loop in Storage: called there per record, across the
    /// module boundary, the batch was retained and released around each call (four atomic operations a record).
    @usableFromInline package struct Entry: Sendable {
        @usableFromInline package var sequence: UInt64
        @usableFromInline package var type: EventType
        @usableFromInline package var timestamp: UInt64
        @usableFromInline package var start: Int
        @usableFromInline package var payloadStart: Int
        @usableFromInline package var payloadEnd: Int
        @usableFromInline package var end: Int

        @inlinable package init(sequence: UInt64, type: EventType, timestamp: UInt64, start: Int, payloadStart: Int, payloadEnd: Int, end: Int) {
            self.sequence = sequence
            self.type = type
            self.timestamp = timestamp
            self.start = start
            self.payloadStart = payloadStart
            self.payloadEnd = payloadEnd
            self.end = end
        }
    }

    @usableFromInline package var storage: [UInt8] = []
    @usableFromInline package var entries: [Entry] = []
    /// The last sequence the read examined, including skipped damaged records; a consumer that handled this
    /// batch advances its cursor here. Equal to the position read after when nothing was found.
    public package(set) var endSequence: UInt64
    /// Damaged records skipped while reading this batch.
    public package(set) var skippedCorrupted: Int = 0
    /// Records of types the read did not ask for, passed over unread.
    public package(set) var passedOver: Int = 0
    /// The records the read looked at: those in the batch and those passed over.
    @inlinable package var examined: Int { entries.count + passedOver }

    package init(after position: UInt64) { endSequence = position }

    /// An empty batch that starts after `position` (for exporters' tests and replay tools).
    public init(startingAfter position: UInt64) { endSequence = position }

    /// Appends `event` under `sequence`, encoded as the log stores it (for exporters' tests and replay tools).
    public mutating func append(sequence: UInt64, event: TelemetryEvent, timestampUnixNano: UInt64) {
        // A record the codec just made always has a sound envelope.
        try! append(sequence: sequence, record: EventCodec.encode(event, timestampUnixNano: timestampUnixNano, sequence: sequence))
    }

    /// Appends one encoded record (as the log stores it) under `sequence`.
    ///
    /// - Throws: ``TelemetryFlowError/Code/corruptedRecord`` or ``TelemetryFlowError/Code/unsupportedFormatVersion``
    ///   for a record whose envelope or checksum does not hold.
    package mutating func append(sequence: UInt64, record: some Collection<UInt8>) throws(TelemetryFlowError) {
        let bytes = Array(record)
        let checked = bytes.withUnsafeBytes { raw in Result { () throws(TelemetryFlowError) in try EventCodec.envelope(of: raw, sequence: sequence) } }
        let envelope = try checked.get()
        let base = storage.count
        storage.append(contentsOf: bytes)
        entries.append(Entry(
            sequence: sequence, type: envelope.type, timestamp: envelope.timestampUnixNano, start: base,
            payloadStart: base + envelope.payload.lowerBound, payloadEnd: base + envelope.payload.upperBound,
            end: storage.count))
        endSequence = Swift.max(endSequence, sequence)
    }

    /// The events whose type satisfies `include`, keeping this batch's end sequence.
    public func filter(types include: (EventType) -> Bool) -> EventBatch {
        var out = EventBatch(after: endSequence)
        out.skippedCorrupted = skippedCorrupted
        for e in entries where include(e.type) {
            let base = out.storage.count
            out.storage.append(contentsOf: storage[e.start..<e.end])
            out.entries.append(Entry(
                sequence: e.sequence, type: e.type, timestamp: e.timestamp, start: base,
                payloadStart: base + (e.payloadStart - e.start), payloadEnd: base + (e.payloadEnd - e.start),
                end: base + (e.end - e.start)))
        }
        return out
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { entries.count }
    public subscript(position: Int) -> StoredEvent {
        let e = entries[position]
        return StoredEvent(
            sequence: e.sequence, type: e.type, timestampUnixNano: e.timestamp, record: storage[e.start..<e.end],
            payload: storage[e.payloadStart..<e.payloadEnd])
    }

    /// Total record bytes in the batch.
    @inlinable public var byteCount: Int { storage.count }
}
