// OTLP protobuf encoding and decoding of the values the log stores, following the field numbers of
// opentelemetry-proto (common/v1/common.proto, trace/v1/trace.proto, logs/v1/logs.proto).

extension AttributeValue {
    /// Writes this value as an OTLP `AnyValue` message body.
    public func encodeOTLPAnyValue(into w: inout ProtobufWriter) {
        switch self {
        case .string(let v): w.writeStringField(1, v, always: true)
        case .bool(let v): w.writeBoolField(2, v, always: true)
        case .int(let v): w.writeInt64Field(3, v, always: true)
        case .double(let v): w.writeDoubleField(4, v, always: true)
        case .bytes(let v): w.writeBytesField(7, v, always: true)
        case .stringArray(let a):
            w.writeMessageField(5) { w in for v in a { w.writeMessageField(1) { $0.writeStringField(1, v, always: true) } } }
        case .boolArray(let a):
            w.writeMessageField(5) { w in for v in a { w.writeMessageField(1) { $0.writeBoolField(2, v, always: true) } } }
        case .intArray(let a):
            w.writeMessageField(5) { w in for v in a { w.writeMessageField(1) { $0.writeInt64Field(3, v, always: true) } } }
        case .doubleArray(let a):
            w.writeMessageField(5) { w in for v in a { w.writeMessageField(1) { $0.writeDoubleField(4, v, always: true) } } }
        }
    }

    /// Decodes an OTLP `AnyValue` message body. An empty array decodes as an empty string array, since OTLP
    /// carries no element type for it; key–value lists are not attribute values and are rejected.
    public init(otlpAnyValue bytes: ArraySlice<UInt8>) throws {
        var r = ProtobufReader(bytes)
        var result: AttributeValue?
        while let (field, value) = try r.next() {
            switch field {
            case 1: result = .string(try value.asString())
            case 2: result = .bool(try value.asVarint() != 0)
            case 3: result = .int(Int64(bitPattern: try value.asVarint()))
            case 4: result = .double(Double(bitPattern: try value.asFixed64()))
            case 7: result = .bytes(Array(try value.asBytes()))
            case 5: result = try Self.decodeArray(try value.asBytes())
            case 6: throw TelemetryFlowError(.decoding, "AnyValue key-value lists are not supported as attribute values")
            default: continue
            }
        }
        guard let result else { throw TelemetryFlowError(.decoding, "AnyValue holds no value") }
        self = result
    }

    private static func decodeArray(_ bytes: ArraySlice<UInt8>) throws -> AttributeValue {
        var r = ProtobufReader(bytes)
        var items: [AttributeValue] = []
        while let (field, value) = try r.next() {
            guard field == 1 else { continue }
           
            items.append(try AttributeValue(otlpAnyValue: try value.asBytes()))
        }
        guard let first = items.first else { return .stringArray([]) }
        func all<T>(_ extract: (AttributeValue) -> T?) throws -> [T] {
            try items.map { item in
                guard let v = extract(item) else {
                    throw TelemetryFlowError(.decoding, "AnyValue array mixes element types")
                }
                return v
            }
        }
        switch first {
        case .string: return .stringArray(try all { if case .string(let v) = $0 { v } else { nil } })
        case .bool: return .boolArray(try all { if case .bool(let v) = $0 { v } else { nil } })
        case .int: return .intArray(try all { if case .int(let v) = $0 { v } else { nil } })
        case .double: return .doubleArray(try all { if case .double(let v) = $0 { v } else { nil } })
        default: throw TelemetryFlowError(.decoding, "AnyValue arrays of \(first) are not supported")
        }
    }
}

extension Attributes {
    /// Writes each attribute as an OTLP `KeyValue` in repeated field `field`.
    ///
    /// Scalar values (the common case) are written in one pass with their lengths computed up front; bytes
    /// and arrays reserve a length byte and patch it.
    public func encodeOTLP(field: UInt32, into w: inout ProtobufWriter) {
        let tag = UInt8(truncatingIfNeeded: field << 3 | 2)
        if field < 16 {
            // Through a pointer: each attribute is read in place rather than copied (and retained) out of the array.
            elements.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return }
                for index in 0..<buffer.count { Self.encodeKeyValue(tag: tag, base + index, into: &w) }
            }
        } else {
            for attribute in elements { Self.encodeKeyValueNested(field, attribute, into: &w) }
        }
    }

    /// One `KeyValue` whose field number fits in a one-byte tag (`tag` is that byte).
    @inline(__always)
    static func encodeKeyValue(tag: UInt8, _ attribute: UnsafePointer<Attribute>, into w: inout ProtobufWriter) {
        switch attribute.pointee.value {
        case .string(let v):
            let count = v.utf8.count
            writeScalarHeader(tag, attribute.pointee.key, anyValue: 1 &+ ProtobufWriter.varintSize(UInt64(count)) &+ count, into: &w)
            w.append(0x0A)  // string_value
            w.writeString(v)
        case .bool(let v):
            writeScalarHeader(tag, attribute.pointee.key, anyValue: 2, into: &w)
            w.append(0x10)  // bool_value
            w.append(v ? 1 : 0)
        case .int(let v):
            writeScalarHeader(tag, attribute.pointee.key, anyValue: 1 &+ ProtobufWriter.varintSize(UInt64(bitPattern: v)), into: &w)
            w.append(0x18)  // int_value
            w.writeVarint(UInt64(bitPattern: v))
        case .double(let v):
            writeScalarHeader(tag, attribute.pointee.key, anyValue: 9, into: &w)
            w.append(0x21)  // double_value
            w.writeRawFixed64(v.bitPattern)
        default:
            encodeKeyValueNested(UInt32(tag >> 3), attribute.pointee, into: &w)
        }
    }

    /// The `KeyValue` tag and length, its key field and the tag and length of its `AnyValue`, whose body is
    /// `anyValue` bytes.
    @inline(__always)
    static func writeScalarHeader(_ tag: UInt8, _ key: String, anyValue: Int, into w: inout ProtobufWriter) {
        let keyCount = key.utf8.count
        let keyField = keyCount == 0 ? 0 : 1 &+ ProtobufWriter.varintSize(UInt64(keyCount)) &+ keyCount
        w.append(tag)
        w.writeVarint(UInt64(keyField &+ 1 &+ ProtobufWriter.varintSize(UInt64(anyValue)) &+ anyValue))
        if keyCount > 0 {
            w.append(0x0A)  // key
            w.writeString(key)
        }
        w.append(0x12)  // value
        w.writeVarint(UInt64(anyValue))
    }

    /// Any `KeyValue`, with nested lengths patched after the bodies are written.
    static func encodeKeyValueNested(_ field: UInt32, _ attribute: Attribute, into w: inout ProtobufWriter) {
        w.writeMessageField(field) { w in
            w.writeStringField(1, attribute.key)
            w.writeMessageField(2) { attribute.value.encodeOTLPAnyValue(into: &$0) }
        }
    }

    /// Decodes one OTLP `KeyValue` and appends it.
    public mutating func appendOTLPKeyValue(_ bytes: ArraySlice<UInt8>) throws {
        var r = ProtobufReader(bytes)
        var key = ""
        var value: AttributeValue?
        while let (field, v) = try r.next() {
            switch field {
            case 1: key = try v.asString()
            case 2: value = try AttributeValue(otlpAnyValue: try v.asBytes())
            default: continue
            }
        }
        guard let value else { throw TelemetryFlowError(.decoding, "KeyValue \"\(key)\" holds no value") }
        elements.append(Attribute(key, value))
    }
}

extension SpanEvent {
    /// Writes this event as an OTLP `Span.Event` message body.
    public func encodeOTLP(into w: inout ProtobufWriter) {
        w.writeFixed64Field(1, timeUnixNano)
        w.writeStringField(2, name)
        attributes.encodeOTLP(field: 3, into: &w)
        w.writeVarintField(4, UInt64(droppedAttributesCount))
    }

    /// Decodes an OTLP `Span.Event` message body.
    public init(otlp bytes: ArraySlice<UInt8>) throws {
        self.init(name: "", timeUnixNano: 0)
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 1: timeUnixNano = try v.asFixed64()
            case 2: name = try v.asString()
            case 3: try attributes.appendOTLPKeyValue(try v.asBytes())
            case 4: droppedAttributesCount = UInt32(truncatingIfNeeded: try v.asVarint())
            default: continue
            }
        }
    }
}

extension SpanData {
    /// Writes this span as an OTLP `Span` message body.
    public func encodeOTLP(into w: inout ProtobufWriter) {
        w.writeTraceIDField(1, traceID)
        w.writeSpanIDField(2, spanID)
        w.writeStringField(3, traceState)
        if parentSpanID.isValid { w.writeSpanIDField(4, parentSpanID) }
        w.writeStringField(5, name)
        w.writeVarintField(6, UInt64(kind.rawValue))
        w.writeFixed64Field(7, startTimeUnixNano)
        w.writeFixed64Field(8, endTimeUnixNano)
        attributes.encodeOTLP(field: 9, into: &w)
        w.writeVarintField(10, UInt64(droppedAttributesCount))
        for event in events { w.writeMessageField(11) { event.encodeOTLP(into: &$0) } }
        w.writeVarintField(12, UInt64(droppedEventsCount))
        for link in links {
            w.writeMessageField(13) { w in
                w.writeTraceIDField(1, link.traceID)
                w.writeSpanIDField(2, link.spanID)
                w.writeStringField(3, link.traceState)
                link.attributes.encodeOTLP(field: 4, into: &w)
                w.writeVarintField(5, UInt64(link.droppedAttributesCount))
                w.writeFixed32Field(6, link.flags)
            }
        }
        w.writeVarintField(14, UInt64(droppedLinksCount))
        if status.code != .unset || !status.message.isEmpty {
            w.writeMessageField(15) { w in
                w.writeStringField(2, status.message)
                w.writeVarintField(3, UInt64(status.code.rawValue))
            }
        }
        w.writeFixed32Field(16, flags)
    }

    /// Decodes an OTLP `Span` message body.
    public init(otlp bytes: ArraySlice<UInt8>) throws {
        self.init(traceID: .invalid, spanID: .invalid, flags: 0, name: "", kind: .unspecified, startTimeUnixNano: 0)
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 1: traceID = try Self.id(TraceID(bytes: try v.asBytes()), "trace_id")
            case 2: spanID = try Self.id(SpanID(bytes: try v.asBytes()), "span_id")
            case 3: traceState = try v.asString()
            case 4: parentSpanID = try Self.id(SpanID(bytes: try v.asBytes()), "parent_span_id")
            case 5: name = try v.asString()
            case 6: kind = SpanKind(rawValue: UInt8(truncatingIfNeeded: try v.asVarint())) ?? .unspecified
            case 7: startTimeUnixNano = try v.asFixed64()
            case 8: endTimeUnixNano = try v.asFixed64()
            case 9: try attributes.appendOTLPKeyValue(try v.asBytes())
            case 10: droppedAttributesCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 11: events.append(try SpanEvent(otlp: try v.asBytes()))
            case 12: droppedEventsCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 13: links.append(try Self.decodeLink(try v.asBytes()))
            case 14: droppedLinksCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 15: status = try Self.decodeStatus(try v.asBytes())
            case 16: flags = try v.asFixed32()
            default: continue
            }
        }
    }

    private static func id<T>(_ value: T?, _ field: String) throws -> T {
        guard let value else { throw TelemetryFlowError(.decoding, "Span \(field) has the wrong length") }
        return value
    }

    private static func decodeLink(_ bytes: ArraySlice<UInt8>) throws -> SpanLink {
        var link = SpanLink(traceID: .invalid, spanID: .invalid)
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 1: link.traceID = try id(TraceID(bytes: try v.asBytes()), "link trace_id")
            case 2: link.spanID = try id(SpanID(bytes: try v.asBytes()), "link span_id")
            case 3: link.traceState = try v.asString()
            case 4: try link.attributes.appendOTLPKeyValue(try v.asBytes())
            case 5: link.droppedAttributesCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 6: link.flags = try v.asFixed32()
            default: continue
            }
        }
        return link
    }

    private static func decodeStatus(_ bytes: ArraySlice<UInt8>) throws -> SpanStatus {
        var status = SpanStatus.unset
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 2: status.message = try v.asString()
            case 3: status.code = SpanStatus.Code(rawValue: UInt8(truncatingIfNeeded: try v.asVarint())) ?? .unset
            default: continue
            }
        }
        return status
    }
}

extension LogRecordData {
    /// Writes this record as an OTLP `LogRecord` message body.
    public func encodeOTLP(into w: inout ProtobufWriter) {
        w.writeFixed64Field(1, timeUnixNano)
        w.writeVarintField(2, UInt64(severity.number))
        w.writeStringField(3, severityText)
        if let body { w.writeMessageField(5) { body.encodeOTLPAnyValue(into: &$0) } }
        attributes.encodeOTLP(field: 6, into: &w)
        w.writeVarintField(7, UInt64(droppedAttributesCount))
        w.writeFixed32Field(8, flags)
        if traceID.isValid { w.writeTraceIDField(9, traceID) }
        if spanID.isValid { w.writeSpanIDField(10, spanID) }
        w.writeFixed64Field(11, observedTimeUnixNano)
        w.writeStringField(12, eventName)
    }

    /// Decodes an OTLP `LogRecord` message body.
    public init(otlp bytes: ArraySlice<UInt8>) throws {
        self.init(timeUnixNano: 0, severity: .unspecified, severityText: "", body: nil)
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 1: timeUnixNano = try v.asFixed64()
            case 2: severity = Severity(unchecked: UInt8(min(24, try v.asVarint())))
            case 3: severityText = try v.asString()
            case 5: body = try AttributeValue(otlpAnyValue: try v.asBytes())
            case 6: try attributes.appendOTLPKeyValue(try v.asBytes())
            case 7: droppedAttributesCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 8: flags = try v.asFixed32()
            case 9:
                guard let id = TraceID(bytes: try v.asBytes()) else {
                    throw TelemetryFlowError(.decoding, "LogRecord trace_id has the wrong length")
                }
                traceID = id
            case 10:
                guard let id = SpanID(bytes: try v.asBytes()) else {
                    throw TelemetryFlowError(.decoding, "LogRecord span_id has the wrong length")
                }
                spanID = id
            case 11: observedTimeUnixNano = try v.asFixed64()
            case 12: eventName = try v.asString()
            default: continue
            }
        }
    }
}

extension ProtobufWriter {
    /// Writes a 16-byte trace id as a `bytes` field without building an intermediate array.
    @inlinable @inline(__always)
    public mutating func writeTraceIDField(_ field: UInt32, _ id: TraceID) {
        writeTag(field, .lengthDelimited)
        append(16)
        writeRawFixed64(id.high.bigEndian)
        writeRawFixed64(id.low.bigEndian)
    }

    /// Writes an 8-byte span id as a `bytes` field without building an intermediate array.
    @inlinable @inline(__always)
    public mutating func writeSpanIDField(_ field: UInt32, _ id: SpanID) {
        writeTag(field, .lengthDelimited)
        append(8)
        writeRawFixed64(id.value.bigEndian)
    }
}
