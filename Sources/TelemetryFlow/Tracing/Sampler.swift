public import TelemetryFlowCore

/// Which traces are recorded: OpenTelemetry's built-in samplers (`OTEL_TRACES_SAMPLER`). A span that is sampled
/// out records nothing (no events are appended) and is counted under `sampled_out`; its context still
/// propagates, unsampled, so that downstream services agree.
public indirect enum Sampler: Sendable, Hashable, CustomStringConvertible {
    /// Every span is recorded.
    case alwaysOn
    /// No span is recorded.
    case alwaysOff
    /// A fraction (0…1) of traces, chosen by trace id so that every service picks the same traces.
    case traceIDRatio(Double)
    /// A child follows its parent's sampled flag (local or remote); a root span asks `root`.
    case parentBased(root: Sampler)

    /// Whether a span of `traceID` with `parent` (nil: a root span) is recorded.
    public func shouldSample(traceID: TraceID, parent: SpanContext?) -> Bool {
        switch self {
        case .alwaysOn: return true
        case .alwaysOff: return false
        case .traceIDRatio(let ratio):
            // As the OpenTelemetry specification's reference: the low 8 bytes of the id against the ratio.
            if ratio >= 1 { return true }
            if ratio <= 0 { return false }
            let bound = UInt64(ratio * 9_223_372_036_854_775_808.0)  // ratio × 2^63
            return traceID.low & 0x7FFF_FFFF_FFFF_FFFF < bound
        case .parentBased(let root):
            guard let parent, parent.isValid else { return root.shouldSample(traceID: traceID, parent: nil) }
            return parent.isSampled
        }
    }

    /// The `OTEL_TRACES_SAMPLER` name.
    public var description: String {
        switch self {
        case .alwaysOn: return "always_on"
        case .alwaysOff: return "always_off"
        case .traceIDRatio(let r): return "traceidratio(\(r))"
        case .parentBased(let root):
            switch root {
            case .alwaysOn: return "parentbased_always_on"
            case .alwaysOff: return "parentbased_always_off"
            case .traceIDRatio(let r): return "parentbased_traceidratio(\(r))"
            case .parentBased: return "parentbased(\(root))"
            }
        }
    }

    /// Parses `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`: `always_on`, `always_off`, `traceidratio`,
    /// `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` (the ratio from `argument`,
    /// default 1.0).
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` naming the value and what is accepted
    ///   (`jaeger_remote`, `xray` and other samplers this engine does not implement are refused).
    public init(name: String, argument: String?) throws {
        func ratio() throws -> Double {
            guard let argument else { return 1.0 }
            guard let value = Double(argument.trimmingWhitespace()), (0...1).contains(value) else {
                throw TelemetryFlowError(.invalidConfiguration, "OTEL_TRACES_SAMPLER_ARG=\(argument): use a ratio between 0 and 1")
            }
            return value
        }
        switch name.trimmingWhitespace().lowercased() {
        case "always_on": self = .alwaysOn
        case "always_off": self = .alwaysOff
        case "traceidratio": self = .traceIDRatio(try ratio())
        case "parentbased_always_on": self = .parentBased(root: .alwaysOn)
        case "parentbased_always_off": self = .parentBased(root: .alwaysOff)
        case "parentbased_traceidratio": self = .parentBased(root: .traceIDRatio(try ratio()))
        default:
            throw TelemetryFlowError(
                .invalidConfiguration,
                "OTEL_TRACES_SAMPLER=\(name) is not supported: use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio")
        }
    }

    func validate() throws {
        switch self {
        case .traceIDRatio(let r) where !(0...1).contains(r) || r.isNaN:
            throw TelemetryFlowError(.invalidConfiguration, "sampler ratio \(r) must be between 0 and 1")
        case .parentBased(let root): try root.validate()
        default: break
        }
    }
}
