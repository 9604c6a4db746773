import Testing
@testable import TelemetryFlowCore

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

    /// Strings are copied with overlapping word moves when short: every length from 0 to 80 bytes, small
    /// (inline), heap and literal strings, ASCII and multi-byte, lands byte for byte after its length.
    /// Strings of up to 15 bytes are read from the `String` value's own words (the layout Swift keeps them in);
    /// longer ones, and a writer that must grow on the way, take the general path.
    @Test func smallStringsAreReadFromTheValueItself() {
        for length in 0...15 {
            let ascii = String(decoding: (0..<length).map { UInt8(97 + $0) }, as: UTF8.self)
            #expect(SmallStringBits(ascii)?.count == length, "\(length) ASCII bytes are held in the value")
        }
        #expect(SmallStringBits("héllo wörld")?.count == 13, "non-ASCII small strings too")
        #expect(SmallStringBits(String(repeating: "a", count: 16)) == nil)
        #expect(SmallStringBits("a string far too long to be held inline") == nil)
        var w = ProtobufWriter(capacity: 16)
        var expected: [UInt8] = []
        for i in 0..<64 {
            let value = String(repeating: i % 3 == 0 ? "é" : "z", count: i % 8)
            w.writeString(value)
            expected += [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        #expect(w.bytes == expected)
    }

    @Test func stringsOfEveryLengthAreCopiedExactly() {
        let literal = "The quick brown fox jumps over the lazy dog, then naps in the sun near the old mill."
        for length in 0...80 {
            var candidates = [
                String(literal.utf8.prefix(length))!,
                String(decoding: (0..<length).map { UInt8(65 + $0 % 26) }, as: UTF8.self),
            ]
            if length % 2 == 0 { candidates.append(String(repeating: "é", count: length / 2)) }
            for value in candidates {
                let written = ProtobufWriter.withScratch { w in
                    w.append(0xFF)
                    w.writeString(value)
                    w.append(0xEE)
                    return w.bytes
                }
                var expected: [UInt8] = [0xFF]
                var n = value.utf8.count
                repeat {
                    expected.append(UInt8(n & 0x7F) | (n >= 0x80 ? 0x80 : 0))
                    n >>= 7
                } while n > 0
                expected += Array(value.utf8) + [0xEE]
                #expect(written == expected, "length \(length): \(value)")
            }
        }
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
        for field: UInt32 in [1, 9, 15, 16, 300] {
            var w = ProtobufWriter(capacity: 16)
            attributes.encodeOTLP(field: field, into: &w)
            #expect(w.bytes == Self.reference(attributes, field: field), "field \(field)")
        }
        #expect(ProtobufWriter.varintSize(0) == 1 && ProtobufWriter.varintSize(127) == 1 && ProtobufWriter.varintSize(128) == 2)
        #expect(ProtobufWriter.varintSize(UInt64.max) == 10)
    }
}

/// The inline storage of small attribute sets: every way of building a set gives the same value, hash and encoding.
@Suite struct AttributeStorageTests {
    static func sample(_ n: Int) -> [Attribute] {
        (0..<n).map { Attribute("key.\($0)-\(String(repeating: "x", count: $0 * 7))", $0 % 2 == 0 ? .int(Int64($0)) : .string("value \($0)")) }
    }

    @Test(arguments: 0...6)
    func everyConstructionIsTheSameSet(count: Int) {
        let elements = Self.sample(count)
        let fromArray = Attributes(elements)
        var appended = Attributes()
        for a in elements { appended.append(a) }
        var viaSet = Attributes()
        for a in elements { viaSet.set(a.key, a.value) }
        var viaElements = Attributes()
        viaElements.elements = elements
        for other in [appended, viaSet, viaElements] {
            #expect(other == fromArray)
            #expect(other.hashValue == fromArray.hashValue)
        }
        #expect(fromArray.count == count && fromArray.isEmpty == (count == 0))
        #expect(Array(fromArray) == elements && fromArray.elements == elements)
        for (i, a) in elements.enumerated() {
            #expect(fromArray[i] == a)
            #expect(fromArray[a.key] == a.value)
        }
        var w1 = ProtobufWriter()
        fromArray.encodeOTLP(field: 9, into: &w1)
        #expect(w1.bytes == AttributeEncodingTests.reference(fromArray, field: 9))
        // Growing past the inline three and shrinking back gives equal values again.
        if count > 0 {
            var shrunk = Attributes(elements + Self.sample(5).map { Attribute("extra." + $0.key, $0.value) })
            shrunk.elements = elements
            #expect(shrunk == fromArray && shrunk.hashValue == fromArray.hashValue)
        }
    }

    @Test func literalsOfEverySizeKeepTheirOrder() {
        let one: Attributes = ["a": 1]
        let three: Attributes = ["a": 1, "b": "two", "c": true]
        let four: Attributes = ["a": 1, "b": "two", "c": true, "d": .double(4)]
        #expect(one.map(\.key) == ["a"])
        #expect(three.map(\.key) == ["a", "b", "c"] && three["b"] == .string("two"))
        #expect(four.map(\.key) == ["a", "b", "c", "d"] && four["d"] == .double(4))
        #expect(Attributes(four.elements) == four)
    }

    @Test func replacingAValueInPlaceKeepsThePosition() {
        var attributes: Attributes = ["a": 1, "b": 2]
        attributes.set("a", 10)
        attributes[1] = Attribute("b", 20)
        #expect(attributes == ["a": 10, "b": 20])
        var many = Attributes(Self.sample(5))
        many.set("key.0-", .string("changed"))
        #expect(many[0].value == .string("changed") && many.count == 5)
    }

    @Test func redactionReplacesOnlyTheNamedKeysAtEverySize() {
        let processor = RedactionProcessor(keys: ["secret"])
        for count in 0...5 {
            var elements = Self.sample(count)
            elements.insert(Attribute("secret", "hunter2"), at: count / 2)
            var event = TelemetryEvent.log(LogRecordData(timeUnixNano: 1, severity: .info, body: "b", attributes: Attributes(elements)), scope: InstrumentationScope(name: "s"))
            _ = processor.process(&event)
            guard case .log(let record, _) = event else { Issue.record("not a log"); return }
            #expect(record.attributes["secret"] == .string("[REDACTED]"))
            #expect(record.attributes.count == count + 1)
            #expect(record.attributes.filter { $0.key != "secret" } == Self.sample(count))
        }
    }
}
