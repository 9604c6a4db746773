/// A minimal protocol-buffers reader, the counterpart of ``ProtobufWriter``.
///
/// It walks fields one at a time over a byte slice and throws ``TelemetryFlowError/Code/decoding`` on
/// truncated or malformed input instead of trapping.
package struct ProtobufReader: Sendable {
    /// One decoded field value.
    package enum Value: Sendable {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes(ArraySlice<UInt8>)

        /// The value as a length-delimited payload, or a decoding error.
        package func asBytes() throws -> ArraySlice<UInt8> {
            guard case .bytes(let b) = self else { throw ProtobufReader.wrongType("length-delimited") }
            return b
        }
        /// The value as a varint, or a decoding error.
        package func asVarint() throws -> UInt64 {
            guard case .varint(let v) = self else { throw ProtobufReader.wrongType("varint") }
            return v
        }
        /// The value as a fixed 64-bit number, or a decoding error.
        package func asFixed64() throws -> UInt64 {
            guard case .fixed64(let v) = self else { throw ProtobufReader.wrongType("fixed64") }
            return v
        }
        /// The value as a fixed 32-bit number, or a decoding error.
        package func asFixed32() throws -> UInt32 {
            guard case .fixed32(let v) = self else { throw ProtobufReader.wrongType("fixed32") }
            return v
        }
        /// The value as UTF-8 text, or a decoding error.
        package func asString() throws -> String {
            String(decoding: try asBytes(), as: UTF8.self)
        }
    }

    private let bytes: ArraySlice<UInt8>
    private var index: Int

    /// Creates a reader over `bytes`.
    package init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    /// Whether every field has been read.
    package var isAtEnd: Bool { index >= bytes.endIndex }

    static func wrongType(_ expected: String) -> TelemetryFlowError {
        TelemetryFlowError(.decoding, "protobuf field has the wrong wire type; expected \(expected)")
    }

    static let truncated = TelemetryFlowError(.decoding, "protobuf message is truncated")

    /// Reads a varint.
    package mutating func readVarint() throws -> UInt64 {
        try Varint.read(bytes, at: &index)
    }

    private mutating func readFixed(_ count: Int) throws -> UInt64 {
        guard bytes.endIndex - index >= count else { throw Self.truncated }
        var value: UInt64 = 0
        for i in 0..<count { value |= UInt64(bytes[index + i]) << (8 * UInt64(i)) }
        index += count
        return value
    }

    /// Reads the next field, or returns nil at the end of the message.
    package mutating func next() throws -> (field: UInt32, value: Value)? {
        guard !isAtEnd else { return nil }
        let key = try readVarint()
        let field = UInt32(truncatingIfNeeded: key >> 3)
        guard field != 0 else { throw TelemetryFlowError(.decoding, "protobuf field number 0 is invalid") }
        switch key & 7 {
        case 0: return (field, .varint(try readVarint()))
        case 1: return (field, .fixed64(try readFixed(8)))
        case 5: return (field, .fixed32(UInt32(try readFixed(4))))
        case 2:
            let length = try readVarint()
            guard length <= UInt64(bytes.endIndex - index) else { throw Self.truncated }
            let start = index
            index += Int(length)
            return (field, .bytes(bytes[start..<index]))
        default:
            throw TelemetryFlowError(.decoding, "protobuf wire type \(key & 7) is not supported")
        }
    }
}

/// The one base-128 varint reader of the package (protobuf messages, stored payloads, the OTLP encoder's scan
/// of stored records); ``ProtobufWriter`` holds the one writer.
package enum Varint {
    /// Reads the varint at `index` in `bytes` and moves `index` past it.
    ///
    /// - Throws: ``TelemetryFlowError/Code/decoding`` when the bytes end first or the value exceeds 64 bits.
    @inline(__always)
    package static func read(_ bytes: ArraySlice<UInt8>, at index: inout Int) throws(TelemetryFlowError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < bytes.endIndex else { throw truncated }
            let byte = bytes[index]
            index += 1
            if shift == 63 && byte > 1 { throw tooLong }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    static let truncated = TelemetryFlowError(.decoding, "varint is truncated")
    static let tooLong = TelemetryFlowError(.decoding, "varint is longer than 64 bits")
}
