/// The versioned binary format of one log record.
///
/// ```
/// offset  size  field
///      0     1  format version (2; this build also reads 1)
///      1     1  event type (EventType.rawValue)
///      2     2  flags, little-endian (0 as stored; in the append queue, bit 0 is ``stampOnCommitFlag``)
///      4     8  timestamp, unix nanoseconds, little-endian
///     12     4  payload length n, little-endian
///     16     n  payload (per event type; see Docs/LogFormat.md)
///   16+n     4  CRC-32C, little-endian, of the record's sequence (8 bytes, big-endian: its key in the log)
///               followed by bytes 0 ..< 16+n (version 1: of bytes 0 ..< 16+n only)
/// ```
///
/// Version 2 binds a record to its key: a damaged key fails the checksum instead of showing the record under a
/// sequence that was never written.
package enum EventCodec {
    /// The format version this build writes and the newest it reads.
    package static let formatVersion: UInt8 = 2
    /// Bytes of the envelope before the payload.
    package static let headerSize = 16
    /// Bytes of envelope and checksum around the payload.
    package static let overhead = 20

    /// The envelope fields of a checked record.
    package struct Envelope: Sendable, Hashable {
        package var version: UInt8
        package var type: EventType
        package var flags: UInt16
        package var timestampUnixNano: UInt64
        /// The payload's range within the bytes that were checked.
        package var payload: Range<Int>
    }

    // MARK: Encoding

    /// Appends one record holding `event` to `w`. Encoding never fails: every value is representable.
    ///
    /// - Parameter sequence: the sequence the record is stored under, which its checksum covers; nil leaves the
    ///   checksum field zero for ``sealChecksum(_:sequence:)`` to fill in later (the log's writer thread does it,
    ///   off the caller's thread, once it knows the sequence).
    /// - Returns: the number of bytes appended.
    @discardableResult
    package static func encode(
        _ event: borrowing TelemetryEvent, timestampUnixNano: UInt64, into w: inout ProtobufWriter, sequence: UInt64?
    ) -> Int {
        let start = w.count
        w.reserve(headerSize + 64)
        // Version, then type, flags and payload length as zero: the type is known once the payload's switch
        // has looked at the event, the length once the payload is written.
        w.appendUnchecked(UInt64(formatVersion) | timestampUnixNano << 32)
        w.appendUnchecked(timestampUnixNano >> 32)
        let type = encodePayload(event, into: &w)
        w.storeLittleEndian(type.rawValue, at: start + 1)
        w.storeLittleEndian(UInt32(w.count - start - headerSize), at: start + 12)
        let crc = sequence.map { sequence in
            w.withUnsafeBytes { checksum(UnsafeRawBufferPointer(rebasing: $0[start...]), sequence: sequence, version: formatVersion) }
        }
        w.appendLittleEndian(crc ?? 0)
        return w.count - start
    }

    /// The checksum of a record's bytes before the checksum field (`body`) stored under `sequence`, as format
    /// `version` computes it.
    @inlinable
    package static func checksum(_ body: UnsafeRawBufferPointer, sequence: UInt64, version: UInt8) -> UInt32 {
        guard version >= 2 else { return CRC32C.checksum(body) }
        let key = withUnsafeBytes(of: sequence.bigEndian) { CRC32C.checksum($0) }
        return CRC32C.checksum(body, continuing: key)
    }

    /// The flag of a queued record whose timestamp the log's writer sets as it commits it
    /// (``sealQueuedRecord(_:sequence:commitTimeUnixNano:)``), clearing the flag: a measurement's time, which only
    /// starts a cumulative series, is its commit's (the writer reads the clock once per commit, the caller never).
    /// Never set in a stored record.
    package static let stampOnCommitFlag: UInt16 = 1

    /// Seals a record the append queue held, as the log's writer commits it under `sequence`: stamps it with
    /// `commitTimeUnixNano` if it asked for that (``stampOnCommitFlag``), then stores its checksum.
    @inlinable
    package static func sealQueuedRecord(_ record: UnsafeMutableRawBufferPointer, sequence: UInt64, commitTimeUnixNano: UInt64) {
        let flags = UInt16(littleEndian: record.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        if flags & stampOnCommitFlag != 0 {
            record.storeBytes(of: (flags & ~stampOnCommitFlag).littleEndian, toByteOffset: 2, as: UInt16.self)
            record.storeBytes(of: commitTimeUnixNano.littleEndian, toByteOffset: 4, as: UInt64.self)
        }
        sealChecksum(record, sequence: sequence)
    }

    /// Computes and stores the checksum of a record encoded with `sequence: nil`, now stored under `sequence`.
    @inlinable
    package static func sealChecksum(_ record: UnsafeMutableRawBufferPointer, sequence: UInt64) {
        let body = UnsafeRawBufferPointer(rebasing: record[..<(record.count - 4)])
        let crc = checksum(body, sequence: sequence, version: record[0])
        record.storeBytes(of: crc.littleEndian, toByteOffset: record.count - 4, as: UInt32.self)
    }

    /// Appends one record holding `event`, to be stored under `sequence`, to `buffer`.
    ///
    /// - Returns: the number of bytes appended.
    @discardableResult
    package static func encode(
        _ event: TelemetryEvent, timestampUnixNano: UInt64, sequence: UInt64, into buffer: inout [UInt8]
    ) -> Int {
        ProtobufWriter.withScratch { w in
            let n = encode(event, timestampUnixNano: timestampUnixNano, into: &w, sequence: sequence)
            w.withUnsafeBytes { buffer.append(contentsOf: $0) }
            return n
        }
    }

    /// One record holding `event`, as a new array.
    /// Encodes `event` into a scratch buffer on the caller's stack (the checksum left for the log's writer) and
    /// hands the record to `body`: the append path. Not generic, so that callers in other modules need no
    /// specialization of the scratch helpers (unspecialized, they instantiated generic metadata on every append).
    package static func withUnsealedRecord(
        _ event: borrowing TelemetryEvent, timestampUnixNano: UInt64, _ body: (UnsafeRawBufferPointer) -> AppendOutcome
    ) -> AppendOutcome {
        ProtobufWriter.withScratch(passing: event) { event, w in
            encode(event, timestampUnixNano: timestampUnixNano, into: &w, sequence: nil)
            return w.withUnsafeBytes { body($0) }
        }
    }

    /// The append path of a log record: the record of `.log(record, scope: scope)` (the same bytes as
    /// ``encode(_:timestampUnixNano:into:sequence:)``, stamped with the record's time), encoded into a scratch buffer
    /// without a ``TelemetryEvent`` built around it, the checksum left for the log's writer.
    package static func withUnsealedLog(
        _ record: borrowing LogRecordData, scope: InstrumentationScope, _ body: (UnsafeRawBufferPointer) -> AppendOutcome
    ) -> AppendOutcome {
        ProtobufWriter.withScratch(passing: record) { record, w in
            beginUnsealedRecord(.logRecord, timestampUnixNano: record.timeUnixNano, into: &w)
            writeScope(scope, into: &w)
            record.encodeOTLP(into: &w)
            return endUnsealedRecord(&w, body)
        }
    }

    /// The append path of the client's log call: the record of a ``LogRecordData`` with these values (observed at
    /// its time, the severity's own text, no event name, nothing dropped), encoded straight from them, with no
    /// record built first; the same bytes as ``withUnsealedLog(_:scope:_:)`` of that record.
    package static func withUnsealedLog(
        timeUnixNano: UInt64, severity: Severity, message: String, attributes: borrowing Attributes, span: (TraceID, SpanID, flags: UInt32),
        scope: InstrumentationScope, _ body: (UnsafeRawBufferPointer) -> AppendOutcome
    ) -> AppendOutcome {
        ProtobufWriter.withScratch(passing: attributes) { attributes, w in
            beginUnsealedRecord(.logRecord, timestampUnixNano: timeUnixNano, into: &w)
            writeScope(scope, into: &w)
            LogRecordData.encodeOTLP(
                timeUnixNano: timeUnixNano, severity: severity, severityText: severity.text, body: .string(message), attributes: attributes,
                droppedAttributesCount: 0, flags: span.flags, traceID: span.0, spanID: span.1, observedTimeUnixNano: timeUnixNano,
                eventName: "", into: &w)
            return endUnsealedRecord(&w, body)
        }
    }

    /// The append path of a span: the record of `.spanStarted(span, scope: scope)` (stamped with its start time)
    /// or, with `ended`, of `.spanEnded(span, scope: scope)` (stamped with its end time), as
    /// ``withUnsealedLog(_:scope:_:)`` writes a log record.
    package static func withUnsealedSpan(
        _ span: borrowing SpanData, ended: Bool, scope: InstrumentationScope, _ body: (UnsafeRawBufferPointer) -> AppendOutcome
    ) -> AppendOutcome {
        ProtobufWriter.withScratch(passing: span) { span, w in
            beginUnsealedRecord(
                ended ? .spanEnded : .spanStarted, timestampUnixNano: ended ? span.endTimeUnixNano : span.startTimeUnixNano, into: &w)
            writeScope(scope, into: &w)
            span.encodeOTLP(into: &w)
            return endUnsealedRecord(&w, body)
        }
    }

    /// The append path of a span's end once its started record is at hand (`startRecord`, as
    /// ``withUnsealedSpan(_:ended:scope:_:)`` wrote it, `mark` what it held): the `.spanEnded` record of `span`, whose
    /// payload is the started record's payload followed by the fields that changed since
    /// (``SpanData/encodeOTLPChanges(since:into:)``) — one copy instead of a second encoding of the whole span. It
    /// decodes to the same span as the record ``withUnsealedSpan(_:ended:scope:_:)`` writes with `ended`.
    package static func withUnsealedSpanEnd(
        startRecord: UnsafeRawBufferPointer, span: borrowing SpanData, since mark: SpanStartMark,
        _ body: (UnsafeRawBufferPointer) -> AppendOutcome
    ) -> AppendOutcome {
        ProtobufWriter.withScratch(passing: span) { span, w in
            beginUnsealedRecord(.spanEnded, timestampUnixNano: span.endTimeUnixNano, into: &w)
            w.append(contentsOf: UnsafeRawBufferPointer(rebasing: startRecord[headerSize..<(startRecord.count - 4)]))
            span.encodeOTLPChanges(since: mark, into: &w)
            return endUnsealedRecord(&w, body)
        }
    }

    /// The header of a record whose type is known before its payload (its length is patched by
    /// ``endUnsealedRecord(_:_:)``).
    @inline(__always)
    static func beginUnsealedRecord(_ type: EventType, flags: UInt16 = 0, timestampUnixNano: UInt64, into w: inout ProtobufWriter) {
        w.reserve(headerSize + 64)
        w.appendUnchecked(UInt64(formatVersion) | UInt64(type.rawValue) << 8 | UInt64(flags) << 16 | timestampUnixNano << 32)
        w.appendUnchecked(timestampUnixNano >> 32)
    }

    /// Patches the payload length, appends the zero checksum and hands the record to `body`.
    @inline(__always)
    static func endUnsealedRecord(_ w: inout ProtobufWriter, _ body: (UnsafeRawBufferPointer) -> AppendOutcome) -> AppendOutcome {
        w.storeLittleEndian(UInt32(w.count - headerSize), at: 12)
        w.appendLittleEndian(UInt32(0))
        return w.withUnsafeBytes { body($0) }
    }

    /// The constant part of a measurement's payload — name, unit and scope — encoded once per instrument, so that
    /// ``withUnsealedMeasurement(kind:prefix:attributes:value:_:)`` copies bytes instead of
    /// encoding (and retaining) the instrument's strings on every call.
    package static func measurementPrefix(name: String, unit: String, scope: InstrumentationScope) -> [UInt8] {
        ProtobufWriter.withScratch { w in
            w.writeString(name)
            w.writeString(unit)
            writeScope(scope, into: &w)
            return w.bytes
        }
    }

    /// The append path of an instrument: the record of one measurement, encoded from the instrument's
    /// ``measurementPrefix(name:unit:scope:)``, into a scratch buffer on the caller's stack, the checksum left for
    /// the log's writer; the same bytes as ``encode(_:timestampUnixNano:into:sequence:)`` of the measurement.
    ///
    /// The record asks the log's writer for its timestamp (``stampOnCommitFlag``): the caller reads no clock.
    package static func withUnsealedMeasurement(
        kind: InstrumentKind, prefix: UnsafeRawBufferPointer, attributes: borrowing Attributes, value: MetricValue,
        _ body: (UnsafeRawBufferPointer) -> AppendOutcome
    ) -> AppendOutcome {
        ProtobufWriter.withScratch(passing: attributes) { attributes, w in
            beginUnsealedRecord(EventType(rawValue: kind.rawValue), flags: stampOnCommitFlag, timestampUnixNano: 0, into: &w)
            w.append(contentsOf: prefix)
            writeAttributeBlock(attributes, into: &w)
            writeMeasurementValue(value, into: &w)
            return endUnsealedRecord(&w, body)
        }
    }

    package static func encode(_ event: TelemetryEvent, timestampUnixNano: UInt64, sequence: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        encode(event, timestampUnixNano: timestampUnixNano, sequence: sequence, into: &out)
        return out
    }

    static func writeScope(_ scope: InstrumentationScope, into w: inout ProtobufWriter) {
        w.writeString(scope.name)
        w.writeString(scope.version)
    }

    /// The bytes a measurement's value takes at the end of its payload (``writeMeasurementValue(_:into:)``).
    package static let measurementValueSize = 9

    /// The value of a tag and its 8 bytes (as a little-endian word); nil for an unknown tag.
    @inline(__always)
    package static func measurementValue(tag: UInt8, bits: UInt64) -> MetricValue? {
        switch tag {
        case 0: return .int(Int64(bitPattern: bits))
        case 1: return .double(Double(bitPattern: bits))
        default: return nil
        }
    }

    /// A measurement's value: a tag (0 = int64, 1 = double), then the 8 bytes little-endian.
    @inline(__always)
    static func writeMeasurementValue(_ value: MetricValue, into w: inout ProtobufWriter) {
        switch value {
        case .int(let v):
            w.append(0)
            w.writeRawFixed64(UInt64(bitPattern: v))
        case .double(let v):
            w.append(1)
            w.writeRawFixed64(v.bitPattern)
        }
    }

    /// Writes attributes as a length-prefixed block that is itself a protobuf message of `KeyValue`s in field 1.
    static func writeAttributeBlock(_ attributes: Attributes, into w: inout ProtobufWriter) {
        let lengthAt = w.count
        w.append(0)
        attributes.encodeOTLP(field: 1, into: &w)
        w.patchLength(at: lengthAt)
    }

    /// Writes the payload of `event` and returns its envelope type (one switch over the event does both).
    static func encodePayload(_ event: borrowing TelemetryEvent, into w: inout ProtobufWriter) -> EventType {
        switch event {
        case .measurement(let m):
            w.writeString(m.name)
            w.writeString(m.unit)
            writeScope(m.scope, into: &w)
            writeAttributeBlock(m.attributes, into: &w)
            writeMeasurementValue(m.value, into: &w)
            switch m.kind {
            case .counter: return .counterMeasurement
            case .upDownCounter: return .upDownCounterMeasurement
            case .gauge: return .gaugeMeasurement
            case .histogram: return .histogramMeasurement
            }
        case .metricsCollected(let collected):
            w.writeRawFixed64(collected.foldedThrough)
            w.writeRawFixed64(collected.timeUnixNano)
            collected.encodeOTLPScopeMetrics(into: &w)
            return .metricsCollected
        case .log(let record, let scope):
            writeScope(scope, into: &w)
            record.encodeOTLP(into: &w)
            return .logRecord
        case .spanStarted(let span, let scope):
            writeScope(scope, into: &w)
            span.encodeOTLP(into: &w)
            return .spanStarted
        case .spanEnded(let span, let scope):
            writeScope(scope, into: &w)
            span.encodeOTLP(into: &w)
            return .spanEnded
        case .spanEventAdded(let traceID, let spanID, let event):
            w.writeRawFixed64(traceID.high.bigEndian)
            w.writeRawFixed64(traceID.low.bigEndian)
            w.writeRawFixed64(spanID.value.bigEndian)
            event.encodeOTLP(into: &w)
            return .spanEventAdded
        case .custom(let record):
            w.writeString(record.signal.name)
            w.writeString(record.name)
            writeAttributeBlock(record.attributes, into: &w)
            w.append(contentsOf: record.body)
            return .customSignal
        case .lifecycle(let event):
            w.append(event.kind.rawValue)
            event.attributes.encodeOTLP(field: 1, into: &w)
            return .lifecycle
        }
    }

    // MARK: Decoding

    /// Checks a record's length, version and checksum (which, from version 2, covers the `sequence` the record is
    /// stored under) and returns its envelope.
    ///
    /// - Throws: ``TelemetryFlowError/Code/corruptedRecord`` when the bytes are too short, the payload length
    ///   disagrees with the record length or the checksum fails; ``TelemetryFlowError/Code/unsupportedFormatVersion``
    ///   for a newer format version.
    package static func envelope(of record: UnsafeRawBufferPointer, sequence: UInt64) throws(TelemetryFlowError) -> Envelope {
        guard record.count >= overhead else {
            throw TelemetryFlowError(.corruptedRecord, "record is \(record.count) bytes, shorter than the \(overhead)-byte envelope")
        }
        let payloadLength = Int(UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
        guard payloadLength == record.count - overhead else {
            throw TelemetryFlowError(
                .corruptedRecord, "record payload length \(payloadLength) disagrees with record size \(record.count)")
        }
        let version = record[0]
        let stored = UInt32(littleEndian: record.loadUnaligned(fromByteOffset: record.count - 4, as: UInt32.self))
        let actual = checksum(UnsafeRawBufferPointer(rebasing: record[..<(record.count - 4)]), sequence: sequence, version: version)
        guard stored == actual else {
            throw TelemetryFlowError(
                .corruptedRecord, "record checksum mismatch under sequence \(sequence) (stored \(stored), computed \(actual))")
        }
        guard version >= 1 && version <= formatVersion else {
            throw TelemetryFlowError(
                .unsupportedFormatVersion,
                "record format version \(version) is not supported; this build reads versions 1–\(formatVersion)")
        }
        return Envelope(
            version: version,
            type: EventType(rawValue: record[1]),
            flags: UInt16(littleEndian: record.loadUnaligned(fromByteOffset: 2, as: UInt16.self)),
            timestampUnixNano: UInt64(littleEndian: record.loadUnaligned(fromByteOffset: 4, as: UInt64.self)),
            payload: headerSize..<(headerSize + payloadLength)
        )
    }

    /// Checks and decodes one record.
    ///
    /// - Throws: the errors of ``envelope(of:sequence:)``, ``TelemetryFlowError/Code/unknownEventType`` and
    ///   ``TelemetryFlowError/Code/decoding`` for a malformed payload.
    package static func decode(_ record: [UInt8], sequence: UInt64) throws -> (event: TelemetryEvent, timestampUnixNano: UInt64) {
        let envelope = try record.withUnsafeBytes { try Self.envelope(of: $0, sequence: sequence) }
        let event = try decodePayload(type: envelope.type, record[envelope.payload])
        return (event, envelope.timestampUnixNano)
    }

    /// Decodes the payload of a record whose envelope was already checked.
    package static func decodePayload(type: EventType, _ payload: ArraySlice<UInt8>) throws -> TelemetryEvent {
        var r = PayloadReader(payload)
        switch type {
        case .counterMeasurement, .upDownCounterMeasurement, .gaugeMeasurement, .histogramMeasurement:
            let kind = InstrumentKind(rawValue: type.rawValue)!
            let name = try r.string()
            let unit = try r.string()
            let scope = InstrumentationScope(name: try r.string(), version: try r.string())
            let attributes = try r.attributeBlock()
            let tag = try r.bytes(1).first!
            guard let value = measurementValue(tag: tag, bits: try r.fixed64()) else {
                throw TelemetryFlowError(.decoding, "measurement value tag \(tag) is unknown")
            }
            try r.expectEnd()
            return .measurement(
                MetricMeasurement(kind: kind, name: name, unit: unit, scope: scope, attributes: attributes, value: value))
        case .metricsCollected:
            let through = try r.fixed64()
            let time = try r.fixed64()
            let metrics = try CollectedMetrics.decodeOTLPScopeMetrics(r.rest())
            return .metricsCollected(CollectedMetrics(foldedThrough: through, timeUnixNano: time, metrics: metrics))
        case .logRecord:
            let scope = InstrumentationScope(name: try r.string(), version: try r.string())
            return .log(try LogRecordData(otlp: r.rest()), scope: scope)
        case .spanStarted, .spanEnded:
            let scope = InstrumentationScope(name: try r.string(), version: try r.string())
            let span = try SpanData(otlp: r.rest())
            return type == .spanStarted ? .spanStarted(span, scope: scope) : .spanEnded(span, scope: scope)
        case .spanEventAdded:
            let traceID = TraceID(bytes: try r.bytes(16))!
            let spanID = SpanID(bytes: try r.bytes(8))!
            return .spanEventAdded(traceID: traceID, spanID: spanID, event: try SpanEvent(otlp: r.rest()))
        case .customSignal:
            let signal = try SignalType(try r.string())
            let name = try r.string()
            let attributes = try r.attributeBlock()
            return .custom(CustomSignalRecord(signal: signal, name: name, attributes: attributes, body: Array(r.rest())))
        case .lifecycle:
            let kind = LifecycleEvent.Kind(rawValue: try r.bytes(1).first!)
            var attributes = Attributes()
            var pr = ProtobufReader(r.rest())
            while let (field, v) = try pr.next() {
            guard field == 1 else { continue }
            try attributes.appendOTLPKeyValue(try v.asBytes()) }
            return .lifecycle(LifecycleEvent(kind: kind, attributes: attributes))
        default:
            throw TelemetryFlowError(.unknownEventType, "event type \(type.rawValue) is not known to this build")
        }
    }
}

/// Reads the compact fields of a payload.
struct PayloadReader {
    let bytes: ArraySlice<UInt8>
    var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    static let truncated = TelemetryFlowError(.decoding, "event payload is truncated")

    mutating func varint() throws -> UInt64 {
        try Varint.read(bytes, at: &index)
    }

    mutating func bytes(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, bytes.endIndex - index >= count else { throw Self.truncated }
        defer { index += count }
        return bytes[index..<(index + count)]
    }

    mutating func string() throws -> String {
        let length = try varint()
        guard length <= UInt64(bytes.endIndex - index) else { throw Self.truncated }
        return String(decoding: try bytes(Int(length)), as: UTF8.self)
    }

    mutating func fixed64() throws -> UInt64 {
        try bytes(8).littleEndianUInt64()
    }

    mutating func attributeBlock() throws -> Attributes {
        let length = try varint()
        guard length <= UInt64(bytes.endIndex - index) else { throw Self.truncated }
        var attributes = Attributes()
        var r = ProtobufReader(try bytes(Int(length)))
        while let (field, v) = try r.next() {
            guard field == 1 else { continue }
            try attributes.appendOTLPKeyValue(try v.asBytes()) }
        return attributes
    }

    mutating func rest() -> ArraySlice<UInt8> {
        defer { index = bytes.endIndex }
        return bytes[index...]
    }

    func expectEnd() throws {
        guard index == bytes.endIndex else {
            throw TelemetryFlowError(.decoding, "event payload has \(bytes.endIndex - index) unexpected trailing bytes")
        }
    }
}
