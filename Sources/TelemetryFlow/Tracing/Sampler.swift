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
        CompiledSampler(self).shouldSample(traceID: traceID, parent: parent)
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

/// A ``Sampler`` reduced to plain values for the recording path: deciding copies and releases nothing (the indirect
/// enum is a reference-counted box), one comparison for a root span.
struct CompiledSampler: Sendable {
    /// A child follows its parent's sampled flag (`parentBased`; nested ones act as one).
    private let followsParent: Bool
    /// A span that does not follow a parent is recorded when the low 63 bits of its trace id's low 8 bytes are below
    /// this: `ratio × 2^63`, as the OpenTelemetry specification's reference compares them; `UInt64.max` records every
    /// one (`always_on`, a ratio of 1 or more), 0 none.
    private let bound: UInt64

    init(_ sampler: Sampler) {
        var root = sampler
        var follows = false
        while case .parentBased(let inner) = root {
            follows = true
            root = inner
        }
        followsParent = follows
        switch root {
        case .alwaysOn: bound = .max
        case .alwaysOff: bound = 0
        case .traceIDRatio(let ratio): bound = ratio >= 1 ? .max : ratio <= 0 || ratio.isNaN ? 0 : UInt64(ratio * 9_223_372_036_854_775_808.0)
        case .parentBased: preconditionFailure("unwrapped above")
        }
    }

    @inline(__always)
    func shouldSample(traceID: TraceID, parent: SpanContext?) -> Bool {
        if followsParent, let parent, parent.isValid { return parent.isSampled }
        return traceID.low & 0x7FFF_FFFF_FFFF_FFFF < bound
    }
}
