import Testing
@testable import TelemetryFlowCore

@Suite struct EventCodecTests {
    static let scope = InstrumentationScope(name: "codec-tests", version: "1.2.3")
    static let hugeString = String(repeating: "x", count: 1 << 20)

    static var edgeAttributes: Attributes {
        [
            "empty": "", "unicode": "héllo wörld — 日本語 🚀", "nan": .double(.nan), "inf": .double(.infinity),
            "-inf": .double(-.infinity), "zero": .double(0), "negzero": .double(-0.0), "min": .int(.min),
            "max": .int(.max), "false": false, "true": true, "bytes": .bytes([0, 1, 255]), "nobytes": .bytes([]),
            "strings": .stringArray(["a", "", "ü"]), "bools": .boolArray([true, false]), "ints": .intArray([0, -1, .max]),
            "doubles": .doubleArray([.nan, 1.5, -.infinity]), "huge": .string(hugeString),
        ]
    }

    static var span: SpanData {
        SpanData(
            traceID: TraceID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10), spanID: SpanID(0x1112_1314_1516_1718),
            parentSpanID: SpanID(0x2122_2324_2526_2728), traceState: "vendor=1", flags: 1, name: "GET /ü",
            kind: .server, startTimeUnixNano: 1_700_000_000_000_000_000, endTimeUnixNano: 1_700_000_000_500_000_000,
            attributes: ["http.route": "/x", "retries": .int(3), "ratio": .double(0.25)], droppedAttributesCount: 2,
            events: [SpanEvent(name: "cache.miss", timeUnixNano: 1_700_000_000_100_000_000, attributes: ["key": "k"], droppedAttributesCount: 1)],
            droppedEventsCount: 4,
            links: [SpanLink(traceID: .random(), spanID: .random(), traceState: "a=b", attributes: ["kind": "follows"], flags: 1)],
            droppedLinksCount: 5, status: SpanStatus(.error, message: "boom"))
    }

    static var allEvents: [TelemetryEvent] {
        var events: [TelemetryEvent] = []
        for kind in InstrumentKind.allCases {
            for value in [MetricValue.int(0), .int(.min), .int(.max), .double(.nan), .double(.infinity), .double(-.infinity), .double(-0.0)] {
                events.append(.measurement(MetricMeasurement(kind: kind, name: "m.\(kind)", unit: "ms", scope: scope, attributes: edgeAttributes, value: value)))
            }
            events.append(.measurement(MetricMeasurement(kind: kind, name: "", unit: "", scope: InstrumentationScope(name: ""), value: .int(1))))
        }
        for severity in (0...24).map({ try! Severity(number: UInt8($0)) }) {
            events.append(.log(LogRecordData(
                timeUnixNano: 1, observedTimeUnixNano: 2, severity: severity, body: .string("log ✓ \(severity)"),
                attributes: edgeAttributes, droppedAttributesCount: 3, flags: 1, traceID: .random(), spanID: .random(),
                eventName: "evt"), scope: scope))
        }
        events.append(.log(LogRecordData(timeUnixNano: 0, severity: .unspecified, severityText: "", body: nil), scope: InstrumentationScope(name: "")))
        events.append(.log(LogRecordData(timeUnixNano: 5, severity: .info, body: .intArray([1, 2])), scope: scope))
        events.append(.spanStarted(span, scope: scope))
        var minimal = SpanData(traceID: .random(), spanID: .random(), name: "", kind: .unspecified, startTimeUnixNano: 0)
        minimal.flags = 0
        events.append(.spanStarted(minimal, scope: scope))
        events.append(.spanEnded(span, scope: scope))
        var bigSpan = span
        bigSpan.attributes = edgeAttributes
        bigSpan.events = (0..<200).map { SpanEvent(name: "e\($0)", timeUnixNano: UInt64($0)) }
        events.append(.spanEnded(bigSpan, scope: scope))
        events.append(.spanEventAdded(traceID: .random(), spanID: .random(), event: SpanEvent(name: "ev", timeUnixNano: 9, attributes: edgeAttributes)))
        events.append(.custom(CustomSignalRecord(signal: try! SignalType("audit.trail"), name: "login", attributes: edgeAttributes, body: Array(0...255))))
        events.append(.custom(CustomSignalRecord(signal: .traces, name: "", body: [])))
        events.append(.lifecycle(LifecycleEvent(kind: .started, attributes: ["service.name": "svc", "nan": .double(.nan)])))
        events.append(.lifecycle(LifecycleEvent(kind: .shutdown)))
        var histogram = HistogramPoint(bounds: [1, 10])
        histogram.record(5)
        histogram.record(-0.0)
        events.append(.metricsCollected(CollectedMetrics(foldedThrough: 77, timeUnixNano: 99, metrics: [
            MetricData(name: "c", unit: "1", scope: scope, kind: .sum(monotonic: true, temporality: .delta), points: [
                MetricPoint(attributes: edgeAttributes, startTimeUnixNano: 1, timeUnixNano: 2, value: .number(.int(-3))),
                MetricPoint(attributes: [:], startTimeUnixNano: 1, timeUnixNano: 2, value: .number(.double(.infinity))),
            ]),
            MetricData(name: "h", description: "latency", unit: "ms", scope: scope, kind: .histogram(temporality: .cumulative), points: [
                MetricPoint(attributes: ["r": "/a"], startTimeUnixNano: 1, timeUnixNano: 2, value: .histogram(histogram)),
            ]),
            // Metrics are grouped by scope (first-seen order), so a metric of another scope comes last.
            MetricData(name: "g", scope: InstrumentationScope(name: "other"), kind: .gauge, points: [
                MetricPoint(attributes: [:], startTimeUnixNano: 0, timeUnixNano: 2, value: .number(.double(-0.0))),
            ]),
        ])))
        return events
    }

    @Test func everyEventTypeRoundTrips() throws {
        var seenTypes = Set<UInt8>()
        for (i, event) in Self.allEvents.enumerated() {
            let timestamp = UInt64(i) &* 0x9E37_79B9_7F4A_7C15
            let bytes = EventCodec.encode(event, timestampUnixNano: timestamp, sequence: UInt64(i + 1))
            let decoded = try EventCodec.decode(bytes, sequence: UInt64(i + 1))
            #expect(decoded.event == event, "event \(i) (\(event.type)) changed in a round trip")
            #expect(decoded.timestampUnixNano == timestamp)
            seenTypes.insert(event.type.rawValue)
        }
        #expect(seenTypes == Set(EventType.known.map(\.rawValue)), "every known event type is covered")
    }

    @Test func recordsAppendBackToBackIntoOneBuffer() throws {
        var buffer: [UInt8] = []
        var sizes: [Int] = []
        for event in Self.allEvents.prefix(10) { sizes.append(EventCodec.encode(event, timestampUnixNano: 7, sequence: 3, into: &buffer)) }
        var offset = 0
        for (i, size) in sizes.enumerated() {
            let decoded = try EventCodec.decode(Array(buffer[offset..<(offset + size)]), sequence: 3)
            #expect(decoded.event == Self.allEvents[i])
            offset += size
        }
        #expect(offset == buffer.count)
    }

    /// The log's append path leaves the checksum to its writer thread: sealing later gives the same record.
    @Test func checksumSealedLaterEqualsChecksumAtEncoding() throws {
        for event in Self.allEvents {
            let direct = EventCodec.encode(event, timestampUnixNano: 11, sequence: 77)
            var deferred = ProtobufWriter.withScratch { w in
                EventCodec.encode(event, timestampUnixNano: 11, into: &w, sequence: nil)
                return w.bytes
            }
            #expect(deferred != direct, "the checksum field is left empty")
            let unsealed = #expect(throws: TelemetryFlowError.self) { try deferred.withUnsafeBytes { try EventCodec.envelope(of: $0, sequence: 77) } }
            #expect(unsealed?.code == .corruptedRecord)
            deferred.withUnsafeMutableBytes { EventCodec.sealChecksum($0, sequence: 77) }
            #expect(deferred == direct)
        }
    }

    @Test func flippedBytesAreDetected() throws {
        let bytes = EventCodec.encode(.spanEnded(Self.span, scope: Self.scope), timestampUnixNano: 42, sequence: 5)
        for index in stride(from: 0, to: bytes.count, by: 7) {
            var damaged = bytes
            damaged[index] ^= 0x40
            let error = #expect(throws: TelemetryFlowError.self) { try EventCodec.decode(damaged, sequence: 5) }
            // The checksum catches almost every flip; a flipped version or type byte is named as such.
            #expect(error.map { [.corruptedRecord, .unsupportedFormatVersion, .unknownEventType].contains($0.code) } == true, "\(String(describing: error))")
        }
        let truncated = #expect(throws: TelemetryFlowError.self) { try EventCodec.decode(Array(bytes.dropLast(1)), sequence: 5) }
        #expect(truncated?.code == .corruptedRecord)
        let empty = #expect(throws: TelemetryFlowError.self) { try EventCodec.decode([], sequence: 5) }
        #expect(empty?.code == .corruptedRecord)
    }

    /// A valid record with one envelope byte changed and its checksum recomputed.
    static func lifecycleRecord(byte index: Int, setTo value: UInt8) -> [UInt8] {
        var bytes = EventCodec.encode(.lifecycle(LifecycleEvent(kind: .started)), timestampUnixNano: 1, sequence: 1)
        bytes[index] = value
        let crc = bytes.withUnsafeBytes { EventCodec.checksum(UnsafeRawBufferPointer(rebasing: $0.dropLast(4)), sequence: 1, version: 2) }
        bytes.replaceSubrange((bytes.count - 4)..., with: withUnsafeBytes(of: crc.littleEndian) { Array($0) })
        return bytes
    }

    /// The instruments' path (pre-encoded prefix, no event built) writes the very bytes of the general encoder,
    /// except that it asks for the commit's time; sealed as the log's writer seals it, it is the general encoder's
    /// record stamped with that time.
    @Test func measurementsFromAPrefixEncodeAsTheGeneralEncoderDoes() throws {
        let scope = InstrumentationScope(name: "lib", version: "2.1")
        for (kind, value) in [(InstrumentKind.counter, MetricValue.int(3)), (.upDownCounter, .int(-4)), (.gauge, .double(21.5)), (.histogram, .double(0.25))] {
            let attributes: Attributes = ["route": "/cart", "code": 200]
            let m = MetricMeasurement(kind: kind, name: "requests", unit: "{request}", scope: scope, attributes: attributes, value: value)
            let general = ProtobufWriter.withScratch { w in
                EventCodec.encode(.measurement(m), timestampUnixNano: 0x1234_5678_9ABC, into: &w, sequence: nil)
                return w.bytes
            }
            let prefix = EventCodec.measurementPrefix(name: "requests", unit: "{request}", scope: scope)
            var fast: [UInt8] = []
            _ = prefix.withUnsafeBytes { p in
                EventCodec.withUnsealedMeasurement(kind: kind, prefix: p, attributes: attributes, value: value) {
                    fast = Array($0)
                    return .appended(sequence: 1)
                }
            }
            #expect(fast.count == general.count)
            #expect(fast[2] == UInt8(EventCodec.stampOnCommitFlag) && fast[3] == 0 && fast[4..<12].allSatisfy { $0 == 0 }, "\(kind)")
            #expect(fast[12...] == general[12...], "\(kind)")
            // Sealed by the writer: the flag cleared, the commit's time set, the checksum over both.
            var sealedFast = fast
            var sealedGeneral = general
            sealedFast.withUnsafeMutableBytes { EventCodec.sealQueuedRecord($0, sequence: 9, commitTimeUnixNano: 0x1234_5678_9ABC) }
            sealedGeneral.withUnsafeMutableBytes { EventCodec.sealQueuedRecord($0, sequence: 9, commitTimeUnixNano: 1) }
            #expect(sealedFast == sealedGeneral, "\(kind)")
            let envelope = try sealedFast.withUnsafeBytes { bytes throws(TelemetryFlowError) in try EventCodec.envelope(of: bytes, sequence: 9) }
            #expect(envelope.flags == 0 && envelope.timestampUnixNano == 0x1234_5678_9ABC)
        }
    }

    /// The client's log and span paths (no event built) write the very bytes of the general encoder, stamped with
    /// the record's own time.
    @Test func logsAndSpansFromTheClientPathEncodeAsTheGeneralEncoderDoes() throws {
        func general(_ event: TelemetryEvent, _ time: UInt64) -> [UInt8] {
            ProtobufWriter.withScratch { w in
                EventCodec.encode(event, timestampUnixNano: time, into: &w, sequence: nil)
                return w.bytes
            }
        }
        func capture(_ append: ((UnsafeRawBufferPointer) -> AppendOutcome) -> AppendOutcome) -> [UInt8] {
            var bytes: [UInt8] = []
            _ = append { bytes = Array($0); return .appended(sequence: 1) }
            return bytes
        }
        for attributes: Attributes in [[:], ["a": 1], ["a": 1, "b": "two", "c": true], ["a": 1, "b": "two", "c": true, "d": .double(4)]] {
            let record = LogRecordData(
                timeUnixNano: 0xABCD_1234_5678, observedTimeUnixNano: 7, severity: .warn, body: "served", attributes: attributes,
                traceID: Self.span.traceID, spanID: Self.span.spanID)
            #expect(capture { EventCodec.withUnsealedLog(record, scope: Self.scope, $0) } == general(.log(record, scope: Self.scope), record.timeUnixNano))
            // The client's log call, from its values: the record it stands for, observed at its time.
            for (severity, ids) in [(Severity.warn, (Self.span.traceID, Self.span.spanID, flags: UInt32(1))), (try Severity(number: 24), (.invalid, .invalid, flags: 0))] {
                let parts = LogRecordData(
                    timeUnixNano: 0xABCD_1234_5678, observedTimeUnixNano: 0xABCD_1234_5678, severity: severity, body: "served",
                    attributes: attributes, flags: ids.flags, traceID: ids.0, spanID: ids.1)
                #expect(capture {
                    EventCodec.withUnsealedLog(
                        timeUnixNano: 0xABCD_1234_5678, severity: severity, message: "served", attributes: attributes, span: ids, scope: Self.scope, $0)
                } == general(.log(parts, scope: Self.scope), parts.timeUnixNano))
            }
            var span = Self.span
            span.attributes = attributes
            #expect(capture { EventCodec.withUnsealedSpan(span, ended: false, scope: Self.scope, $0) }
                == general(.spanStarted(span, scope: Self.scope), span.startTimeUnixNano))
            #expect(capture { EventCodec.withUnsealedSpan(span, ended: true, scope: Self.scope, $0) }
                == general(.spanEnded(span, scope: Self.scope), span.endTimeUnixNano))
        }
    }

    /// A span's ended record built from its started record (the started record's span followed by the fields that
    /// changed since) reads back as the same span as the whole span encoded at its end, whatever changed in between.
    @Test func anEndedSpanFromItsStartedRecordReadsAsTheWholeSpan() throws {
        func capture(_ append: ((UnsafeRawBufferPointer) -> AppendOutcome) -> AppendOutcome) -> [UInt8] {
            var bytes: [UInt8] = []
            _ = append { bytes = Array($0); return .appended(sequence: 1) }
            return bytes
        }
        func read(_ record: [UInt8]) throws -> (event: TelemetryEvent, timestampUnixNano: UInt64) {
            var sealed = record
            sealed.withUnsafeMutableBytes { EventCodec.sealChecksum($0, sequence: 7) }
            return try EventCodec.decode(sealed, sequence: 7)
        }
        let changes: [(String, (inout SpanData, inout SpanStartMark) -> Void)] = [
            ("nothing but the end", { _, _ in }),
            ("attributes added", { span, _ in span.attributes.append(Attribute("http.response.status_code", 200)); span.attributes.append(Attribute("late", "ü")) }),
            ("renamed", { span, mark in span.name = "GET /renamed"; mark.nameChanged = true }),
            ("events, dropped counts, status", { span, _ in
                span.events = [SpanEvent(name: "exception", timeUnixNano: 5, attributes: ["exception.type": "E"])]
                span.droppedEventsCount = 2
                span.droppedAttributesCount += 3
                span.droppedLinksCount += 1
                span.status = SpanStatus(.error, message: "boom")
            }),
            ("a link added", { span, _ in span.links.append(SpanLink(traceID: .random(), spanID: .random(), attributes: ["k": "v"])) }),
        ]
        for (what, change) in changes {
            var started = Self.span
            started.endTimeUnixNano = 0
            started.events = []
            started.droppedEventsCount = 0
            started.status = .unset
            let startRecord = capture { EventCodec.withUnsealedSpan(started, ended: false, scope: Self.scope, $0) }
            var mark = SpanStartMark(started)
            var ended = started
            ended.endTimeUnixNano = started.startTimeUnixNano + 1_000
            change(&ended, &mark)
            let endRecord = capture { append in
                startRecord.withUnsafeBytes { EventCodec.withUnsealedSpanEnd(startRecord: $0, span: ended, since: mark, append) }
            }
            let whole = capture { EventCodec.withUnsealedSpan(ended, ended: true, scope: Self.scope, $0) }
            let fromStart = try read(endRecord)
            #expect(fromStart.event == .spanEnded(ended, scope: Self.scope), "\(what)")
            #expect(fromStart.event == (try read(whole)).event, "\(what)")
            #expect(fromStart.timestampUnixNano == ended.endTimeUnixNano, "\(what)")
            // The started record still reads as the span it was.
            #expect((try read(startRecord)).event == .spanStarted(started, scope: Self.scope), "\(what)")
        }
    }

    /// The checksum covers the sequence the record is stored under: a damaged key is caught, not believed.
    @Test func aRecordUnderAnotherSequenceFailsItsChecksum() throws {
        let bytes = EventCodec.encode(.spanEnded(Self.span, scope: Self.scope), timestampUnixNano: 42, sequence: 1000)
        #expect(try EventCodec.decode(bytes, sequence: 1000).timestampUnixNano == 42)
        for other: UInt64 in [999, 1001, 1000 ^ (1 << 40), 0] {
            let error = #expect(throws: TelemetryFlowError.self) { try EventCodec.decode(bytes, sequence: other) }
            #expect(error?.code == .corruptedRecord, "sequence \(other)")
        }
    }

    /// Version 1 records (written before the checksum covered the key) still read, under any sequence.
    @Test func versionOneRecordsStillRead() throws {
        let event = TelemetryEvent.spanEnded(Self.span, scope: Self.scope)
        var bytes = EventCodec.encode(event, timestampUnixNano: 42, sequence: 1)
        bytes[0] = 1
        let crc = CRC32C.checksum(Array(bytes.dropLast(4)))
        bytes.replaceSubrange((bytes.count - 4)..., with: withUnsafeBytes(of: crc.littleEndian) { Array($0) })
        #expect(try EventCodec.decode(bytes, sequence: 1).event.summary == event.summary)
        #expect(try EventCodec.decode(bytes, sequence: 12345).timestampUnixNano == 42)
    }

    @Test func newerFormatVersionIsAClearError() throws {
        let bytes = Self.lifecycleRecord(byte: 0, setTo: 9)
        let error = try #require(throws: TelemetryFlowError.self) { try EventCodec.decode(bytes, sequence: 1) }
        #expect(error.code == .unsupportedFormatVersion)
        #expect(error.message.contains("version 9"))
    }

    @Test func unknownEventTypeIsAClearError() throws {
        let bytes = Self.lifecycleRecord(byte: 1, setTo: 200)
        let error = try #require(throws: TelemetryFlowError.self) { try EventCodec.decode(bytes, sequence: 1) }
        #expect(error.code == .unknownEventType)
    }

    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        // Chaining equals one pass.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let first = data.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[..<333])) }
        let chained = data.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[333...]), continuing: first) }
        #expect(chained == CRC32C.checksum(data))
    }

    @Test func crc32cHardwareAndSoftwareAgree() {
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32C.software($0) } == 0xE306_9283)
        var generator = SystemRandomNumberGenerator()
        // Every length up to 400 bytes (the three-way split starts at 24 and changes block size every 24),
        // both sides of the 1,536-byte round, and large buffers.
        for length in Array(0...400) + [1_535, 1_536, 1_537, 3_095, 4096, 100_003] {
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let seed = UInt32.random(in: 0...UInt32.max, using: &generator)
            data.withUnsafeBytes { bytes in
                #expect(CRC32C.checksum(bytes, continuing: seed) == CRC32C.software(bytes, continuing: seed), "length \(length)")
                // Unaligned starts.
                if length > 3 {
                    let tail = UnsafeRawBufferPointer(rebasing: bytes[3...])
                    #expect(CRC32C.checksum(tail) == CRC32C.software(tail), "length \(length) from byte 3")
                }
            }
        }
    }
}

@Suite struct ValueTests {
    @Test func credentialsAreValidated() throws {
        let ok = try Credentials(keyID: "tfk_abcdefgh12", keySecret: "tfs_SECRET-value_1")
        #expect(ok.description.contains("tfk_abcdefgh12"))
        #expect(!ok.description.contains("SECRET"))
        let cases: [(String, String, String)] = [
            ("abc_12345678", "tfs_12345678", "must start with \"tfk_\""),
            ("tfk_12345678", "tfk_12345678", "must start with \"tfs_\""),
            ("tfk_123", "tfs_12345678", "too short"),
            ("tfk_1234 5678", "tfs_12345678", "characters other than"),
            ("", "tfs_12345678", "empty string"),
        ]
        for (id, secret, expected) in cases {
            let error = try #require(throws: TelemetryFlowError.self) { try Credentials(keyID: id, keySecret: secret) }
            #expect(error.code == .invalidCredentials)
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func attributeLimitsTruncateDropAndDeduplicate() throws {
        let limits = try AttributeLimits(maxCount: 3, maxValueLength: 5)
        let input: Attributes = ["a": "héllo world", "b": .bytes(Array(0..<10)), "a": "second", "": "no key", "c": 1, "d": 2]
        let (kept, dropped) = limits.apply(to: input)
        #expect(kept["a"] == .string("secon"))
        #expect(kept["b"] == .bytes([0, 1, 2, 3, 4]))
        #expect(kept["c"] == .int(1))
        #expect(kept.count == 3)
        #expect(dropped == 2)
        // Truncation never splits a character: "hé" is 3 bytes, so 2 bytes keep only "h".
        #expect(AttributeLimits.truncate("héllo", to: 2) == "h")
        let negative = #expect(throws: TelemetryFlowError.self) { try AttributeLimits(maxCount: -1) }
        #expect(negative?.code == .invalidConfiguration)
    }

    @Test func idsAndSignalTypes() throws {
        let trace = TraceID.random()
        #expect(TraceID(hex: trace.hex) == trace)
        #expect(trace.hex.count == 32)
        #expect(TraceID(hex: "zz") == nil)
        let span = SpanID.random()
        #expect(SpanID(hex: span.hex) == span)
        #expect(try SignalType("profiles").name == "profiles")
        for bad in ["", "Upper", "1abc", "with space", String(repeating: "a", count: 65)] {
            let error = #expect(throws: TelemetryFlowError.self) { try SignalType(bad) }
            #expect(error?.code == .invalidArgument)
        }
        #expect(Severity.warn.text == "WARN")
        #expect(try Severity(number: 14).text == "WARN2")
        let severity = #expect(throws: TelemetryFlowError.self) { try Severity(number: 25) }
        #expect(severity?.code == .invalidArgument)
    }
}

/// The copy of a started record a span keeps for its ended record.
@Suite struct KeptRecordTests {
    @Test func keepsRecordsInlineAndBeyondAndReplacesThem() {
        var kept = KeptRecord()
        #expect(kept.isEmpty)
        #expect(kept.withUnsafeBytes { $0.count } == 0)
        for size in [1, 17, KeptRecord.inlineCapacity - 1, KeptRecord.inlineCapacity, KeptRecord.inlineCapacity + 1, 5000, 40, 0] {
            let record = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ size) }
            record.withUnsafeBytes { kept.keep($0) }
            #expect(kept.isEmpty == (size == 0))
            #expect(kept.withUnsafeBytes { Array($0) } == record, "\(size) bytes")
        }
    }
}
