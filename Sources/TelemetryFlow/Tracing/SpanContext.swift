public import ServiceContextModule
public import TelemetryFlowCore
import Synchronization

/// What identifies a span across processes: W3C trace context.
public struct SpanContext: Sendable, Hashable, CustomStringConvertible {
    public var traceID: TraceID
    public var spanID: SpanID
    /// W3C trace flags; bit 0 is `sampled`.
    public var traceFlags: UInt8
    /// The W3C `tracestate` header value, passed on as received.
    public var traceState: String
    /// Whether the context came from another process (extracted from headers).
    public var isRemote: Bool

    public init(traceID: TraceID, spanID: SpanID, traceFlags: UInt8 = 1, traceState: String = "", isRemote: Bool = false) {
        self.traceID = traceID
        self.spanID = spanID
        self.traceFlags = traceFlags
        self.traceState = traceState
        self.isRemote = isRemote
    }

    public var isValid: Bool { traceID.isValid && spanID.isValid }
    public var isSampled: Bool { traceFlags & 1 != 0 }
    public var description: String { "\(traceID.hex)-\(spanID.hex)-\(isSampled ? "01" : "00")" }
}

/// The `ServiceContext` keys the client stores its state under: the current span, its context, and baggage.
/// Every integration (the swift-distributed-tracing `Tracer`, swift-log correlation, W3C propagation) reads
/// the same keys, so they all see the same span.
public enum SpanContextKey: ServiceContextKey {
    public typealias Value = SpanContext
    public static let nameOverride: String? = "telemetryflow.span_context"
}

/// The current ``TelemetrySpan`` (when this process started it), beside its ``SpanContextKey``.
public enum CurrentSpanKey: ServiceContextKey {
    public typealias Value = TelemetrySpan
    public static let nameOverride: String? = "telemetryflow.span"
}

/// W3C baggage entries carried with the context.
public enum BaggageKey: ServiceContextKey {
    public typealias Value = Baggage
    public static let nameOverride: String? = "telemetryflow.baggage"
}

extension ServiceContext {
    /// The current span's context: the current local span's, or one extracted from headers. Setting it makes it
    /// the current one (a local span set before is forgotten).
    public var spanContext: SpanContext? {
        get {
            // An empty context (a top-level one, the common case) holds neither key: no lookups.
            guard !isEmpty else { return nil }
            return self[CurrentSpanKey.self]?.context ?? self[SpanContextKey.self]
        }
        set {
            self[SpanContextKey.self] = newValue
            if self[CurrentSpanKey.self] != nil { self[CurrentSpanKey.self] = nil }
        }
    }

    /// The current span, when this process started it (its context is then ``spanContext``).
    public var span: TelemetrySpan? {
        get { self[CurrentSpanKey.self] }
        set { self[CurrentSpanKey.self] = newValue }
    }

    /// The W3C baggage carried with the context.
    public var baggage: Baggage? {
        get { self[BaggageKey.self] }
        set { self[BaggageKey.self] = newValue }
    }
}

/// Trace and span ids from a generator seeded once from the system: one atomic increment and a SplitMix64
/// finaliser per id, no system call (a `getrandom` per id costs about 1.8 µs here). The finaliser is a bijection
/// of the counter, so ids never repeat within a process; the seed makes them differ between processes.
package final class IDGenerator: Sendable {
    package static let shared = IDGenerator()

    private let seed: UInt64
    private let counter = Atomic<UInt64>(0)

    package init(seed: UInt64? = nil) {
        var system = SystemRandomNumberGenerator()
        self.seed = seed ?? system.next()
    }

    @inline(__always)
    private func next() -> UInt64 {
        let n = counter.add(1, ordering: .relaxed).newValue
        var z = seed &+ n &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    package func traceID() -> TraceID {
        let id = TraceID(high: next(), low: next())
        return id.isValid ? id : TraceID(high: 0, low: 1)
    }

    package func spanID() -> SpanID {
        let value = next()
        return SpanID(value == 0 ? 1 : value)
    }
}
