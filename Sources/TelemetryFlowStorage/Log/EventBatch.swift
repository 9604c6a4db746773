public import TelemetryFlowCore

/// One stored event: its sequence, envelope fields and the exact record bytes.
public struct StoredEvent: Sendable {
    /// The event's sequence number in the log.
    public let sequence: UInt64
    /// The envelope's event type.
    public let type: EventType
    /// The envelope's timestamp.
    public let timestampUnixNano: UInt64
    /// The whole record (envelope, payload, checksum).
    public let record: ArraySlice<UInt8>
    /// The payload bytes (for span and log events, scope followed by the OTLP message).
    public let payload: ArraySlice<UInt8>

    /// Decodes the payload into a domain event.
    public func decode() throws -> TelemetryEvent {
        try EventCodec.decodePayload(type: type, payload)
    }
}

/// Events read after a cursor, copied into one contiguous buffer.
public struct EventBatch: Sendable, RandomAccessCollection {
    struct Entry: Sendable {
        var sequence: UInt64
        var type: EventType
        var timestamp: UInt64
        var start: Int
        var payloadStart: Int
        var payloadEnd: Int
        var end: Int
    }

    var storage: [UInt8] = []
    var entries: [Entry] = []
    /// The last sequence the read examined, including skipped damaged records; a consumer that handled this
    /// batch advances its cursor here. Equal to the position read after when nothing was found.
    public internal(set) var endSequence: UInt64
    /// Damaged records skipped while reading this batch.
    public internal(set) var skippedCorrupted: Int = 0

    init(after position: UInt64) { endSequence = position }

    public var startIndex: Int { 0 }
    public var endIndex: Int { entries.count }
    public subscript(position: Int) -> StoredEvent {
        let e = entries[position]
        return StoredEvent(
            sequence: e.sequence, type: e.type, timestampUnixNano: e.timestamp, record: storage[e.start..<e.end],
            payload: storage[e.payloadStart..<e.payloadEnd])
    }

    /// Total record bytes in the batch.
    public var byteCount: Int { storage.count }
}
