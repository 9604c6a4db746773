public import TelemetryFlowCore

/// Builds OTLP/JSON `Export{Trace,Logs,Metrics}ServiceRequest` bodies, grouped by resource and scope.
public struct OTLPJSONEncoder: Sendable {
    public let resource: Resource

    public init(resource: Resource) { self.resource = resource }

    /// The request body for `signal` and how many items it carries; nil when the batch holds nothing to send.
    public func encode(_ signal: SignalType, _ batch: EventBatch) throws -> (bytes: [UInt8], items: Int)? {
        switch signal {
        case .traces:
            var groups: [(InstrumentationScope, [SpanData])] = []
            var index: [InstrumentationScope: Int] = [:]
            for event in batch where event.type == .spanEnded {
                guard case .spanEnded(let span, let scope) = try event.decode() else { continue }
                Self.add(span, scope, &groups, &index)
            }
            return render(groups, resourceKey: "resourceSpans", scopeKey: "scopeSpans", itemsKey: "spans") { $0.writeOTLPJSON(into: &$1) }
        case .logs:
            var groups: [(InstrumentationScope, [LogRecordData])] = []
            var index: [InstrumentationScope: Int] = [:]
            for event in batch where event.type == .logRecord {
                guard case .log(let record, let scope) = try event.decode() else { continue }
                Self.add(record, scope, &groups, &index)
            }
            return render(groups, resourceKey: "resourceLogs", scopeKey: "scopeLogs", itemsKey: "logRecords") { $0.writeOTLPJSON(into: &$1) }
        case .metrics:
            var groups: [(InstrumentationScope, [MetricData])] = []
            var index: [InstrumentationScope: Int] = [:]
            var points = 0
            for event in batch where event.type == .metricsCollected {
                guard case .metricsCollected(let collected) = try event.decode() else { continue }
                for metric in collected.metrics {
                    points += metric.points.count
                    Self.add(metric, metric.scope, &groups, &index)
                }
            }
            return render(groups, resourceKey: "resourceMetrics", scopeKey: "scopeMetrics", itemsKey: "metrics") { $0.writeOTLPJSON(into: &$1) }
                .map { ($0.bytes, points) }
        default:
            throw TelemetryFlowError(.unsupported, "OTLP has no encoding for signal \"\(signal)\"")
        }
    }

    private static func add<T>(_ item: T, _ scope: InstrumentationScope, _ groups: inout [(InstrumentationScope, [T])], _ index: inout [InstrumentationScope: Int]) {
        if let i = index[scope] {
            groups[i].1.append(item)
        } else {
            index[scope] = groups.count
            groups.append((scope, [item]))
        }
    }

    private func render<T>(
        _ groups: [(InstrumentationScope, [T])], resourceKey: String, scopeKey: String, itemsKey: String,
        _ write: (T, inout JSONWriter) -> Void
    ) -> (bytes: [UInt8], items: Int)? {
        guard !groups.isEmpty else { return nil }
        var count = 0
        var j = JSONWriter()
        j.object { j in
            j.key(resourceKey)
            j.array { j in
                j.object { j in
                    j.key("resource")
                    resource.writeOTLPJSON(into: &j)
                    j.key(scopeKey)
                    j.array { j in
                        for (scope, items) in groups {
                            j.object { j in
                                j.key("scope")
                                scope.writeOTLPJSON(into: &j)
                                j.key(itemsKey)
                                j.array { j in
                                    for item in items {
                                        write(item, &j)
                                        count += 1
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (j.bytes, count)
    }
}
