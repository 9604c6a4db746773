/// The parts every registry starts with: the built-in signal types and the `attribute_limits` and `redaction`
/// processors. Registered through the same public API third-party plugins use.
public struct CorePlugin: TelemetryFlowPlugin {
    public init() {}

    public func register(into registry: PluginRegistry) throws {
        for signal in SignalType.builtIn { try registry.register(signalType: BuiltInSignal(signal: signal)) }
        try registry.register(processor: AttributeLimitsProcessorPlugin())
        try registry.register(processor: RedactionProcessorPlugin())
    }
}

struct BuiltInSignal: SignalTypePlugin {
    let signal: SignalType
}

extension TelemetryEvent {
    /// Applies `transform` to every attribute set the event carries (record, span events, links); `transform`
    /// returns how many attributes it dropped, which is added to the matching dropped count.
    public mutating func transformAttributes(_ transform: (inout Attributes) -> Int) {
        func clamp(_ n: Int) -> UInt32 { UInt32(clamping: n) }
        switch self {
        case .measurement(var m):
            _ = transform(&m.attributes)
            self = .measurement(m)
        case .log(var record, let scope):
            record.droppedAttributesCount &+= clamp(transform(&record.attributes))
            self = .log(record, scope: scope)
        case .spanStarted(var span, let scope), .spanEnded(var span, let scope):
            span.droppedAttributesCount &+= clamp(transform(&span.attributes))
            for i in span.events.indices { span.events[i].droppedAttributesCount &+= clamp(transform(&span.events[i].attributes)) }
            for i in span.links.indices { span.links[i].droppedAttributesCount &+= clamp(transform(&span.links[i].attributes)) }
            self = type == .spanStarted ? .spanStarted(span, scope: scope) : .spanEnded(span, scope: scope)
        case .spanEventAdded(let traceID, let spanID, var event):
            event.droppedAttributesCount &+= clamp(transform(&event.attributes))
            self = .spanEventAdded(traceID: traceID, spanID: spanID, event: event)
        case .custom(var record):
            _ = transform(&record.attributes)
            self = .custom(record)
        case .lifecycle(var event):
            _ = transform(&event.attributes)
            self = .lifecycle(event)
        case .metricsCollected:
            break
        }
    }
}

func intOption(_ options: [String: String], _ key: String, processor: String) throws -> Int? {
    guard let text = options[key] else { return nil }
    guard let value = Int(text.trimmingWhitespace()), value >= 0 else {
        throw TelemetryFlowError(.invalidConfiguration, "processor \"\(processor)\": \(key) must be a whole number ≥ 0, got \"\(text)\"")
    }
    return value
}

/// `attribute_limits`: options `max_count` (default 128) and `max_value_length` (default 4096; `none` for no limit).
struct AttributeLimitsProcessorPlugin: ProcessorPlugin {
    let name = "attribute_limits"

    func makeProcessor(options: [String: String]) throws -> any TelemetryProcessor {
        try rejectUnknownOptions(options, supported: ["max_count", "max_value_length"], owner: "processor \"\(name)\"")
        let maxCount = try intOption(options, "max_count", processor: name) ?? 128
        let maxLength: Int? = options["max_value_length"] == "none" ? nil
            : try intOption(options, "max_value_length", processor: name) ?? 4096
        return AttributeLimitsProcessor(limits: try AttributeLimits(maxCount: maxCount, maxValueLength: maxLength))
    }
}

/// Applies ``AttributeLimits`` to every attribute set of an event.
public struct AttributeLimitsProcessor: TelemetryProcessor {
    public let limits: AttributeLimits
    public init(limits: AttributeLimits) { self.limits = limits }

    public func process(_ event: inout TelemetryEvent) -> ProcessorDecision {
        event.transformAttributes { attributes in
            let (kept, dropped) = limits.apply(to: attributes)
            attributes = kept
            return dropped
        }
        return .keep
    }
}

/// `redaction`: option `keys` (comma-separated attribute keys, required) and `replacement` (default `[REDACTED]`).
struct RedactionProcessorPlugin: ProcessorPlugin {
    let name = "redaction"

    func makeProcessor(options: [String: String]) throws -> any TelemetryProcessor {
        try rejectUnknownOptions(options, supported: ["keys", "replacement"], owner: "processor \"\(name)\"")
        let keys = (options["keys"] ?? "").split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
        guard !keys.isEmpty else {
            throw TelemetryFlowError(.invalidConfiguration, "processor \"redaction\": option keys must name at least one attribute key")
        }
        return RedactionProcessor(keys: Set(keys), replacement: options["replacement"] ?? "[REDACTED]")
    }
}

/// Replaces the values of the named attribute keys everywhere in an event.
public struct RedactionProcessor: TelemetryProcessor {
    public let keys: Set<String>
    public let replacement: String
    public init(keys: Set<String>, replacement: String = "[REDACTED]") {
        self.keys = keys
        self.replacement = replacement
    }

    public func process(_ event: inout TelemetryEvent) -> ProcessorDecision {
        event.transformAttributes { attributes in
            guard attributes.contains(where: { keys.contains($0.key) }) else { return 0 }
            attributes = Attributes(attributes.map { keys.contains($0.key) ? Attribute($0.key, .string(replacement)) : $0 })
            return 0
        }
        return .keep
    }
}
