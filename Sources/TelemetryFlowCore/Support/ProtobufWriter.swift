/// A minimal protocol-buffers writer: varints, fixed-width numbers and length-delimited fields.
///
/// It writes the wire format directly into a byte array, so encoders can build OTLP messages without
/// generated code. Nested messages reserve one length byte and widen it in place when the body is 128
/// bytes or longer, which keeps the common case (small attributes, events) to one pass.
public struct ProtobufWriter: Sendable {
    /// Wire types of the protocol-buffers encoding.
    public enum WireType: UInt8, Sendable {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    /// The bytes written so far.
    public var bytes: [UInt8]

    /// Creates a writer that appends to `bytes`.
    public init(bytes: [UInt8] = []) { self.bytes = bytes }

    /// Appends a raw varint.
    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Appends a field key (field number and wire type).
    @inlinable
    public mutating func writeTag(_ field: UInt32, _ type: WireType) {
        writeVarint(UInt64(field) << 3 | UInt64(type.rawValue))
    }

    /// Appends a varint field, omitting it when `value` is zero (proto3 default).
    @inlinable
    public mutating func writeVarintField(_ field: UInt32, _ value: UInt64) {
        guard value != 0 else { return }
        writeTag(field, .varint)
        writeVarint(value)
    }

    /// Appends an `int64` field (two's complement varint), omitting zero.
    @inlinable
    public mutating func writeInt64Field(_ field: UInt32, _ value: Int64, always: Bool = false) {
        guard value != 0 || always else { return }
        writeTag(field, .varint)
        writeVarint(UInt64(bitPattern: value))
    }

    /// Appends a `bool` field, omitting false.
    @inlinable
    public mutating func writeBoolField(_ field: UInt32, _ value: Bool, always: Bool = false) {
        guard value || always else { return }
        writeTag(field, .varint)
        bytes.append(value ? 1 : 0)
    }

    /// Appends a little-endian 64-bit value without a tag.
    @inlinable
    public mutating func writeRawFixed64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a `fixed64` field, omitting zero unless `always`.
    @inlinable
    public mutating func writeFixed64Field(_ field: UInt32, _ value: UInt64, always: Bool = false) {
        guard value != 0 || always else { return }
        writeTag(field, .fixed64)
        writeRawFixed64(value)
    }

    /// Appends a `double` field; `always` writes it even when it is zero (needed inside `oneof`).
    @inlinable
    public mutating func writeDoubleField(_ field: UInt32, _ value: Double, always: Bool = false) {
        guard value.bitPattern != 0 || always else { return }
        writeTag(field, .fixed64)
        writeRawFixed64(value.bitPattern)
    }

    /// Appends a `fixed32` field, omitting zero.
    @inlinable
    public mutating func writeFixed32Field(_ field: UInt32, _ value: UInt32) {
        guard value != 0 else { return }
        writeTag(field, .fixed32)
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a `string` field; `always` writes it even when empty (needed inside `oneof`).
    @inlinable
    public mutating func writeStringField(_ field: UInt32, _ value: String, always: Bool = false) {
        guard !value.isEmpty || always else { return }
        writeTag(field, .lengthDelimited)
        var value = value
        value.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// Appends a `bytes` field; `always` writes it even when empty.
    @inlinable
    public mutating func writeBytesField(_ field: UInt32, _ value: some Collection<UInt8>, always: Bool = false) {
        guard !value.isEmpty || always else { return }
        writeTag(field, .lengthDelimited)
        writeVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// Appends a length-delimited field whose body `body` writes; the length is patched afterwards.
    @inlinable
    public mutating func writeMessageField(_ field: UInt32, _ body: (inout ProtobufWriter) -> Void) {
        writeTag(field, .lengthDelimited)
        let lengthAt = bytes.count
        bytes.append(0)
        body(&self)
        patchLength(at: lengthAt)
    }

    /// Rewrites the one reserved length byte at `lengthAt` with the varint length of what follows it.
    @usableFromInline
    mutating func patchLength(at lengthAt: Int) {
        let length = bytes.count - lengthAt - 1
        if length < 0x80 {
            bytes[lengthAt] = UInt8(length)
            return
        }
        var varint: [UInt8] = []
        var v = UInt64(length)
        while v >= 0x80 {
            varint.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        varint.append(UInt8(v))
        bytes.replaceSubrange(lengthAt..<(lengthAt + 1), with: varint)
    }
}
