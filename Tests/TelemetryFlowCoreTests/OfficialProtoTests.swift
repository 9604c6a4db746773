import Foundation
import Testing
@testable import TelemetryFlowCore

/// Decodes the span and log payloads with the official opentelemetry-proto Python package.
@Suite struct OfficialProtoTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/otlp_decode.py").path

    func decode(_ kind: String, _ bytes: [UInt8]) throws -> [String: Any] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("otlp-\(UUID().uuidString).bin")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script, kind, file.path]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python decoder failed: \(errors)")
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The OTLP bytes inside a stored record (after the scope strings).
    func otlpBytes(of event: TelemetryEvent) throws -> [UInt8] {
        let record = EventCodec.encode(event, timestampUnixNano: 1, sequence: 1)
        let envelope = try record.withUnsafeBytes { try EventCodec.envelope(of: $0, sequence: 1) }
        var reader = PayloadReader(record[envelope.payload])
        if case .spanEventAdded = event { _ = try reader.bytes(24) } else { _ = try reader.string(); _ = try reader.string() }
        return Array(reader.rest())
    }

    @Test func spanPayloadDecodesWithOfficialDefinitions() throws {
        let span = EventCodecTests.span
        let json = try decode("span", try otlpBytes(of: .spanEnded(span, scope: EventCodecTests.scope)))
        #expect(json["trace_id"] as? String == span.traceID.hex)
        #expect(json["span_id"] as? String == span.spanID.hex)
        #expect(json["parent_span_id"] as? String == span.parentSpanID.hex)
        #expect(json["name"] as? String == "GET /ü")
        #expect(json["kind"] as? String == "SPAN_KIND_SERVER")
        #expect(json["trace_state"] as? String == "vendor=1")
        #expect(json["start_time_unix_nano"] as? String == "1700000000000000000")
        #expect(json["end_time_unix_nano"] as? String == "1700000000500000000")
        #expect(json["dropped_attributes_count"] as? Int == 2)
        #expect(json["dropped_events_count"] as? Int == 4)
        #expect(json["dropped_links_count"] as? Int == 5)
        #expect(json["flags"] as? Int == 1)
        let status = try #require(json["status"] as? [String: Any])
        #expect(status["code"] as? String == "STATUS_CODE_ERROR")
        #expect(status["message"] as? String == "boom")
        let attributes = try #require(json["attributes"] as? [[String: Any]])
        #expect(attributes.count == 3)
        #expect((attributes[1]["value"] as? [String: Any])?["int_value"] as? String == "3")
        #expect((attributes[2]["value"] as? [String: Any])?["double_value"] as? Double == 0.25)
        let events = try #require(json["events"] as? [[String: Any]])
        #expect(events.first?["name"] as? String == "cache.miss")
        #expect(events.first?["dropped_attributes_count"] as? Int == 1)
        let links = try #require(json["links"] as? [[String: Any]])
        #expect(links.first?["trace_id"] as? String == span.links[0].traceID.hex)
        #expect(links.first?["trace_state"] as? String == "a=b")
    }

    @Test func logPayloadDecodesWithOfficialDefinitions() throws {
        let record = LogRecordData(
            timeUnixNano: 11, observedTimeUnixNano: 12, severity: .warn, body: .string("disk 90% full — ü"),
            attributes: ["path": "/var", "nan": .double(.nan), "list": .intArray([1, 2]), "raw": .bytes([1, 2])],
            droppedAttributesCount: 1, flags: 1, traceID: .random(), spanID: .random(), eventName: "disk.full")
        let json = try decode("log", try otlpBytes(of: .log(record, scope: EventCodecTests.scope)))
        #expect(json["time_unix_nano"] as? String == "11")
        #expect(json["observed_time_unix_nano"] as? String == "12")
        #expect(json["severity_number"] as? String == "SEVERITY_NUMBER_WARN")
        #expect(json["severity_text"] as? String == "WARN")
        #expect((json["body"] as? [String: Any])?["string_value"] as? String == "disk 90% full — ü")
        #expect(json["trace_id"] as? String == record.traceID.hex)
        #expect(json["span_id"] as? String == record.spanID.hex)
        #expect(json["event_name"] as? String == "disk.full")
        #expect(json["dropped_attributes_count"] as? Int == 1)
        let attributes = try #require(json["attributes"] as? [[String: Any]])
        #expect(attributes.map { $0["key"] as? String } == ["path", "nan", "list", "raw"])
        #expect((attributes[1]["value"] as? [String: Any])?["double_value"] as? String == "NaN")
        let list = (attributes[2]["value"] as? [String: Any])?["array_value"] as? [String: Any]
        #expect((list?["values"] as? [[String: Any]])?.count == 2)
    }

    @Test func spanEventPayloadDecodesWithOfficialDefinitions() throws {
        let event = SpanEvent(name: "retry", timeUnixNano: 99, attributes: ["attempt": .int(2)])
        let json = try decode("event", try otlpBytes(of: .spanEventAdded(traceID: .random(), spanID: .random(), event: event)))
        #expect(json["name"] as? String == "retry")
        #expect(json["time_unix_nano"] as? String == "99")
    }
}
