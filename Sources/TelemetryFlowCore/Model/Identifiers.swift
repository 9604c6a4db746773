/// A 16-byte W3C trace id.
public struct TraceID: Sendable, Hashable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A random, valid (non-zero) trace id.
    public static func random() -> TraceID {
        var generator = SystemRandomNumberGenerator()
        var id = TraceID(high: generator.next(), low: generator.next())
        if id.high == 0 && id.low == 0 { id.low = 1 }
        return id
    }

    /// The all-zero id, which OpenTelemetry treats as invalid (no trace).
    public static let invalid = TraceID(high: 0, low: 0)
    public var isValid: Bool { high != 0 || low != 0 }

    /// The 16 bytes, big-endian, as on the wire.
    public var bytes: [UInt8] { bigEndianBytes(high) + bigEndianBytes(low) }

    /// Parses 16 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        guard let words = bytes.withContiguousStorageIfAvailable({ bigEndianWords($0) }) else {
            let array = Array(bytes)
            self.init(high: fromBigEndian(array[0..<8]), low: fromBigEndian(array[8..<16]))
            return
        }
        self.init(high: words.0, low: words.1)
    }

    /// Parses 32 lowercase or uppercase hex digits.
    public init?(hex: String) {
        guard let bytes = hexDecode(hex), bytes.count == 16 else { return nil }
        self.init(bytes: bytes)
    }

    /// 32 lowercase hex digits, as OTLP/JSON and `traceparent` write it.
    public var hex: String { hexEncode(bytes) }
    public var description: String { hex }
}

/// An 8-byte W3C span id.
public struct SpanID: Sendable, Hashable, CustomStringConvertible {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// A random, valid (non-zero) span id.
    public static func random() -> SpanID {
        var generator = SystemRandomNumberGenerator()
        let value: UInt64 = generator.next()
        return SpanID(value == 0 ? 1 : value)
    }

    public static let invalid = SpanID(0)
    public var isValid: Bool { value != 0 }

    /// The 8 bytes, big-endian.
    public var bytes: [UInt8] { bigEndianBytes(value) }

    /// Parses 8 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        self.init(bytes.withContiguousStorageIfAvailable({ bigEndianWords($0).0 }) ?? fromBigEndian(Array(bytes)[...]))
    }

    /// Parses 16 hex digits.
    public init?(hex: String) {
        guard let bytes = hexDecode(hex), bytes.count == 8 else { return nil }
        self.init(bytes: bytes)
    }

    public var hex: String { hexEncode(bytes) }
    public var description: String { hex }
}

func bigEndianBytes(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
}

/// The first one or two big-endian 8-byte words of `bytes` (8 or 16 bytes long), read in place.
@inline(__always)
func bigEndianWords(_ bytes: UnsafeBufferPointer<UInt8>) -> (UInt64, UInt64) {
    let raw = UnsafeRawBufferPointer(bytes)
    let first = UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self))
    let second = raw.count >= 16 ? UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) : 0
    return (first, second)
}

func fromBigEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    bytes.reduce(0) { $0 << 8 | UInt64($1) }
}

private let hexDigits = Array("0123456789abcdef".utf8)

/// Lowercase hex of `bytes`.
package func hexEncode(_ bytes: some Sequence<UInt8>) -> String {
    var out: [UInt8] = []
    for b in bytes {
        out.append(hexDigits[Int(b >> 4)])
        out.append(hexDigits[Int(b & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// Bytes of a hex string, or nil when it has an odd length or a non-hex character.
package func hexDecode(_ hex: String) -> [UInt8]? {
    let utf8 = Array(hex.utf8)
    guard utf8.count % 2 == 0 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
    var out: [UInt8] = []
    out.reserveCapacity(utf8.count / 2)
    var i = 0
    while i < utf8.count {
        guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}
