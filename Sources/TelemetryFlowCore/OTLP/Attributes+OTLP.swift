// MARK: OTLP protobuf

extension Attributes {
    /// Writes each attribute as an OTLP `KeyValue` in repeated field `field`.
    ///
    /// Scalar values (the common case) are written in one pass with their lengths computed up front; bytes
    /// and arrays reserve a length byte and patch it.
    package func encodeOTLP(field: UInt32, into w: inout ProtobufWriter) {
        let tag = UInt8(truncatingIfNeeded: field << 3 | 2)
        if field < 16 {
            forEachInPlace { Self.encodeKeyValue(tag: tag, key: $0.key, value: $0.value, into: &w) }
        } else {
            for attribute in self { Self.encodeKeyValueNested(field, attribute, into: &w) }
        }
    }

    /// ``encodeOTLP(field:into:)`` of the attributes from position `start` on (those added after a span's started
    /// record was encoded).
    package func encodeOTLP(field: UInt32, from start: Int, into w: inout ProtobufWriter) {
        guard start > 0 else { return encodeOTLP(field: field, into: &w) }
        // Nothing added (most spans): no slice of the attributes made and destroyed.
        guard start < count else { return }
        let tag = UInt8(truncatingIfNeeded: field << 3 | 2)
        for attribute in dropFirst(start) {
            if field < 16 { Self.encodeKeyValue(tag: tag, key: attribute.key, value: attribute.value, into: &w) } else { Self.encodeKeyValueNested(field, attribute, into: &w) }
        }
    }

    /// One `KeyValue` whose field number fits in a one-byte tag (`tag` is that byte). The key and value come as
    /// separate arguments, in registers: an `Attribute` passed by address was read back with a 16-byte load of the
    /// value that the caller had just stored as two words, a stalled load (a tenth of a counter add, by `perf`).
    @inline(never)
    static func encodeKeyValue(tag: UInt8, key: borrowing String, value: borrowing AttributeValue, into w: inout ProtobufWriter) {
        switch value {
        case .string(let v):
            let count = v.utf8.count
            writeScalarHeader(tag, key, anyValue: 1 &+ ProtobufWriter.varintSize(UInt64(count)) &+ count, into: &w)
            w.append(0x0A)  // string_value
            w.writeString(v)
        case .bool(let v):
            writeScalarHeader(tag, key, anyValue: 2, into: &w)
            w.append(0x10)  // bool_value
            w.append(v ? 1 : 0)
        case .int(let v):
            writeScalarHeader(tag, key, anyValue: 1 &+ ProtobufWriter.varintSize(UInt64(bitPattern: v)), into: &w)
            w.append(0x18)  // int_value
            w.writeVarint(UInt64(bitPattern: v))
        case .double(let v):
            writeScalarHeader(tag, key, anyValue: 9, into: &w)
            w.append(0x21)  // double_value
            w.writeRawFixed64(v.bitPattern)
        default:
            encodeKeyValueNested(UInt32(tag >> 3), Attribute(copy key, copy value), into: &w)
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
    package mutating func appendOTLPKeyValue(_ bytes: ArraySlice<UInt8>) throws {
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
        append(Attribute(key, value))
    }
}

// MARK: OTLP JSON

extension Attributes {
    /// Writes `"key": [KeyValue…]`, or nothing when empty.
    package func writeOTLPJSON(_ key: String = "attributes", into j: inout JSONWriter) {
        guard !isEmpty else { return }
        j.key(key)
        j.array { j in
            for a in self {
                j.object { j in
                    j.field("key", a.key)
                    j.key("value")
                    a.value.writeOTLPJSON(into: &j)
                }
            }
        }
    }
}
