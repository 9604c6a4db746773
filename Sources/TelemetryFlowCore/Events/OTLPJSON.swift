// OTLP/JSON renderings (the OTLP specification's JSON mapping of protobuf): lowerCamelCase field names, trace and
// span ids as hex, 64-bit integers as decimal strings, enums as numbers, bytes as base64.

extension AttributeValue {
    /// Writes an OTLP `AnyValue` object.
    public func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in
            switch self {
            case .string(let s): j.field("stringValue", s)
            case .bool(let b): j.field("boolValue", b)
            case .int(let i): j.field("intValue", String(i))
            case .double(let d): j.field("doubleValue", d)
            case .bytes(let b): j.field("bytesValue", Base64.encode(b))
            case .stringArray(let a): Self.array(&j, a.map { .string($0) })
            case .boolArray(let a): Self.array(&j, a.map { .bool($0) })
            case .intArray(let a): Self.array(&j, a.map { .int($0) })
            case .doubleArray(let a): Self.array(&j, a.map { .double($0) })
            }
        }
    }

    private static func array(_ j: inout JSONWriter, _ values: [AttributeValue]) {
        j.key("arrayValue")
        j.object { j in
            j.key("values")
            j.array { j in for v in values { v.writeOTLPJSON(into: &j) } }
        }
    }
}

extension Attributes {
    /// Writes `"key": [KeyValue…]`, or nothing when empty.
    public func writeOTLPJSON(_ key: String = "attributes", into j: inout JSONWriter) {
        guard !isEmpty else { return }
        j.key(key)
        j.array { j in
            for a in elements {
                j.object { j in
                    j.field("key", a.key)
                    j.key("value")
                    a.value.writeOTLPJSON(into: &j)
                }
            }
        }
    }
}

extension InstrumentationScope {
    public func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in
            j.field("name", name)
            if !version.isEmpty { j.field("version", version) }
        }
    }
}

extension Resource {
    public func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in attributes.writeOTLPJSON(into: &j) }
    }
}

extension SpanData {
    /// Writes an OTLP `Span` object.
    public func writeOTLPJSON(into j: inout JSONWriter) {
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

extension LogRecordData {
    /// Writes an OTLP `LogRecord` object.
    public func writeOTLPJSON(into j: inout JSONWriter) {
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

extension MetricData {
    /// Writes an OTLP `Metric` object.
    public func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in
            j.field("name", name)
            if !description.isEmpty { j.field("description", description) }
            if !unit.isEmpty { j.field("unit", unit) }
            switch kind {
            case .gauge:
                j.key("gauge")
                j.object { j in writePoints(&j) }
            case .sum(let monotonic, let temporality):
                j.key("sum")
                j.object { j in
                    writePoints(&j)
                    j.field("aggregationTemporality", Int64(temporality.rawValue))
                    j.field("isMonotonic", monotonic)
                }
            case .histogram(let temporality):
                j.key("histogram")
                j.object { j in
                    writePoints(&j)
                    j.field("aggregationTemporality", Int64(temporality.rawValue))
                }
            }
        }
    }

    private func writePoints(_ j: inout JSONWriter) {
        j.key("dataPoints")
        j.array { j in
            for p in points {
                j.object { j in
                    p.attributes.writeOTLPJSON(into: &j)
                    j.field("startTimeUnixNano", String(p.startTimeUnixNano))
                    j.field("timeUnixNano", String(p.timeUnixNano))
                    switch p.value {
                    case .number(.int(let i)): j.field("asInt", String(i))
                    case .number(.double(let d)): j.field("asDouble", d)
                    case .histogram(let h):
                        j.field("count", String(h.count))
                        j.field("sum", h.sum)
                        j.key("bucketCounts")
                        j.array { j in for c in h.bucketCounts { j.value(String(c)) } }
                        j.key("explicitBounds")
                        j.array { j in for b in h.bounds { j.value(b) } }
                        if h.count > 0 {
                            j.field("min", h.min)
                            j.field("max", h.max)
                        }
                    }
                }
            }
        }
    }
}
