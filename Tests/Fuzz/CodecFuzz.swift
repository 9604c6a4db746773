import TelemetryFlowCore

/// libFuzzer target: the record codec and the protobuf reader on arbitrary bytes must never trap, hang or crash.
/// The first byte picks an event type; the rest is decoded as that type's payload, as a whole record, and as a
/// record re-sealed with a valid checksum (so that the payload decoders behind the checksum are reached too).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCodec(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let selector = bytes.first else { return 0 }
    let type = EventType.known[Int(selector) % EventType.known.count]
    let payload = bytes.dropFirst()
    _ = try? EventCodec.decodePayload(type: type, payload)
    _ = try? EventCodec.decode(bytes, sequence: 1)
    if bytes.count >= EventCodec.overhead {
        var sealed = bytes
        sealed.withUnsafeMutableBytes { EventCodec.sealChecksum($0, sequence: 1) }
        if let decoded = try? EventCodec.decode(sealed, sequence: 1) { _ = decoded.event.summary }
    }
    // Walk every field, descending into length-delimited ones, with a bounded depth.
    func walk(_ slice: ArraySlice<UInt8>, depth: Int) {
        guard depth < 8 else { return }
        var reader = ProtobufReader(slice)
        var fields = 0
        while fields < 10_000, let field = try? reader.next() {
            fields += 1
            if let nested = try? field.value.asBytes() { walk(nested, depth: depth + 1) }
            _ = try? field.value.asVarint()
            _ = try? field.value.asFixed64()
            _ = try? field.value.asString()
        }
    }
    walk(payload, depth: 0)
    return 0
}
