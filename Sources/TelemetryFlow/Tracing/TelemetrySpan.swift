import Synchronization
public import TelemetryFlowCore
import TelemetryFlowStorage

/// A span being recorded. Started by ``TelemetryFlowClient/startSpan(_:kind:attributes:links:context:at:)`` or
/// ``TelemetryFlowClient/withSpan(_:kind:attributes:context:_:)-(_,_,_,_,(TelemetrySpan)throws->T)``; every
/// mutation is safe from any thread; ``end(at:)`` appends the complete span (once). A span that was sampled out
/// (``isRecording`` false) ignores every call but still carries its context, so that children and outgoing
/// requests agree on the trace.
public final class TelemetrySpan: Sendable {
    /// The span's identity, propagated to children and to other processes.
    public let context: SpanContext
    /// The parent's span id (invalid for a root span).
    public let parentSpanID: SpanID
    public let kind: SpanKind
    public let startTimeUnixNano: UInt64
    /// Whether this span is recorded (its trace was sampled).
    public let isRecording: Bool
    /// Whether the parent came from another process (OTLP `Span.flags` bits 8 and 9).
    let parentIsRemote: Bool
    let scope: InstrumentationScope
    private let bus: CommandBus?
    private let limits: TelemetryFlow.Limits
    /// Held in the span object itself (one allocation per span, no generic lock class to instantiate).
    private let state: Mutex<State>

    struct State {
        var name: String
        var attributes = Attributes()
        var droppedAttributes: UInt32 = 0
        var events: [SpanEvent] = []
        var droppedEvents: UInt32 = 0
        var links: [SpanLink] = []
        var droppedLinks: UInt32 = 0
        var status = SpanStatus.unset
        var ended = false
    }

    init(
        name: String, context: SpanContext, parentSpanID: SpanID, parentIsRemote: Bool, kind: SpanKind, start: UInt64, attributes: Attributes,
        links: [SpanLink], scope: InstrumentationScope, bus: CommandBus?, limits: TelemetryFlow.Limits
    ) {
        self.context = context
        self.parentSpanID = parentSpanID
        self.parentIsRemote = parentIsRemote
        self.kind = kind
        self.startTimeUnixNano = start
        self.isRecording = bus != nil
        self.scope = scope
        self.bus = bus
        self.limits = limits
        guard let bus else {
            state = Mutex(State(name: name))
            return
        }
        // The state is built before the span is shared, so no lock is needed yet.
        var initial = State(name: name)
        let limit = limits.spanAttributeCount ?? limits.attributeCount
        if attributes.count <= limit, let limits = try? AttributeLimits(maxCount: limit, maxValueLength: nil), !limits.needsApplying(to: attributes) {
            initial.attributes = attributes
        } else {
            for attribute in attributes { Self.set(attribute.key, attribute.value, in: &initial, limit: limit) }
        }
        for link in links { Self.add(link, to: &initial, limits: limits) }
        let started = Self.spanData(of: initial, context: context, parentSpanID: parentSpanID, parentIsRemote: parentIsRemote, kind: kind,
            start: start, end: 0, limits: limits)
        state = Mutex(initial)
        bus.dispatch(StartSpan(span: started, scope: scope))
    }

    public var name: String { state.withLock { $0.name } }

    public func updateName(_ name: String) {
        guard isRecording else { return }
        state.withLock { if !$0.ended { $0.name = name } }
    }

    public func setAttribute(_ key: String, _ value: AttributeValue) {
        guard isRecording else { return }
        let limit = limits.spanAttributeCount ?? limits.attributeCount
        state.withLock { if !$0.ended { Self.set(key, value, in: &$0, limit: limit) } }
    }

    public func setAttributes(_ attributes: Attributes) {
        guard isRecording else { return }
        let limit = limits.spanAttributeCount ?? limits.attributeCount
        state.withLock { s in
            guard !s.ended else { return }
            for attribute in attributes { Self.set(attribute.key, attribute.value, in: &s, limit: limit) }
        }
    }

    private static func set(_ key: String, _ value: AttributeValue, in s: inout State, limit: Int) {
        guard !key.isEmpty else { return }
        if s.attributes[key] == nil && s.attributes.count >= limit {
            s.droppedAttributes += 1
            return
        }
        s.attributes.set(key, value)
    }

    /// Adds a timestamped event (now unless `at` is given, unix nanoseconds).
    public func addEvent(_ name: String, attributes: Attributes = [:], at time: UInt64? = nil) {
        guard isRecording else { return }
        let (kept, dropped) = Self.limit(attributes, count: limits.eventAttributeCount, length: limits.attributeValueLength)
        let event = SpanEvent(name: name, timeUnixNano: time ?? wallClockNanos(), attributes: kept, droppedAttributesCount: dropped)
        let maxEvents = limits.spanEventCount
        let added = state.withLock { s -> Bool in
            guard !s.ended else { return false }
            if s.events.count >= maxEvents {
                s.droppedEvents += 1
                return false
            }
            s.events.append(event)
            return true
        }
        if added { bus?.dispatch(AddSpanEvent(traceID: context.traceID, spanID: context.spanID, event: event)) }
    }

    /// Links this span to another (a batch's messages, a span of another trace).
    public func addLink(_ context: SpanContext, attributes: Attributes = [:]) {
        guard isRecording else { return }
        let link = SpanLink(traceID: context.traceID, spanID: context.spanID, traceState: context.traceState, attributes: attributes, flags: UInt32(context.traceFlags))
        let limits = self.limits
        state.withLock { if !$0.ended { Self.add(link, to: &$0, limits: limits) } }
    }

    private static func add(_ link: SpanLink, to s: inout State, limits: TelemetryFlow.Limits) {
        if s.links.count >= limits.spanLinkCount {
            s.droppedLinks += 1
            return
        }
        var link = link
        let (kept, dropped) = limit(link.attributes, count: limits.linkAttributeCount, length: limits.attributeValueLength)
        link.attributes = kept
        link.droppedAttributesCount += dropped
        s.links.append(link)
    }

    private static func limit(_ attributes: Attributes, count: Int, length: Int?) -> (Attributes, UInt32) {
        guard !attributes.isEmpty, attributes.count > count || length != nil,
            let limits = try? AttributeLimits(maxCount: count, maxValueLength: length), limits.needsApplying(to: attributes)
        else { return (attributes, 0) }
        let (kept, dropped) = limits.apply(to: attributes)
        return (kept, UInt32(dropped))
    }

    /// Sets the status. As OpenTelemetry specifies, `ok` is final, and `unset` never replaces another status.
    public func setStatus(_ status: SpanStatus) {
        guard isRecording else { return }
        state.withLock { s in
            guard !s.ended, s.status.code != .ok, status.code != .unset else { return }
            s.status = status
        }
    }

    /// Records `error` as an `exception` event (`exception.type`, `exception.message`, as the OpenTelemetry
    /// semantic conventions name them). The status is not changed: ``setStatus(_:)`` does that, and
    /// `withSpan` does it for an error its closure throws.
    public func recordError(_ error: any Error, attributes: Attributes = [:]) {
        guard isRecording else { return }
        var all = Self.exceptionAttributes(error)
        for attribute in attributes { all.set(attribute.key, attribute.value) }
        addEvent("exception", attributes: all)
    }

    /// `exception.type` and `exception.message` of `error`, as the OpenTelemetry semantic conventions name them
    /// (for span exception events and for log records with an error).
    static func exceptionAttributes(_ error: any Error) -> Attributes {
        ["exception.type": .string(String(reflecting: type(of: error))), "exception.message": .string(String(describing: error))]
    }

    /// How `withSpan` ends a span whose closure threw: an `exception` event, status error, then ``end(at:)``.
    func end(throwing error: any Error) {
        recordError(error)
        setStatus(SpanStatus(.error, message: String(describing: error)))
        end()
    }

    /// Ends the span (now unless `at` is given) and appends it; later calls do nothing.
    public func end(at time: UInt64? = nil) {
        guard isRecording, let bus else { return }
        // An ended span never changes again: its attributes, events and links are moved out, not copied (only the
        // name stays, for ``name``).
        let final = state.withLock { s -> State? in
            guard !s.ended else { return nil }
            var taken = State(name: s.name)
            swap(&taken, &s)
            s.ended = true
            return taken
        }
        guard let final else { return }
        let end = max(time ?? wallClockNanos(), startTimeUnixNano)
        bus.dispatch(EndSpan(
            span: Self.spanData(
                of: final, context: context, parentSpanID: parentSpanID, parentIsRemote: parentIsRemote, kind: kind,
                start: startTimeUnixNano, end: end, limits: limits),
            scope: scope))
    }

    /// Whether ``end(at:)`` was called.
    public var isEnded: Bool { state.withLock { $0.ended } }

    /// The span as recorded so far, its attribute values cut to the value-length limit.
    private static func spanData(
        of s: consuming State, context: SpanContext, parentSpanID: SpanID, parentIsRemote: Bool, kind: SpanKind, start: UInt64, end: UInt64,
        limits: TelemetryFlow.Limits
    ) -> SpanData {
        var attributes = s.attributes
        var dropped = s.droppedAttributes
        if let length = limits.spanAttributeValueLength ?? limits.attributeValueLength {
            let (kept, truncatedDrops) = Self.limit(attributes, count: Int.max, length: length)
            attributes = kept
            dropped += truncatedDrops
        }
        return SpanData(
            traceID: context.traceID, spanID: context.spanID, parentSpanID: parentSpanID, traceState: context.traceState,
            flags: UInt32(context.traceFlags) | (parentIsRemote ? 0x300 : 0x100), name: s.name, kind: kind,
            startTimeUnixNano: start, endTimeUnixNano: end, attributes: attributes, droppedAttributesCount: dropped,
            events: s.events, droppedEventsCount: s.droppedEvents, links: s.links, droppedLinksCount: s.droppedLinks, status: s.status)
    }
}
