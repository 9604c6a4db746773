extension String {
    /// The string without leading and trailing spaces, tabs and line breaks.
    package func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c.isNewline { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c.isNewline { s = s.dropLast() }
        return String(s)
    }

    /// `%XX` escapes decoded (as in `grpc-message` and the `OTEL_*_HEADERS` variables); other bytes kept.
    package var percentDecoded: String {
        guard contains("%") else { return self }
        var out: [UInt8] = []
        var bytes = Array(utf8)[...]
        while let c = bytes.popFirst() {
            if c == UInt8(ascii: "%"), bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Collection<UInt8> {
    /// The little-endian `UInt64` in the 8 bytes starting `offset` bytes after `startIndex`.
    package func littleEndianUInt64(at offset: Int = 0) -> UInt64 {
        var value: UInt64 = 0
        var i = index(startIndex, offsetBy: offset)
        for shift in stride(from: UInt64(0), to: 64, by: 8) {
            value |= UInt64(self[i]) << shift
            formIndex(after: &i)
        }
        return value
    }
}
