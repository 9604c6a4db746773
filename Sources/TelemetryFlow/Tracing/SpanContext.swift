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
        set {
            if let newValue { self = settingSpan(newValue) } else { self[CurrentSpanKey.self] = nil }
        }
    }

    /// This context with `span` as its current span: what `withSpan` binds for its closure, once per span.
    ///
    /// `ServiceContext`'s own setter is a generic function of another module, not specialised here: one key set on an
    /// empty context cost 200–420 ns (a generic metadata look-up, the key's name read through its witness, the key
    /// hashed twice as the empty dictionary grows), a fifth of a span. The context is a dictionary and nothing else,
    /// which ``CurrentSpanStorage`` verifies once by reflection; where it holds, the dictionary is written here,
    /// specialised (143 ns for the same key); where it does not (another version of the package), the setter is used.
    func settingSpan(_ span: TelemetrySpan) -> ServiceContext {
        guard let key = CurrentSpanStorage.key else {
            var context = self
            context[CurrentSpanKey.self] = span
            return context
        }
        var storage = unsafeBitCast(self, to: CurrentSpanStorage.Storage.self)
        if storage.isEmpty {
            // Built at its size (a literal), rather than grown from the shared empty storage.
            storage = [key: span]
        } else {
            storage[key] = span
        }
        return unsafeBitCast(storage, to: ServiceContext.self)
    }

    /// The W3C baggage carried with the context.
    public var baggage: Baggage? {
        get { self[BaggageKey.self] }
        set { self[BaggageKey.self] = newValue }
    }
}

/// How ``ServiceContext/settingSpan(_:)`` writes a context's dictionary directly: the key ``CurrentSpanKey`` is
/// stored under, when a context is exactly that dictionary (`nil` otherwise, and the context's own setter is used).
enum CurrentSpanStorage {
    typealias Storage = [AnyServiceContextKey: any Sendable]

    /// Checked once, with the context's public API and reflection only, before any bit cast: `ServiceContext` has
    /// one stored property, a `Storage`, and the same size; a context with a span set by its own setter holds one
    /// entry, whose key is taken from it; a context built from that key and a span reads the span back through the
    /// context's own getter.
    static let key: AnyServiceContextKey? = {
        guard MemoryLayout<ServiceContext>.size == MemoryLayout<Storage>.size,
            MemoryLayout<ServiceContext>.alignment == MemoryLayout<Storage>.alignment,
            MemoryLayout<ServiceContext>.stride == MemoryLayout<Storage>.stride
        else { return nil }
        let probe = TelemetrySpan.nonRecording("", context: SpanContext(traceID: TraceID(high: 0, low: 1), spanID: SpanID(1)))
        var context = ServiceContext.topLevel
        context[CurrentSpanKey.self] = probe
        let fields = Array(Mirror(reflecting: context).children)
        // The field's dynamic type itself, not a cast that could convert another type.
        guard fields.count == 1, type(of: fields[0].value) == Storage.self, let storage = fields[0].value as? Storage,
            storage.count == 1, context.count == 1, let (key, value) = storage.first, (value as? TelemetrySpan) === probe
        else { return nil }
        let built = unsafeBitCast([key: probe] as Storage, to: ServiceContext.self)
        guard built.count == 1, built[CurrentSpanKey.self] === probe else { return nil }
        var child = built
        child[SpanContextKey.self] = probe.context
        guard unsafeBitCast(child, to: Storage.self).count == 2 else { return nil }
        return key
    }()
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
