import Testing
import TelemetryFlowCore

@Suite struct ProtobufWriterTests {
    /// Nested messages reserve one length byte and widen it in place: bodies on both sides of each varint
    /// boundary read back intact, from a stack scratch writer that moves to the heap as it grows.
    @Test(arguments: [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_151, 2_097_152])
    func nestedLengthsWidenInPlace(bodySize: Int) throws {
        let body = (0..<bodySize).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let bytes = ProtobufWriter.withScratch { w in
            w.writeStringField(1, "before")
            w.writeMessageField(2) { inner in
                inner.writeBytesField(3, body, always: true)
            }
            w.writeFixed64Field(4, 0xDEAD_BEEF)
            return w.bytes
        }
        var reader = ProtobufReader(bytes[...])
        #expect(try reader.next()?.value.asString() == "before")
        let nested = try #require(try reader.next())
        #expect(nested.field == 2)
        var inner = ProtobufReader(try nested.value.asBytes())
        #expect(Array(try #require(try inner.next()).value.asBytes()) == body)
        #expect(inner.isAtEnd)
        #expect(try reader.next()?.value.asFixed64() == 0xDEAD_BEEF)
        #expect(reader.isAtEnd)
    }

    @Test func littleEndianStoresAndRawAppends() {
        var w = ProtobufWriter(capacity: 4)
        w.appendLittleEndian(UInt32(0))
        w.append(contentsOf: [1, 2, 3] as [UInt8])
        w.append(contentsOf: ([9, 8, 7] as [UInt8])[1...])
        w.storeLittleEndian(UInt32(0x0403_0201), at: 0)
        #expect(w.bytes == [1, 2, 3, 4, 1, 2, 3, 8, 7])
        #expect(w.count == 9)
    }
}

@Suite struct AttributeEncodingTests {
    /// The reference encoding: every `KeyValue` and `AnyValue` as a nested message whose length is patched.
    static func reference(_ attributes: Attributes, field: UInt32) -> [UInt8] {
        var w = ProtobufWriter()
        for attribute in attributes.elements {
            w.writeMessageField(field) { w in
                w.writeStringField(1, attribute.key)
                w.writeMessageField(2) { attribute.value.encodeOTLPAnyValue(into: &$0) }
            }
        }
        return w.bytes
    }

    /// Scalars are written with lengths computed up front; the bytes must equal the patched encoding at every
    /// varint boundary (empty keys, 127/128-byte strings, negative integers, NaN, non-ASCII).
    @Test func scalarAttributesMatchTheNestedEncoding() {
        let long = String(repeating: "é", count: 70)  // 140 bytes
        let attributes: Attributes = [
            "": "empty key", "s": "", "a": "x", "k127": .string(String(repeating: "a", count: 127)),
            "k128": .string(String(repeating: "b", count: 128)), "utf8": .string(long),
            String(repeating: "k", count: 130): .int(-1), "min": .int(.min), "max": .int(.max), "zero": .int(0),
            "t": true, "f": false, "d": .double(.nan), "inf": .double(-.infinity), "dz": .double(0),
            "bytes": .bytes([1, 2, 3]), "arr": .stringArray(["x", long]), "ints": .intArray([1, -1]),
        ]
        var w = ProtobufWriter(capacity: 16)
        attributes.encodeOTLP(field: 9, into: &w)
        #expect(w.bytes == Self.reference(attributes, field: 9))
        #expect(ProtobufWriter.varintSize(0) == 1 && ProtobufWriter.varintSize(127) == 1 && ProtobufWriter.varintSize(128) == 2)
        #expect(ProtobufWriter.varintSize(UInt64.max) == 10)
    }
}
