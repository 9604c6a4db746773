public import TelemetryFlowCore

/// Builds OTLP `Export{Trace,Logs,Metrics}ServiceRequest` protobuf bytes from stored events.
///
/// Span and log payloads already hold OTLP `Span` / `LogRecord` bytes behind their scope, so a request is built
/// by grouping them by scope and concatenating them as length-delimited repeated fields, with exact lengths
/// computed up front: nothing is decoded and nothing is moved twice. Metric collections hold ready
/// `ScopeMetrics` records and are concatenated the same way.
public struct OTLPProtobufEncoder: Sendable {
    public let resource: Resource
    private let resourceMessage: [UInt8]

    public init(resource: Resource) {
        self.resource = resource
        var w = ProtobufWriter()
        resource.attributes.encodeOTLP(field: 1, into: &w)
        resourceMessage = w.bytes
    }

    /// The event types that carry exportable data for `signal`.
    public static func exportedTypes(for signal: SignalType) -> Set<EventType> {
        switch signal {
        case .traces: return [.spanEnded]
        case .logs: return [.logRecord]
        case .metrics: return [.metricsCollected]
        default: return []
        }
    }

    /// The request for `signal` holding the exportable events of `batch`, and how many items (spans, log records,
    /// data points) it carries. Returns nil when the batch holds nothing to send.
    public func encode(_ signal: SignalType, _ batch: EventBatch) throws -> (bytes: [UInt8], items: Int)? {
        switch signal {
        case .traces: return try encodeScoped(batch, type: .spanEnded)
        case .logs: return try encodeScoped(batch, type: .logRecord)
        case .metrics: return try encodeMetrics(batch)
        default: throw TelemetryFlowError(.unsupported, "OTLP has no encoding for signal \"\(signal)\"")
        }
    }

    private struct ScopeGroup {
        /// The scope's name and version as stored (varint length + bytes): exactly the body of fields 1 and 2
        /// of `InstrumentationScope`; nil when empty (proto3 omits them).
        var name: ArraySlice<UInt8>?
        var version: ArraySlice<UInt8>?
        var items: [ArraySlice<UInt8>] = []  // the OTLP messages, sharing the batch's storage
        var itemsSize = 0

        var scopeMessageSize: Int { (name.map { 1 + $0.count } ?? 0) + (version.map { 1 + $0.count } ?? 0) }
    }

    private func encodeScoped(_ batch: EventBatch, type: EventType) throws -> (bytes: [UInt8], items: Int)? {
        var groups: [ScopeGroup] = []
        var index: [ArraySlice<UInt8>: Int] = [:]
        var count = 0
        for event in batch where event.type == type {
            guard let item = try event.otlpItem() else { continue }
            let slot: Int
            if let existing = index[item.scopeFields] {
                slot = existing
            } else {
                slot = groups.count
                index[item.scopeFields] = slot
                groups.append(ScopeGroup(name: item.nameField, version: item.versionField))
            }
            let size = item.message.count
            groups[slot].items.append(item.message)
            groups[slot].itemsSize += 1 + varintSize(UInt64(size)) + size
            count += 1
        }
        guard count > 0 else { return nil }

        // Exact sizes, innermost first.
        var scopeGroupSizes: [Int] = []
        var resourceBody = resourceMessage.isEmpty ? 0 : 1 + varintSize(UInt64(resourceMessage.count)) + resourceMessage.count
        for group in groups {
            let scopeMessage = group.scopeMessageSize
            let body = 1 + varintSize(UInt64(scopeMessage)) + scopeMessage + group.itemsSize
            scopeGroupSizes.append(body)
            resourceBody += 1 + varintSize(UInt64(body)) + body
        }
        let total = 1 + varintSize(UInt64(resourceBody)) + resourceBody
        var w = ProtobufWriter()
        w.reserve(total)
        w.writeTag(1, .lengthDelimited)  // resource_spans / resource_logs
        w.writeVarint(UInt64(resourceBody))
        if !resourceMessage.isEmpty {
            w.writeTag(1, .lengthDelimited)
            w.writeVarint(UInt64(resourceMessage.count))
            w.append(contentsOf: resourceMessage)
        }
        for (g, group) in groups.enumerated() {
            w.writeTag(2, .lengthDelimited)  // scope_spans / scope_logs
            w.writeVarint(UInt64(scopeGroupSizes[g]))
            w.writeTag(1, .lengthDelimited)  // scope
            w.writeVarint(UInt64(group.scopeMessageSize))
            if let name = group.name {
                w.writeTag(1, .lengthDelimited)
                w.append(contentsOf: name)
            }
            if let version = group.version {
                w.writeTag(2, .lengthDelimited)
                w.append(contentsOf: version)
            }
            for item in group.items {
                w.writeTag(2, .lengthDelimited)  // spans / log_records
                w.writeVarint(UInt64(item.count))
                w.append(contentsOf: item)
            }
        }
        return (w.bytes, count)
    }

    private func encodeMetrics(_ batch: EventBatch) throws -> (bytes: [UInt8], items: Int)? {
        var w = ProtobufWriter()
        var points = 0
        var any = false
        w.writeMessageField(1) { w in  // resource_metrics
            if !resourceMessage.isEmpty {
                w.writeTag(1, .lengthDelimited)
                w.writeVarint(UInt64(resourceMessage.count))
                w.append(contentsOf: resourceMessage)
            }
            for event in batch where event.type == .metricsCollected {
                guard let records = event.scopeMetricsRecords, !records.isEmpty else { continue }
                any = true
                w.append(contentsOf: records)
                points += Self.countPoints(records)
            }
        }
        return any ? (w.bytes, points) : nil
    }

    /// Data points in `ScopeMetrics` records (for partial-success accounting and statistics).
    static func countPoints(_ records: ArraySlice<UInt8>) -> Int {
        (try? CollectedMetrics.decodeOTLPScopeMetrics(records).reduce(0) { $0 + $1.points.count }) ?? 0
    }
}

private func varintSize(_ value: UInt64) -> Int { ProtobufWriter.varintSize(value) }
