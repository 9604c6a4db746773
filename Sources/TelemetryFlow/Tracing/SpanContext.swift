import CSupport
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
/// the same keys, so they all see the same span. Their names are computed: `ServiceContext`'s setter reads the name
/// on every set, and a `static let` is a lazily initialised global, checked at each read.
public enum SpanContextKey: ServiceContextKey {
    public typealias Value = SpanContext
    public static var nameOverride: String? { "telemetryflow.span_context" }
}

/// The current ``TelemetrySpan`` (when this process started it), beside its ``SpanContextKey``.
public enum CurrentSpanKey: ServiceContextKey {
    public typealias Value = TelemetrySpan
    public static var nameOverride: String? { "telemetryflow.span" }
}

/// W3C baggage entries carried with the context.
public enum BaggageKey: ServiceContextKey {
    public typealias Value = Baggage
    public static var nameOverride: String? { "telemetryflow.baggage" }
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

/// Trace and span ids: the SplitMix64 finaliser of a process-wide counter offset by a seed from the system, with no
/// system call per id (a `getrandom` per id cost about 1.8 µs here) and no shared atomic per id (each thread takes the
/// counter in blocks; `tf_random64` in CSupport). The finaliser is a bijection of the counter, so ids never repeat
/// within a process; the seed makes them differ between processes, and a forked child takes a new one.
package enum IDGenerator {
    @inline(__always)
    package static func traceID() -> TraceID {
        let id = TraceID(high: tf_random64(), low: tf_random64())
        return id.isValid ? id : TraceID(high: 0, low: 1)
    }

    @inline(__always)
    package static func spanID() -> SpanID {
        let value = tf_random64()
        return SpanID(value == 0 ? 1 : value)
    }
}
