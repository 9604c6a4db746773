/// A small streaming JSON writer: objects, arrays, escaped strings, numbers. Commas are placed automatically.
package struct JSONWriter: Sendable {
    package var bytes: [UInt8] = []
    private var needsComma = false

    package init() {}

    package var string: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separator() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    package mutating func object(_ body: (inout JSONWriter) -> Void) { container("{", "}", body) }

    package mutating func array(_ body: (inout JSONWriter) -> Void) { container("[", "]", body) }

    private mutating func container(_ open: Unicode.Scalar, _ close: Unicode.Scalar, _ body: (inout JSONWriter) -> Void) {
        separator()
        bytes.append(UInt8(ascii: open))
        needsComma = false
        body(&self)
        bytes.append(UInt8(ascii: close))
        needsComma = true
    }

    /// Writes `"key":` inside an object; the next value call writes the value.
    package mutating func key(_ key: String) {
        separator()
        appendQuoted(key)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    package mutating func value(_ s: String) {
        separator()
        appendQuoted(s)
    }

    package mutating func value(_ b: Bool) {
        separator()
        bytes.append(contentsOf: (b ? "true" : "false").utf8)
    }

    package mutating func value(_ i: Int64) {
        separator()
        bytes.append(contentsOf: String(i).utf8)
    }

    package mutating func value(_ u: UInt64) {
        separator()
        bytes.append(contentsOf: String(u).utf8)
    }

    /// Finite doubles as numbers; NaN and infinities as the strings protobuf's JSON mapping uses.
    package mutating func value(_ d: Double) {
        separator()
        if d.isNaN {
            bytes.append(contentsOf: "\"NaN\"".utf8)
        } else if d.isInfinite {
            bytes.append(contentsOf: (d > 0 ? "\"Infinity\"" : "\"-Infinity\"").utf8)
        } else if d == d.rounded(), abs(d) < 1e15 {
            bytes.append(contentsOf: String(Int64(d)).utf8)
            if d == 0 && d.sign == .minus { bytes.insert(UInt8(ascii: "-"), at: bytes.count - 1) }
        } else {
            bytes.append(contentsOf: "\(d)".utf8)
        }
    }

    package mutating func null() {
        separator()
        bytes.append(contentsOf: "null".utf8)
    }

    package mutating func field(_ key: String, _ s: String) { self.key(key); value(s) }
    package mutating func field(_ key: String, _ b: Bool) { self.key(key); value(b) }
    package mutating func field(_ key: String, _ i: Int64) { self.key(key); value(i) }
    package mutating func field(_ key: String, _ u: UInt64) { self.key(key); value(u) }
    package mutating func field(_ key: String, _ d: Double) { self.key(key); value(d) }

    private mutating func appendQuoted(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(c >> 4)], hex[Int(c & 15)]])
            default: bytes.append(c)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
