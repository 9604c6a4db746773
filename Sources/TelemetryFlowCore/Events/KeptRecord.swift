/// A copy of one record kept by its producer: a span's started record, which its ended record begins with
/// (`EventCodec.withUnsealedSpanEnd`). Up to ``inlineCapacity`` bytes live in the value itself, so that keeping the
/// record of most spans allocates nothing (it lives in the span's own allocation); a longer one is kept in an array.
package struct KeptRecord: Sendable {
    package static let inlineCapacity = 320

    private var inline = InlineArray<320, UInt8>(repeating: 0)
    /// Bytes held inline, or -1 when the record is in `spilled`.
    private var inlineCount = 0
    private var spilled: [UInt8] = []

    package init() {}

    /// Whether no record is kept.
    package var isEmpty: Bool { inlineCount == 0 }

    /// Keeps a copy of `record` (replacing any kept before).
    package mutating func keep(_ record: UnsafeRawBufferPointer) {
        guard let source = record.baseAddress, !record.isEmpty else {
            inlineCount = 0
            spilled = []
            return
        }
        if record.count <= Self.inlineCapacity {
            withUnsafeMutableBytes(of: &inline) { $0.baseAddress!.copyMemory(from: source, byteCount: record.count) }
            inlineCount = record.count
            spilled = []
        } else {
            spilled = Array(record)
            inlineCount = -1
        }
    }

    /// Calls `body` with the kept record's bytes (empty when none is kept). Mutating (it changes nothing) so that the
    /// inline bytes are reached in place: through a borrowed value they were copied out first.
    package mutating func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if inlineCount < 0 { return try spilled.withUnsafeBytes(body) }
        let count = inlineCount
        return try Swift.withUnsafeBytes(of: &inline) { try body(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    }
}
