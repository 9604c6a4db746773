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
    private let limits: SpanLimits
    /// Held in the span object itself (one allocation per span, no generic lock class to instantiate).
    private let state: Mutex<State>
    /// The started record as it was appended (empty when it was not appended from here): the ended record is these
    /// bytes followed by what changed since (`State.mark`), instead of a second encoding of the whole span. Written
    /// once in `init` (before the span is shared) and read in ``end(at:)`` under `state`'s lock, after `ended` was
    /// set, so that it is read once. Beside the state rather than in it: its 320 inline bytes are built in place in
    /// the span's allocation, not moved with the state into the lock. Its accesses are not tracked at run time
    /// (`@exclusivity(unchecked)`): they cannot overlap, as said, and the tracking cost two calls into the runtime
    /// per access (a thread-local look-up each), 60–130 ns of a span.
    @exclusivity(unchecked) private nonisolated(unsafe) var startRecord = KeptRecord()

    /// The span as recorded so far: the very value appended when it starts and when it ends (its attribute values
    /// already cut to the value-length limit as they were set).
    struct State {
        var data: SpanData
        var ended = false
        /// What the started record (``TelemetrySpan/startRecord``) held (set as it is encoded).
        var mark = SpanStartMark()

        init(data: consuming SpanData) { self.data = data }
    }

    init(
        name: String, context: SpanContext, parentSpanID: SpanID, parentIsRemote: Bool, kind: SpanKind, start: UInt64,
        attributes: consuming Attributes, links: [SpanLink], scope: InstrumentationScope, bus: CommandBus?, limits: SpanLimits
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
        let flags = UInt32(context.traceFlags) | (parentIsRemote ? 0x300 : 0x100)
        // The state is built in place (a local copy would be copied again into the lock and destroyed).
        guard let bus else {
            state = Mutex(State(data: SpanData(
                traceID: context.traceID, spanID: context.spanID, parentSpanID: parentSpanID, traceState: context.traceState,
                flags: flags, name: name, kind: kind, startTimeUnixNano: start)))
            return
        }
        let fits = !limits.attributes.needsApplying(to: attributes)
        if fits {
            state = Mutex(State(data: SpanData(
                traceID: context.traceID, spanID: context.spanID, parentSpanID: parentSpanID, traceState: context.traceState,
                flags: flags, name: name, kind: kind, startTimeUnixNano: start, attributes: attributes)))
        } else {
            var data = SpanData(
                traceID: context.traceID, spanID: context.spanID, parentSpanID: parentSpanID, traceState: context.traceState,
                flags: flags, name: name, kind: kind, startTimeUnixNano: start)
            for attribute in attributes { Self.set(attribute.key, attribute.value, in: &data, limits: limits) }
            state = Mutex(State(data: data))
        }
        // Appended from the state itself; the span is not shared yet, so the lock is never contended.
        state.withLock { s in
            for link in links { Self.add(link, to: &s.data, limits: limits) }
            s.mark = SpanStartMark(s.data)
            bus.recordStart(span: s.data, scope: scope, keeping: &startRecord)
        }
    }

    /// A span that records nothing and only carries `context` (as a sampled-out one does).
    static func nonRecording(_ name: String, context: SpanContext) -> TelemetrySpan {
        TelemetrySpan(
            name: name, context: context, parentSpanID: .invalid, parentIsRemote: false, kind: .internal, start: 0,
            attributes: [:], links: [], scope: TelemetryFlowClient.defaultScope, bus: nil, limits: .defaults)
    }

    public var name: String { state.withLock { $0.data.name } }

    public func updateName(_ name: String) {
        guard isRecording else { return }
        state.withLock { s in
            guard !s.ended else { return }
            s.data.name = name
            s.mark.nameChanged = true
        }
    }

    public func setAttribute(_ key: String, _ value: AttributeValue) {
        guard isRecording else { return }
        let limits = self.limits
        state.withLock { if !$0.ended { Self.set(key, value, in: &$0, limits: limits) } }
    }

    public func setAttributes(_ attributes: Attributes) {
        guard isRecording else { return }
        let limits = self.limits
        state.withLock { s in
            guard !s.ended else { return }
            for attribute in attributes { Self.set(attribute.key, attribute.value, in: &s, limits: limits) }
        }
    }

    /// Sets one attribute within the span's limits: an empty key is ignored, a new key beyond the count limit is
    /// dropped and counted, a long value is cut to the value-length limit.
    private static func set(_ key: String, _ value: AttributeValue, in data: inout SpanData, limits: SpanLimits) {
        _ = set(key, value, in: &data.attributes, dropped: &data.droppedAttributesCount, limits: limits)
    }

    /// ``set(_:_:in:limits:)`` on a span that may have started: replacing an attribute its started record holds
    /// means its ended record is encoded whole.
    private static func set(_ key: String, _ value: AttributeValue, in state: inout State, limits: SpanLimits) {
        if let index = set(key, value, in: &state.data.attributes, dropped: &state.data.droppedAttributesCount, limits: limits),
            index < state.mark.attributes
        {
            state.mark.attributeReplaced = true
        }
    }

    /// Returns the index of the attribute that was replaced, if one was.
    private static func set(_ key: String, _ value: AttributeValue, in attributes: inout Attributes, dropped: inout UInt32, limits: SpanLimits) -> Int? {
        guard !key.isEmpty else { return nil }
        if let index = attributes.firstIndex(where: { $0.key == key }) {
            attributes[index].value = limits.attributes.truncate(value)
            return index
        }
        if attributes.count >= limits.attributes.maxCount {
            dropped += 1
            return nil
        }
        attributes.append(Attribute(key, limits.attributes.truncate(value)))
        return nil
    }

    /// Adds a timestamped event (now unless `at` is given, unix nanoseconds).
    public func addEvent(_ name: String, attributes: Attributes = [:], at time: UInt64? = nil) {
        guard isRecording else { return }
        let (kept, dropped) = Self.limit(attributes, limits.eventAttributes)
        let event = SpanEvent(name: name, timeUnixNano: time ?? wallClockNanos(), attributes: kept, droppedAttributesCount: dropped)
        let maxEvents = limits.events
        let added = state.withLock { s -> Bool in
            guard !s.ended else { return false }
            if s.data.events.count >= maxEvents {
                s.data.droppedEventsCount += 1
                return false
            }
            s.data.events.append(event)
            return true
        }
        if added { bus?.dispatch(AddSpanEvent(traceID: context.traceID, spanID: context.spanID, event: event)) }
    }

    /// Links this span to another (a batch's messages, a span of another trace).
    public func addLink(_ context: SpanContext, attributes: Attributes = [:]) {
        guard isRecording else { return }
        let link = SpanLink(traceID: context.traceID, spanID: context.spanID, traceState: context.traceState, attributes: attributes, flags: UInt32(context.traceFlags))
        let limits = self.limits
        state.withLock { if !$0.ended { Self.add(link, to: &$0.data, limits: limits) } }
    }

    private static func add(_ link: SpanLink, to data: inout SpanData, limits: SpanLimits) {
        if data.links.count >= limits.links {
            data.droppedLinksCount += 1
            return
        }
        var link = link
        let (kept, dropped) = limit(link.attributes, limits.linkAttributes)
        link.attributes = kept
        link.droppedAttributesCount += dropped
        data.links.append(link)
    }

    private static func limit(_ attributes: Attributes, _ limits: AttributeLimits) -> (Attributes, UInt32) {
        guard limits.needsApplying(to: attributes) else { return (attributes, 0) }
        let (kept, dropped) = limits.apply(to: attributes)
        return (kept, UInt32(dropped))
    }

    /// Sets the status. As OpenTelemetry specifies, `ok` is final, and `unset` never replaces another status.
    public func setStatus(_ status: SpanStatus) {
        guard isRecording else { return }
        state.withLock { s in
            guard !s.ended, s.data.status.code != .ok, status.code != .unset else { return }
            s.data.status = status
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
        guard let bus else { return }
        let end = max(time ?? wallClockNanos(), startTimeUnixNano)
        // Appended from the state in place, under the lock: an ended span never changes again, so nothing else
        // waits for it, and the state is neither copied nor moved out (which built and destroyed a second value).
        state.withLock { s in
            guard !s.ended else { return }
            s.ended = true
            s.data.endTimeUnixNano = end
            bus.recordEnd(span: s.data, startRecord: &startRecord, since: s.mark, scope: scope)
        }
    }

    /// Whether ``end(at:)`` was called.
    public var isEnded: Bool { state.withLock { $0.ended } }
}

/// A span's limits, resolved once from ``TelemetryFlow/Limits`` (the span-specific ones, else the general ones).
struct SpanLimits: Sendable {
    /// The default limits (those of a disabled client's spans, which record nothing).
    static let defaults = SpanLimits(TelemetryFlow.Limits())

    /// Attributes per span and the longest value.
    let attributes: AttributeLimits
    let events: Int
    let links: Int
    let eventAttributes: AttributeLimits
    let linkAttributes: AttributeLimits

    /// `limits` were validated with the configuration (negative ones are rejected there).
    init(_ limits: TelemetryFlow.Limits) {
        func make(_ count: Int, _ length: Int?) -> AttributeLimits { AttributeLimits(validatedMaxCount: count, maxValueLength: length) }
        attributes = make(limits.spanAttributeCount ?? limits.attributeCount, limits.spanAttributeValueLength ?? limits.attributeValueLength)
        events = limits.spanEventCount
        links = limits.spanLinkCount
        eventAttributes = make(limits.eventAttributeCount, limits.attributeValueLength)
        linkAttributes = make(limits.linkAttributeCount, limits.attributeValueLength)
    }
}
