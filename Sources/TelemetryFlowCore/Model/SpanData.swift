/// The role of a span in a trace, as OTLP `Span.SpanKind`.
public enum SpanKind: UInt8, Sendable, Hashable, CaseIterable {
    case unspecified = 0, `internal` = 1, server = 2, client = 3, producer = 4, consumer = 5
}

/// A span's outcome, as OTLP `Status`.
public struct SpanStatus: Sendable, Hashable {
    public enum Code: UInt8, Sendable, Hashable { case unset = 0, ok = 1, error = 2 }
    public var code: Code
    public var message: String

    public init(_ code: Code, message: String = "") {
        self.code = code
        self.message = message
    }

    public static let unset = SpanStatus(.unset)
    public static let ok = SpanStatus(.ok)
}

/// A timestamped annotation on a span.
public struct SpanEvent: Sendable, Hashable {
    public var name: String
    public var timeUnixNano: UInt64
    public var attributes: Attributes
    public var droppedAttributesCount: UInt32

    public init(name: String, timeUnixNano: UInt64, attributes: Attributes = [:], droppedAttributesCount: UInt32 = 0) {
        self.name = name
        self.timeUnixNano = timeUnixNano
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
    }
}

/// A link from a span to another span, possibly in another trace.
public struct SpanLink: Sendable, Hashable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var traceState: String
    public var attributes: Attributes
    public var droppedAttributesCount: UInt32
    public var flags: UInt32

    public init(
        traceID: TraceID, spanID: SpanID, traceState: String = "", attributes: Attributes = [:],
        droppedAttributesCount: UInt32 = 0, flags: UInt32 = 0
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.traceState = traceState
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
        self.flags = flags
    }
}

/// Everything OTLP knows about a span. Stored in the log as the OTLP `Span` message.
public struct SpanData: Sendable, Hashable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var parentSpanID: SpanID
    public var traceState: String
    /// W3C trace flags (bit 0: sampled), OTLP `Span.flags`.
    public var flags: UInt32
    public var name: String
    public var kind: SpanKind
    public var startTimeUnixNano: UInt64
    /// Zero while the span is open.
    public var endTimeUnixNano: UInt64
    public var attributes: Attributes
    public var droppedAttributesCount: UInt32
    public var events: [SpanEvent]
    public var droppedEventsCount: UInt32
    public var links: [SpanLink]
    public var droppedLinksCount: UInt32
    public var status: SpanStatus

    public init(
        traceID: TraceID, spanID: SpanID, parentSpanID: SpanID = .invalid, traceState: String = "",
        flags: UInt32 = 1, name: String, kind: SpanKind = .internal, startTimeUnixNano: UInt64,
        endTimeUnixNano: UInt64 = 0, attributes: Attributes = [:], droppedAttributesCount: UInt32 = 0,
        events: [SpanEvent] = [], droppedEventsCount: UInt32 = 0, links: [SpanLink] = [],
        droppedLinksCount: UInt32 = 0, status: SpanStatus = .unset
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.traceState = traceState
        self.flags = flags
        self.name = name
        self.kind = kind
        self.startTimeUnixNano = startTimeUnixNano
        self.endTimeUnixNano = endTimeUnixNano
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
        self.events = events
        self.droppedEventsCount = droppedEventsCount
        self.links = links
        self.droppedLinksCount = droppedLinksCount
        self.status = status
    }
}
