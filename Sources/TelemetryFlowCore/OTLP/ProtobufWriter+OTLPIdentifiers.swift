// MARK: OTLP protobuf

extension ProtobufWriter {
    /// Writes a 16-byte trace id as a `bytes` field without building an intermediate array.
    @inlinable @inline(__always)
    package mutating func writeTraceIDField(_ field: UInt32, _ id: TraceID) {
        writeTag(field, .lengthDelimited)
        append(16)
        writeRawFixed64(id.high.bigEndian)
        writeRawFixed64(id.low.bigEndian)
    }

    /// Writes an 8-byte span id as a `bytes` field without building an intermediate array.
    @inlinable @inline(__always)
    package mutating func writeSpanIDField(_ field: UInt32, _ id: SpanID) {
        writeTag(field, .lengthDelimited)
        append(8)
        writeRawFixed64(id.value.bigEndian)
    }
}
