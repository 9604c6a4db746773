/// One stored event: its sequence, envelope fields and the exact record bytes, with typed read views of the
/// payload. Every consumer — the OTLP encoders, the metrics projection, the local exporters, `tflow` — reads a
/// payload through these views; none parses the record layout itself.
public struct StoredEvent: Sendable {
    /// The event's sequence number in the log.
    public let sequence: UInt64
    /// The envelope's event type.
    public let type: EventType
    /// The envelope's timestamp.
    public let timestampUnixNano: UInt64
    /// The whole record (envelope, payload, checksum), as stored.
    public let record: ArraySlice<UInt8>
    /// The payload bytes; their layout depends on ``type`` (`Docs/LogFormat.md`).
    package let payload: ArraySlice<UInt8>

    package init(sequence: UInt64, type: EventType, timestampUnixNano: UInt64, record: ArraySlice<UInt8>, payload: ArraySlice<UInt8>) {
        self.sequence = sequence
        self.type = type
        self.timestampUnixNano = timestampUnixNano
        self.record = record
        self.payload = payload
    }

    /// Decodes the payload into a domain event.
    ///
    /// - Throws: ``TelemetryFlowError/Code/decoding`` for a malformed payload,
    ///   ``TelemetryFlowError/Code/unknownEventType`` for a type this build does not know.
    public func decode() throws -> TelemetryEvent {
        try EventCodec.decodePayload(type: type, payload)
    }

    // MARK: Spans and log records

    /// A span or log record as stored: its instrumentation scope and its OTLP message bytes.
    public struct OTLPItem: Sendable {
        /// The scope's name and version as stored (each a varint length and UTF-8 bytes): the exact body of fields
        /// 1 and 2 of an OTLP `InstrumentationScope`, and a key that groups items by scope.
        package let scopeFields: ArraySlice<UInt8>
        /// The scope's name field (length and bytes), or nil when the name is empty (proto3 omits it).
        package let nameField: ArraySlice<UInt8>?
        /// The scope's version field (length and bytes), or nil when empty.
        package let versionField: ArraySlice<UInt8>?
        /// The OTLP `Span` (span events) or `LogRecord` (log events) message.
        public let message: ArraySlice<UInt8>

        /// The instrumentation scope.
        public var scope: InstrumentationScope {
            func text(_ field: ArraySlice<UInt8>?) -> String {
                guard var field else { return "" }
                var index = field.startIndex
                _ = try? Varint.read(field, at: &index)
                field = field[index...]
                return String(decoding: field, as: UTF8.self)
            }
            return InstrumentationScope(name: text(nameField), version: text(versionField))
        }
    }

    /// For `span_started`, `span_ended` and `log_record` events: the scope and the OTLP message as stored, which
    /// OTLP export concatenates into requests without decoding. Nil for other types.
    ///
    /// - Throws: ``TelemetryFlowError/Code/decoding`` when the scope runs past the payload.
    public func otlpItem() throws(TelemetryFlowError) -> OTLPItem? {
        guard type == .spanStarted || type == .spanEnded || type == .logRecord else { return nil }
        var index = payload.startIndex
        func field() throws(TelemetryFlowError) -> ArraySlice<UInt8>? {
            let start = index
            let length = try Varint.read(payload, at: &index)
            guard length <= UInt64(payload.endIndex - index) else {
                throw TelemetryFlowError(.decoding, "event #\(sequence): the scope runs past the payload")
            }
            index += Int(length)
            return length == 0 ? nil : payload[start..<index]
        }
        let name = try field()
        let version = try field()
        return OTLPItem(
            scopeFields: payload[payload.startIndex..<index], nameField: name, versionField: version, message: payload[index...])
    }

    // MARK: Metrics

    /// Whether the event is a measurement (``EventType/isMeasurement``).
    public var isMeasurement: Bool { type.isMeasurement }

    /// For measurement events: the measurement. Nil for other types.
    ///
    /// - Throws: ``TelemetryFlowError/Code/decoding`` for a malformed payload.
    public func measurement() throws -> MetricMeasurement? {
        guard isMeasurement, case .measurement(let m) = try decode() else { return nil }
        return m
    }

    /// For measurement events: the series bytes (instrument name, unit, scope and attribute block, as encoded:
    /// equal bytes are the same series) and the value, read in place. Nil for other types, or a payload too
    /// short or with an unknown value tag (``measurement()`` says what is wrong).
    @inline(__always)
    package func withMeasurementSeries<R>(_ body: (_ series: UnsafeRawBufferPointer, _ value: MetricValue?) -> R) -> R? {
        let size = EventCodec.measurementValueSize
        guard isMeasurement, payload.count > size else { return nil }
        return payload.withUnsafeBytes { bytes in
            let tag = bytes[bytes.count - size]
            let bits = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - size + 1, as: UInt64.self))
            return body(UnsafeRawBufferPointer(rebasing: bytes[..<(bytes.count - size)]), EventCodec.measurementValue(tag: tag, bits: bits))
        }
    }

    /// For `metrics_collected` events: the last measurement the collection folded and its time, read without
    /// decoding the points. Nil for other types or a payload too short to hold them.
    public var collectionHeader: (foldedThrough: UInt64, timeUnixNano: UInt64)? {
        guard type == .metricsCollected, payload.count >= 16 else { return nil }
        return (payload.littleEndianUInt64(at: 0), payload.littleEndianUInt64(at: 8))
    }

    /// For `metrics_collected` events: the collected points as OTLP `ScopeMetrics` messages in field 2 (of
    /// `ResourceMetrics`), as stored. Nil for other types.
    package var scopeMetricsRecords: ArraySlice<UInt8>? {
        guard type == .metricsCollected, payload.count >= 16 else { return nil }
        return payload.dropFirst(16)
    }

    /// For `metrics_collected` events: the collection. Nil for other types.
    ///
    /// - Throws: ``TelemetryFlowError/Code/decoding`` for a malformed payload.
    public func collectedMetrics() throws -> CollectedMetrics? {
        guard type == .metricsCollected, case .metricsCollected(let c) = try decode() else { return nil }
        return c
    }

    // MARK: Custom signals

    /// For `custom_signal` events: the record. Nil for other types.
    ///
    /// - Throws: ``TelemetryFlowError/Code/decoding`` for a malformed payload.
    public func customRecord() throws -> CustomSignalRecord? {
        guard type == .customSignal, case .custom(let record) = try decode() else { return nil }
        return record
    }
}
