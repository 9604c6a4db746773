/// A minimal protocol-buffers writer: varints, fixed-width numbers and length-delimited fields.
///
/// It writes the wire format straight into raw memory (no per-byte array bookkeeping), so encoders build OTLP
/// messages and log records without generated code. Nested messages reserve one length byte and widen it in
/// place when the body is 128 bytes or longer, which keeps the common case (small attributes, events) to one
/// pass. The writer owns its memory (it is not copyable); ``withScratch(capacity:_:)`` starts it on the stack,
/// which is how a record is encoded on the append path without touching the heap.
public struct ProtobufWriter: ~Copyable {
    /// Wire types of the protocol-buffers encoding.
    public enum WireType: UInt8, Sendable {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var capacity: Int
    /// Whether `base` is heap memory this writer frees (false while it writes into a caller's scratch space).
    @usableFromInline var owned: Bool
    @usableFromInline var length: Int
    /// The number of bytes written so far.
    @inlinable public var count: Int { length }

    /// Creates an empty writer with room for `capacity` bytes before it grows.
    public init(capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
        owned = true
        length = 0
    }

    @usableFromInline
    init(scratch: UnsafeMutableBufferPointer<UInt8>) {
        base = scratch.baseAddress!
        capacity = scratch.count
        owned = false
        length = 0
    }

    deinit { if owned { base.deallocate() } }

    /// Runs `body` with a writer whose first 1,024 bytes live on the stack (it moves to the heap only if it
    /// outgrows them).
    @inlinable
    public static func withScratch<R>(_ body: (inout ProtobufWriter) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { scratch in
            var w = ProtobufWriter(scratch: scratch)
            return try body(&w)
        }
    }

    /// A copy of the bytes written so far.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with the bytes written so far (valid only during the call).
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: length))
    }

    /// Makes room for `additional` more bytes.
    @inlinable
    public mutating func reserve(_ additional: Int) {
        if length + additional > capacity { grow(to: length + additional) }
    }

    @usableFromInline
    mutating func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: length)
        if owned { base.deallocate() }
        base = newBase
        capacity = newCapacity
        owned = true
    }

    /// Appends one byte.
    @inlinable
    public mutating func append(_ byte: UInt8) {
        reserve(1)
        base[length] = byte
        length += 1
    }

    /// Appends raw bytes.
    @inlinable
    public mutating func append(contentsOf bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve(bytes.count)
        UnsafeMutableRawPointer(base + length).copyMemory(from: source, byteCount: bytes.count)
        length += bytes.count
    }

    /// Appends a collection of bytes (arrays and slices are copied in one move).
    @inlinable
    public mutating func append(contentsOf bytes: some Collection<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { append(contentsOf: UnsafeRawBufferPointer($0)) }
        guard done == nil else { return }
        reserve(bytes.count)
        for byte in bytes {
            base[length] = byte
            length += 1
        }
    }

    /// Appends the little-endian bytes of `value`.
    @inlinable
    public mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        reserve(MemoryLayout<T>.size)
        UnsafeMutableRawPointer(base + length).storeBytes(of: value.littleEndian, as: T.self)
        length += MemoryLayout<T>.size
    }

    /// Overwrites the bytes at `offset` with the little-endian bytes of `value` (a length or checksum patched
    /// after the fact).
    @inlinable
    public mutating func storeLittleEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= length, "store outside the written bytes")
        UnsafeMutableRawPointer(base + offset).storeBytes(of: value.littleEndian, as: T.self)
    }

    /// Appends a raw varint.
    @inlinable @inline(__always)
    public mutating func writeVarint(_ value: UInt64) {
        if value < 0x80 {
            append(UInt8(truncatingIfNeeded: value))
            return
        }
        reserve(10)
        length += storeVarint(value, at: length)
    }

    /// Writes `value` as a varint at `offset` (room must exist) and returns its size.
    @inlinable
    mutating func storeVarint(_ value: UInt64, at offset: Int) -> Int {
        var v = value
        var at = offset
        while v >= 0x80 {
            base[at] = UInt8(truncatingIfNeeded: v) | 0x80
            at += 1
            v >>= 7
        }
        base[at] = UInt8(v)
        return at + 1 - offset
    }

    /// Appends a field key (field number and wire type).
    @inlinable @inline(__always)
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
        append(value ? 1 : 0)
    }

    /// Appends a little-endian 64-bit value without a tag.
    @inlinable
    public mutating func writeRawFixed64(_ value: UInt64) {
        appendLittleEndian(value)
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
        appendLittleEndian(value)
    }

    /// Appends a `string` field; `always` writes it even when empty (needed inside `oneof`).
    @inlinable
    public mutating func writeStringField(_ field: UInt32, _ value: String, always: Bool = false) {
        guard !value.isEmpty || always else { return }
        writeTag(field, .lengthDelimited)
        writeString(value)
    }

    /// Appends a string's varint length and UTF-8 bytes (the body of a `string` field).
    @inlinable
    public mutating func writeString(_ value: String) {
        // Native strings (small ones included) expose their UTF-8 without a copy; others are made native once.
        let done: Void? = value.utf8.withContiguousStorageIfAvailable { utf8 in
            writeVarint(UInt64(utf8.count))
            append(contentsOf: UnsafeRawBufferPointer(utf8))
        }
        guard done == nil else { return }
        var copy = value
        copy.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            append(contentsOf: UnsafeRawBufferPointer(utf8))
        }
    }

    /// Appends a `bytes` field; `always` writes it even when empty.
    @inlinable
    public mutating func writeBytesField(_ field: UInt32, _ value: some Collection<UInt8>, always: Bool = false) {
        guard !value.isEmpty || always else { return }
        writeTag(field, .lengthDelimited)
        writeVarint(UInt64(value.count))
        append(contentsOf: value)
    }

    /// Appends a length-delimited field whose body `body` writes; the length is patched afterwards.
    @inlinable
    public mutating func writeMessageField(_ field: UInt32, _ body: (inout ProtobufWriter) -> Void) {
        writeTag(field, .lengthDelimited)
        let lengthAt = length
        append(0)
        body(&self)
        patchLength(at: lengthAt)
    }

    /// Rewrites the one reserved length byte at `lengthAt` with the varint length of what follows it.
    @inlinable
    public mutating func patchLength(at lengthAt: Int) {
        let body = length - lengthAt - 1
        if body < 0x80 {
            base[lengthAt] = UInt8(body)
            return
        }
        var extra = 0
        var v = body >> 7
        while v > 0 {
            extra += 1
            v >>= 7
        }
        reserve(extra)
        UnsafeMutableRawPointer(base + lengthAt + 1 + extra).copyMemory(from: base + lengthAt + 1, byteCount: body)  // memmove
        length += extra
        _ = storeVarint(UInt64(body), at: lengthAt)
    }
}
