// MARK: OTLP protobuf

extension LogRecordData {
    /// Writes this record as an OTLP `LogRecord` message body.
    package func encodeOTLP(into w: inout ProtobufWriter) {
        Self.encodeOTLP(
            timeUnixNano: timeUnixNano, severity: severity, severityText: severityText, body: body, attributes: attributes,
            droppedAttributesCount: droppedAttributesCount, flags: flags, traceID: traceID, spanID: spanID,
            observedTimeUnixNano: observedTimeUnixNano, eventName: eventName, into: &w)
    }

    /// The fields of an OTLP `LogRecord` body from their values: for ``encodeOTLP(into:)``, and for the client's log
    /// call, which encodes its arguments without building a record first.
    @inline(__always)
    package static func encodeOTLP(
        timeUnixNano: UInt64, severity: Severity, severityText: borrowing String, body: borrowing AttributeValue?,
        attributes: borrowing Attributes, droppedAttributesCount: UInt32, flags: UInt32, traceID: TraceID, spanID: SpanID,
        observedTimeUnixNano: UInt64, eventName: borrowing String, into w: inout ProtobufWriter
    ) {
        w.writeFixed64Field(1, timeUnixNano)
        w.writeVarintField(2, UInt64(severity.number))
        w.writeStringField(3, severityText)
        switch body {
        case .some(let value): w.writeMessageField(5) { value.encodeOTLPAnyValue(into: &$0) }
        case .none: break
        }
        attributes.encodeOTLP(field: 6, into: &w)
        w.writeVarintField(7, UInt64(droppedAttributesCount))
        w.writeFixed32Field(8, flags)
        if traceID.isValid { w.writeTraceIDField(9, traceID) }
        if spanID.isValid { w.writeSpanIDField(10, spanID) }
        w.writeFixed64Field(11, observedTimeUnixNano)
        w.writeStringField(12, eventName)
    }

    /// Decodes an OTLP `LogRecord` message body.
    package init(otlp bytes: ArraySlice<UInt8>) throws {
        self.init(timeUnixNano: 0, severity: .unspecified, severityText: "", body: nil)
        var r = ProtobufReader(bytes)
        while let (field, v) = try r.next() {
            switch field {
            case 1: timeUnixNano = try v.asFixed64()
            case 2: severity = Severity(unchecked: UInt8(min(24, try v.asVarint())))
            case 3: severityText = try v.asString()
            case 5: body = try AttributeValue(otlpAnyValue: try v.asBytes())
            case 6: try attributes.appendOTLPKeyValue(try v.asBytes())
            case 7: droppedAttributesCount = UInt32(truncatingIfNeeded: try v.asVarint())
            case 8: flags = try v.asFixed32()
            case 9:
                guard let id = TraceID(bytes: try v.asBytes()) else {
                    throw TelemetryFlowError(.decoding, "LogRecord trace_id has the wrong length")
                }
                traceID = id
            case 10:
                guard let id = SpanID(bytes: try v.asBytes()) else {
                    throw TelemetryFlowError(.decoding, "LogRecord span_id has the wrong length")
                }
                spanID = id
            case 11: observedTimeUnixNano = try v.asFixed64()
            case 12: eventName = try v.asString()
            default: continue
            }
        }
    }
}

// MARK: OTLP JSON

extension LogRecordData {
    /// Writes an OTLP `LogRecord` object.
    package func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in
            j.field("timeUnixNano", String(timeUnixNano))
            j.field("observedTimeUnixNano", String(observedTimeUnixNano))
            j.field("severityNumber", Int64(severity.number))
            if !severityText.isEmpty { j.field("severityText", severityText) }
            if let body {
                j.key("body")
                body.writeOTLPJSON(into: &j)
            }
            attributes.writeOTLPJSON(into: &j)
            if droppedAttributesCount > 0 { j.field("droppedAttributesCount", Int64(droppedAttributesCount)) }
            if flags != 0 { j.field("flags", Int64(flags)) }
            if traceID.isValid { j.field("traceId", traceID.hex) }
            if spanID.isValid { j.field("spanId", spanID.hex) }
            if !eventName.isEmpty { j.field("eventName", eventName) }
        }
    }
}
