// MARK: OTLP protobuf

/// What a span's started record held: how many attributes and links, the dropped counts then, and whether the
/// span changed since in a way the ended record must encode whole (``SpanData/encodeOTLPChanges(since:into:)``).
package struct SpanStartMark: Sendable {
    package var attributes: Int
    package var droppedAttributes: UInt32
    package var links: Int
    package var droppedLinks: UInt32
    /// The span was renamed after it started.
    package var nameChanged = false
    /// An attribute the started record holds was given another value: the ended record is encoded whole.
    package var attributeReplaced = false

    /// A mark of nothing yet (a span whose started record is not encoded yet).
    package init() {
        attributes = 0
        droppedAttributes = 0
        links = 0
        droppedLinks = 0
    }

    /// The mark of `span` as it is now (when its started record is encoded).
    package init(_ span: borrowing SpanData) {
        attributes = span.attributes.count
        droppedAttributes = span.droppedAttributesCount
        links = span.links.count
        droppedLinks = span.droppedLinksCount
    }
}

extension SpanEvent {
    /// Writes this event as an OTLP `Span.Event` message body.
    package func encodeOTLP(into w: inout ProtobufWriter) {
        w.writeFixed64Field(1, timeUnixNano)
        w.writeStringField(2, name)
        attributes.encodeOTLP(field: 3, into: &w)
        w.writeVarintField(4, UInt64(droppedAttributesCount))
    }

    /// Decodes an OTLP `Span.Event` message body.
    package init(otlp bytes: ArraySlice<UInt8>) throws {
        self.init(name: "", timeUnixNano: 0)
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 1: timeUnixNano = try v.asFixed64()
            case 2: name = try v.asString()
            case 3: try attributes.appendOTLPKeyValue(try v.asBytes())
            case 4: droppedAttributesCount = UInt32(truncatingIfNeeded: try v.asVarint())
            default: continue
            }
        }
    }
}

// MARK: OTLP protobuf

extension SpanData {
    /// Writes this span as an OTLP `Span` message body.
    package func encodeOTLP(into w: inout ProtobufWriter) {
        w.writeTraceIDField(1, traceID)
        w.writeSpanIDField(2, spanID)
        w.writeStringField(3, traceState)
        if parentSpanID.isValid { w.writeSpanIDField(4, parentSpanID) }
        w.writeStringField(5, name)
        w.writeVarintField(6, UInt64(kind.rawValue))
        w.writeFixed64Field(7, startTimeUnixNano)
        w.writeFixed64Field(8, endTimeUnixNano)
        attributes.encodeOTLP(field: 9, into: &w)
        w.writeVarintField(10, UInt64(droppedAttributesCount))
        for event in events { w.writeMessageField(11) { event.encodeOTLP(into: &$0) } }
        w.writeVarintField(12, UInt64(droppedEventsCount))
        for link in links { Self.encodeLink(link, into: &w) }
        w.writeVarintField(14, UInt64(droppedLinksCount))
        encodeStatus(into: &w)
        w.writeFixed32Field(16, flags)
    }

    /// Writes the fields of this span that changed since its started record was encoded (`mark` says what that
    /// record held), for the ended record that is the started record's `Span` followed by these fields: a protobuf
    /// parser keeps the last value of a field that appears twice and appends the elements of a repeated field, so it
    /// reads the complete span. Only valid while no attribute the started record holds was replaced
    /// (``SpanStartMark/attributeReplaced``): its old value would stay beside the new one.
    package func encodeOTLPChanges(since mark: SpanStartMark, into w: inout ProtobufWriter) {
        if mark.nameChanged { w.writeStringField(5, name, always: true) }
        w.writeFixed64Field(8, endTimeUnixNano)
        attributes.encodeOTLP(field: 9, from: mark.attributes, into: &w)
        if droppedAttributesCount != mark.droppedAttributes { w.writeVarintField(10, UInt64(droppedAttributesCount)) }
        for event in events { w.writeMessageField(11) { event.encodeOTLP(into: &$0) } }
        w.writeVarintField(12, UInt64(droppedEventsCount))
        if links.count > mark.links { for link in links.dropFirst(mark.links) { Self.encodeLink(link, into: &w) } }
        if droppedLinksCount != mark.droppedLinks { w.writeVarintField(14, UInt64(droppedLinksCount)) }
        encodeStatus(into: &w)
    }

    private static func encodeLink(_ link: SpanLink, into w: inout ProtobufWriter) {
        w.writeMessageField(13) { w in
            w.writeTraceIDField(1, link.traceID)
            w.writeSpanIDField(2, link.spanID)
            w.writeStringField(3, link.traceState)
            link.attributes.encodeOTLP(field: 4, into: &w)
            w.writeVarintField(5, UInt64(link.droppedAttributesCount))
            w.writeFixed32Field(6, link.flags)
        }
    }

    private func encodeStatus(into w: inout ProtobufWriter) {
        if status.code != .unset || !status.message.isEmpty {
            w.writeMessageField(15) { w in
                w.writeStringField(2, status.message)
                w.writeVarintField(3, UInt64(status.code.rawValue))
            }
        }
    }

    /// Decodes an OTLP `Span` message body.
    package init(otlp bytes: ArraySlice<UInt8>) throws {
        self.init(traceID: .invalid, spanID: .invalid, flags: 0, name: "", kind: .unspecified, startTimeUnixNano: 0)
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 1: traceID = try Self.id(TraceID(bytes: try v.asBytes()), "trace_id")
            case 2: spanID = try Self.id(SpanID(bytes: try v.asBytes()), "span_id")
            case 3: traceState = try v.asString()
            case 4: parentSpanID = try Self.id(SpanID(bytes: try v.asBytes()), "parent_span_id")
            case 5: name = try v.asString()
            case 6: kind = SpanKind(rawValue: UInt8(truncatingIfNeeded: try v.asVarint())) ?? .unspecified
            case 7: startTimeUnixNano = try v.asFixed64()
            case 8: endTimeUnixNano = try v.asFixed64()
            case 9: try attributes.appendOTLPKeyValue(try v.asBytes())
            case 10: droppedAttributesCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 11: events.append(try SpanEvent(otlp: try v.asBytes()))
            case 12: droppedEventsCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 13: links.append(try Self.decodeLink(try v.asBytes()))
            case 14: droppedLinksCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 15: status = try Self.decodeStatus(try v.asBytes())
            case 16: flags = try v.asFixed32()
            default: continue
            }
        }
    }

    private static func id<T>(_ value: T?, _ field: String) throws -> T {
        guard let value else { throw TelemetryFlowError(.decoding, "Span \(field) has the wrong length") }
        return value
    }

    private static func decodeLink(_ bytes: ArraySlice<UInt8>) throws -> SpanLink {
        var link = SpanLink(traceID: .invalid, spanID: .invalid)
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 1: link.traceID = try id(TraceID(bytes: try v.asBytes()), "link trace_id")
            case 2: link.spanID = try id(SpanID(bytes: try v.asBytes()), "link span_id")
            case 3: link.traceState = try v.asString()
            case 4: try link.attributes.appendOTLPKeyValue(try v.asBytes())
            case 5: link.droppedAttributesCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 6: link.flags = try v.asFixed32()
            default: continue
            }
        }
        return link
    }

    private static func decodeStatus(_ bytes: ArraySlice<UInt8>) throws -> SpanStatus {
        var status = SpanStatus.unset
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 2: status.message = try v.asString()
            case 3: status.code = SpanStatus.Code(rawValue: UInt8(truncatingIfNeeded: try v.asVarint())) ?? .unset
            default: continue
            }
        }
        return status
    }
}

// MARK: OTLP JSON

extension SpanData {
    /// Writes an OTLP `Span` object.
    package func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in
            j.field("traceId", traceID.hex)
            j.field("spanId", spanID.hex)
            if !traceState.isEmpty { j.field("traceState", traceState) }
            if parentSpanID.isValid { j.field("parentSpanId", parentSpanID.hex) }
            if flags != 0 { j.field("flags", Int64(flags)) }
            j.field("name", name)
            j.field("kind", Int64(kind.rawValue))
            j.field("startTimeUnixNano", String(startTimeUnixNano))
            j.field("endTimeUnixNano", String(endTimeUnixNano))
            attributes.writeOTLPJSON(into: &j)
            if droppedAttributesCount > 0 { j.field("droppedAttributesCount", Int64(droppedAttributesCount)) }
            if !events.isEmpty {
                j.key("events")
                j.array { j in
                    for e in events {
                        j.object { j in
                            j.field("timeUnixNano", String(e.timeUnixNano))
                            j.field("name", e.name)
                            e.attributes.writeOTLPJSON(into: &j)
                            if e.droppedAttributesCount > 0 { j.field("droppedAttributesCount", Int64(e.droppedAttributesCount)) }
                        }
                    }
                }
            }
            if droppedEventsCount > 0 { j.field("droppedEventsCount", Int64(droppedEventsCount)) }
            if !links.isEmpty {
                j.key("links")
                j.array { j in
                    for l in links {
                        j.object { j in
                            j.field("traceId", l.traceID.hex)
                            j.field("spanId", l.spanID.hex)
                            if !l.traceState.isEmpty { j.field("traceState", l.traceState) }
                            l.attributes.writeOTLPJSON(into: &j)
                            if l.droppedAttributesCount > 0 { j.field("droppedAttributesCount", Int64(l.droppedAttributesCount)) }
                            if l.flags != 0 { j.field("flags", Int64(l.flags)) }
                        }
                    }
                }
            }
            if droppedLinksCount > 0 { j.field("droppedLinksCount", Int64(droppedLinksCount)) }
            if status.code != .unset || !status.message.isEmpty {
                j.key("status")
                j.object { j in
                    if !status.message.isEmpty { j.field("message", status.message) }
                    j.field("code", Int64(status.code.rawValue))
                }
            }
        }
    }
}
