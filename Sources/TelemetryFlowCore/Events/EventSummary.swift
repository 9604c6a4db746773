extension TelemetryEvent {
    /// A one-line, human-readable rendering (the console exporter and `tflow inspect` print it).
    package var summary: String {
        func attrs(_ a: Attributes) -> String {
            a.isEmpty ? "" : " {" + a.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + "}"
        }
        switch self {
        case .measurement(let m):
            return "\(m.kind) \(m.name)=\(m.value)\(m.unit.isEmpty ? "" : " \(m.unit)")\(attrs(m.attributes))"
        case .metricsCollected(let c):
            let names = c.metrics.map { "\($0.name)[\($0.points.count)]" }.joined(separator: " ")
            return "metrics collected through #\(c.foldedThrough): \(c.pointCount) points \(names)"
        case .log(let record, _):
            return "log \(record.severity) \"\(record.body?.description ?? "")\"" + (record.traceID.isValid ? " trace=\(record.traceID)" : "")
                + attrs(record.attributes)
        case .spanStarted(let span, _):
            return "span started \(span.name) trace=\(span.traceID) span=\(span.spanID)"
        case .spanEventAdded(_, let spanID, let event):
            return "span event \(event.name) on \(spanID)"
        case .spanEnded(let span, _):
            let micros = (span.endTimeUnixNano &- span.startTimeUnixNano) / 1000
            let ms = "\(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())"
            return "span ended \(span.name) trace=\(span.traceID) span=\(span.spanID) status=\(span.status.code) events=\(span.events.count) links=\(span.links.count) \(ms) ms"
                + attrs(span.attributes)
        case .custom(let record):
            return "custom \(record.signal).\(record.name) \(record.body.count) bytes" + attrs(record.attributes)
        case .lifecycle(let event):
            return "lifecycle \(event.kind)" + attrs(event.attributes)
        }
    }
}
