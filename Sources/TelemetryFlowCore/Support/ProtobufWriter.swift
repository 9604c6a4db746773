/// A minimal protocol-buffers writer: varints, fixed-width numbers and length-delimited fields.
///
/// It writes the wire format straight into raw memory (no per-byte array bookkeeping), so encoders build OTLP
/// messages and log records without generated code. Nested messages reserve one length byte and widen it in
/// place when the body is 128 bytes or longer, which keeps the common case (small attributes, events) to one
/// pass. The writer owns its memory (it is not copyable); ``withScratch(capacity:_:)`` starts it on the stack,
/// which is how a record is encoded on the append path without touching the heap.
package struct ProtobufWriter: ~Copyable {
    /// Wire types of the protocol-buffers encoding.
    package enum WireType: UInt8, Sendable {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, fixed32 = 5
    }

    /// Start of the memory written into.
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    /// Where the next byte goes.
    @usableFromInline var cursor: UnsafeMutablePointer<UInt8>
    /// One past the last byte of the memory.
    @usableFromInline var end: UnsafeMutablePointer<UInt8>
    /// Whether `base` is heap memory this writer frees (false while it writes into a caller's scratch space).
    @usableFromInline var owned: Bool
    /// The number of bytes written so far.
    @inlinable package var count: Int { Int(bitPattern: cursor) &- Int(bitPattern: base) }

    /// Creates an empty writer with room for `capacity` bytes before it grows.
    package init(capacity: Int = 256) {
        let capacity = max(capacity, 16)
        base = .allocate(capacity: capacity)
        cursor = base
        end = base + capacity
        owned = true
    }

    @usableFromInline
    init(scratch: UnsafeMutableBufferPointer<UInt8>) {
        base = scratch.baseAddress!
        cursor = base
        end = base + scratch.count
        owned = false
    }

    deinit { if owned { base.deallocate() } }

    /// Runs `body` with a writer whose first 1,024 bytes live on the stack (it moves to the heap only if it
    /// outgrows them).
    @inlinable @inline(__always)
    package static func withScratch<R>(_ body: (inout ProtobufWriter) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { scratch in
            var w = ProtobufWriter(scratch: scratch)
            return try body(&w)
        }
    }

    /// ``withScratch(_:)`` for a body that reads `argument`: the argument is passed through by borrow rather
    /// than captured, so a large value (an event) is not copied on the way.
    @inlinable @inline(__always)
    package static func withScratch<Argument: ~Copyable, R>(
        passing argument: borrowing Argument, _ body: (borrowing Argument, inout ProtobufWriter) throws -> R
    ) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1024) { scratch in
            var w = ProtobufWriter(scratch: scratch)
            return try body(argument, &w)
        }
    }

    /// A copy of the bytes written so far.
    package var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with the bytes written so far (valid only during the call).
    @inlinable
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Makes room for `additional` more bytes.
    @inlinable @inline(__always)
    package mutating func reserve(_ additional: Int) {
        if additional > Int(bitPattern: end) &- Int(bitPattern: cursor) { grow(to: count + additional) }
    }

    @usableFromInline
    mutating func grow(to needed: Int) {
        let length = count
        var newCapacity = (Int(bitPattern: end) &- Int(bitPattern: base)) * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: length)
        if owned { base.deallocate() }
        base = newBase
        cursor = newBase + length
        end = newBase + newCapacity
        owned = true
    }

    /// Appends one byte.
    @inlinable @inline(__always)
    package mutating func append(_ byte: UInt8) {
        if cursor == end { grow(to: count + 1) }
        cursor.pointee = byte
        cursor += 1
    }

    /// Appends raw bytes.
    @inlinable
    package mutating func append(contentsOf bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve(bytes.count)
        UnsafeMutableRawPointer(cursor).copyMemory(from: source, byteCount: bytes.count)
        cursor += bytes.count
    }

    /// Appends a collection of bytes (arrays and slices are copied in one move).
    @inlinable
    package mutating func append(contentsOf bytes: some Collection<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { append(contentsOf: UnsafeRawBufferPointer($0)) }
        guard done == nil else { return }
        reserve(bytes.count)
        for byte in bytes {
            cursor.pointee = byte
            cursor += 1
        }
    }

    /// Appends the little-endian bytes of `value`.
    @inlinable @inline(__always)
    package mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        reserve(MemoryLayout<T>.size)
        UnsafeMutableRawPointer(cursor).storeBytes(of: value.littleEndian, as: T.self)
        cursor += MemoryLayout<T>.size
    }

    /// Appends the little-endian bytes of `value` without checking for room: only after ``reserve(_:)``.
    @inlinable @inline(__always)
    package mutating func appendUnchecked<T: FixedWidthInteger>(_ value: T) {
        assert(Int(bitPattern: end) &- Int(bitPattern: cursor) >= MemoryLayout<T>.size, "appendUnchecked without reserve")
        UnsafeMutableRawPointer(cursor).storeBytes(of: value.littleEndian, as: T.self)
        cursor += MemoryLayout<T>.size
    }

    /// Overwrites the bytes at `offset` with the little-endian bytes of `value` (a length or checksum patched
    /// after the fact).
    @inlinable
    package mutating func storeLittleEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count, "store outside the written bytes")
        UnsafeMutableRawPointer(base + offset).storeBytes(of: value.littleEndian, as: T.self)
    }

    /// Appends a raw varint.
    @inlinable @inline(__always)
    package mutating func writeVarint(_ value: UInt64) {
        reserve(10)
        cursor = Self.storeVarint(value, at: cursor)
    }

    /// The number of bytes of `value` as a varint.
    @inlinable @inline(__always)
    package static func varintSize(_ value: UInt64) -> Int {
        (64 &- (value | 1).leadingZeroBitCount &+ 6) / 7
    }

    /// Writes `value` as a varint at `at` (room must exist) and returns the position after it.
    @inlinable @inline(__always)
    static func storeVarint(_ value: UInt64, at: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        var v = value
        var p = at
        while v >= 0x80 {
            p.pointee = UInt8(truncatingIfNeeded: v) | 0x80
            p += 1
            v >>= 7
        }
        p.pointee = UInt8(truncatingIfNeeded: v)
        return p + 1
    }

    /// Appends a field key (field number and wire type).
    @inlinable @inline(__always)
    package mutating func writeTag(_ field: UInt32, _ type: WireType) {
        writeVarint(UInt64(field) << 3 | UInt64(type.rawValue))
    }

    /// Appends a varint field, omitting it when `value` is zero (proto3 default).
    @inlinable @inline(__always)
    package mutating func writeVarintField(_ field: UInt32, _ value: UInt64) {
        guard value != 0 else { return }
        writeTag(field, .varint)
        writeVarint(value)
    }

    /// Appends an `int64` field (two's complement varint), omitting zero.
    @inlinable @inline(__always)
    package mutating func writeInt64Field(_ field: UInt32, _ value: Int64, always: Bool = false) {
        guard value != 0 || always else { return }
        writeTag(field, .varint)
        writeVarint(UInt64(bitPattern: value))
    }

    /// Appends a `bool` field, omitting false.
    @inlinable @inline(__always)
    package mutating func writeBoolField(_ field: UInt32, _ value: Bool, always: Bool = false) {
        guard value || always else { return }
        writeTag(field, .varint)
        append(value ? 1 : 0)
    }

    /// Appends a little-endian 64-bit value without a tag.
    @inlinable @inline(__always)
    package mutating func writeRawFixed64(_ value: UInt64) {
        appendLittleEndian(value)
    }

    /// Appends a `fixed64` field, omitting zero unless `always`.
    @inlinable @inline(__always)
    package mutating func writeFixed64Field(_ field: UInt32, _ value: UInt64, always: Bool = false) {
        guard value != 0 || always else { return }
        writeTag(field, .fixed64)
        writeRawFixed64(value)
    }

    /// Appends a `double` field; `always` writes it even when it is zero (needed inside `oneof`).
    @inlinable @inline(__always)
    package mutating func writeDoubleField(_ field: UInt32, _ value: Double, always: Bool = false) {
        guard value.bitPattern != 0 || always else { return }
        writeTag(field, .fixed64)
        writeRawFixed64(value.bitPattern)
    }

    /// Appends a `fixed32` field, omitting zero.
    @inlinable @inline(__always)
    package mutating func writeFixed32Field(_ field: UInt32, _ value: UInt32) {
        guard value != 0 else { return }
        writeTag(field, .fixed32)
        appendLittleEndian(value)
    }

    /// Appends a `string` field; `always` writes it even when empty (needed inside `oneof`).
    @inlinable @inline(__always)
    package mutating func writeStringField(_ field: UInt32, _ value: String, always: Bool = false) {
        guard !value.isEmpty || always else { return }
        writeTag(field, .lengthDelimited)
        writeString(value)
    }

    /// Appends a string's varint length and UTF-8 bytes (the body of a `string` field).
    @inlinable @inline(__always)
    package mutating func writeString(_ value: String) {
        if let small = SmallStringBits(value) {
            // Up to 15 bytes held in the string value itself: two word stores, no spill to memory.
            reserve(17)
            cursor.pointee = UInt8(truncatingIfNeeded: small.count)
            let target = UnsafeMutableRawPointer(cursor + 1)
            target.storeBytes(of: small.low.littleEndian, as: UInt64.self)
            target.storeBytes(of: small.high.littleEndian, toByteOffset: 8, as: UInt64.self)
            cursor += 1 &+ small.count
            return
        }
        // Native strings expose their UTF-8 without a copy; others are made native once.
        let done: Void? = value.utf8.withContiguousStorageIfAvailable { writeString(UnsafeRawBufferPointer($0)) }
        if done == nil { writeForeignString(value) }
    }

    @usableFromInline
    mutating func writeForeignString(_ value: String) {
        var copy = value
        copy.withUTF8 { writeString(UnsafeRawBufferPointer($0)) }
    }

    /// Appends the varint length and then `bytes` (the body of a `string` or `bytes` field).
    @inlinable @inline(__always)
    package mutating func writeString(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        reserve(n &+ 10)
        cursor = Self.storeVarint(UInt64(n), at: cursor)
        Self.copy(bytes.baseAddress, count: n, to: cursor)
        cursor += n
    }

    /// Copies `count` bytes; short runs (most keys and values) with a few overlapping word moves instead of a
    /// call to `memcpy`.
    @inlinable @inline(__always)
    static func copy(_ source: UnsafeRawPointer?, count: Int, to target: UnsafeMutablePointer<UInt8>) {
        guard let source, count > 0 else { return }
        let target = UnsafeMutableRawPointer(target)
        if count > 32 {
            target.copyMemory(from: source, byteCount: count)
        } else if count >= 16 {
            let a = source.loadUnaligned(as: (UInt64, UInt64).self)
            let b = source.loadUnaligned(fromByteOffset: count &- 16, as: (UInt64, UInt64).self)
            target.storeBytes(of: a, as: (UInt64, UInt64).self)
            target.storeBytes(of: b, toByteOffset: count &- 16, as: (UInt64, UInt64).self)
        } else if count >= 8 {
            let a = source.loadUnaligned(as: UInt64.self)
            let b = source.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
            target.storeBytes(of: a, as: UInt64.self)
            target.storeBytes(of: b, toByteOffset: count &- 8, as: UInt64.self)
        } else if count >= 4 {
            let a = source.loadUnaligned(as: UInt32.self)
            let b = source.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
            target.storeBytes(of: a, as: UInt32.self)
            target.storeBytes(of: b, toByteOffset: count &- 4, as: UInt32.self)
        } else {
            // 1 to 3 bytes: first, middle and last (they coincide when shorter).
            target.storeBytes(of: source.load(as: UInt8.self), as: UInt8.self)
            target.storeBytes(of: source.load(fromByteOffset: count >> 1, as: UInt8.self), toByteOffset: count >> 1, as: UInt8.self)
            target.storeBytes(of: source.load(fromByteOffset: count &- 1, as: UInt8.self), toByteOffset: count &- 1, as: UInt8.self)
        }
    }

    /// Appends a `bytes` field; `always` writes it even when empty.
    @inlinable
    package mutating func writeBytesField(_ field: UInt32, _ value: some Collection<UInt8>, always: Bool = false) {
        guard !value.isEmpty || always else { return }
        writeTag(field, .lengthDelimited)
        writeVarint(UInt64(value.count))
        append(contentsOf: value)
    }

    /// Appends a length-delimited field whose body `body` writes; the length is patched afterwards.
    @inlinable
    package mutating func writeMessageField(_ field: UInt32, _ body: (inout ProtobufWriter) -> Void) {
        writeTag(field, .lengthDelimited)
        let lengthAt = count
        append(0)
        body(&self)
        patchLength(at: lengthAt)
    }

    /// Rewrites the one reserved length byte at `lengthAt` with the varint length of what follows it.
    @inlinable
    package mutating func patchLength(at lengthAt: Int) {
        let body = count &- lengthAt &- 1
        if body < 0x80 {
            base[lengthAt] = UInt8(truncatingIfNeeded: body)
            return
        }
        widenLength(at: lengthAt, body: body)
    }

    @usableFromInline
    mutating func widenLength(at lengthAt: Int, body: Int) {
        var extra = 0
        var v = body >> 7
        while v > 0 {
            extra += 1
            v >>= 7
        }
        reserve(extra)
        UnsafeMutableRawPointer(base + lengthAt + 1 + extra).copyMemory(from: base + lengthAt + 1, byteCount: body)  // memmove
        cursor += extra
        _ = Self.storeVarint(UInt64(body), at: base + lengthAt)
    }
}

/// The UTF-8 bytes of a small string — one of at most 15 bytes, which Swift keeps inside the `String` value
/// itself — read straight from the value's two words.
///
/// Going through `utf8.withContiguousStorageIfAvailable` spills those words to the stack and reads them back
/// at other offsets and widths, a stall of a dozen cycles per string on x86-64. The layout read here is part of
/// Swift's stable ABI on 64-bit little-endian platforms: bit 61 of the second word marks a small string (bit 60,
/// foreign, is then clear), bits 56–59 hold its length, and the bytes fill the two words in memory order. Every
/// other string, and every other platform, takes the general path (`nil`).
@frozen @usableFromInline
struct SmallStringBits {
    /// Bytes 0–7.
    @usableFromInline let low: UInt64
    /// Bytes 8–14, and zero in the top byte (where the length and flags were).
    @usableFromInline let high: UInt64
    /// The number of UTF-8 bytes, 0–15.
    @usableFromInline let count: Int

    @inlinable @inline(__always)
    init?(_ string: String) {
        #if (arch(x86_64) || arch(arm64)) && _endian(little)
        let words = unsafeBitCast(string, to: (UInt64, UInt64).self)
        guard words.1 >> 60 & 0b11 == 0b10 else { return nil }
        low = words.0
        high = words.1 & 0x00FF_FFFF_FFFF_FFFF
        count = Int(truncatingIfNeeded: words.1 >> 56 & 0xF)
        #else
        return nil
        #endif
    }
}
