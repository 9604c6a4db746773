// MARK: OTLP protobuf

extension AttributeValue {
    /// Writes this value as an OTLP `AnyValue` message body.
    package func encodeOTLPAnyValue(into w: inout ProtobufWriter) {
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
    package init(otlpAnyValue bytes: ArraySlice<UInt8>) throws {
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

// MARK: OTLP JSON

extension AttributeValue {
    /// Writes an OTLP `AnyValue` object.
    package func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in
            switch self {
            case .string(let s): j.field("stringValue", s)
            case .bool(let b): j.field("boolValue", b)
            case .int(let i): j.field("intValue", String(i))
            case .double(let d): j.field("doubleValue", d)
            case .bytes(let b): j.field("bytesValue", Base64.encode(b))
            case .stringArray(let a): Self.array(&j, a.map { .string($0) })
            case .boolArray(let a): Self.array(&j, a.map { .bool($0) })
            case .intArray(let a): Self.array(&j, a.map { .int($0) })
            case .doubleArray(let a): Self.array(&j, a.map { .double($0) })
            }
        }
    }

    private static func array(_ j: inout JSONWriter, _ values: [AttributeValue]) {
        j.key("arrayValue")
        j.object { j in
            j.key("values")
            j.array { j in for v in values { v.writeOTLPJSON(into: &j) } }
        }
    }
}
