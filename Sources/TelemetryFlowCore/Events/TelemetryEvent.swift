/// A set of event types, for reads that need only some (``EventLog/read(after:maxCount:maxBytes:types:)``).
public struct EventTypeSet: Sendable, Hashable, ExpressibleByArrayLiteral {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    public init(_ types: some Sequence<EventType>) { for type in types { insert(type) } }
    public init(arrayLiteral types: EventType...) { self.init(types) }

    /// The four measurement types.
    public static let measurements: EventTypeSet = [.counterMeasurement, .upDownCounterMeasurement, .gaugeMeasurement, .histogramMeasurement]
    /// The three span types.
    public static let spans: EventTypeSet = [.spanStarted, .spanEventAdded, .spanEnded]

    public mutating func insert(_ type: EventType) {
        let bit = UInt64(1) << (type.rawValue & 63)
        switch type.rawValue >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    @inline(__always)
    public func contains(_ rawType: UInt8) -> Bool {
        let word: UInt64
        switch rawType >> 6 {
        case 0: word = words.0
        case 1: word = words.1
        case 2: word = words.2
        default: word = words.3
        }
        return word & (UInt64(1) << (rawType & 63)) != 0
    }

    public func contains(_ type: EventType) -> Bool { contains(type.rawValue) }

    public static func == (a: EventTypeSet, b: EventTypeSet) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

/// The type byte of a log record's envelope. A struct so that new types are not a breaking change.
public struct EventType: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let counterMeasurement = EventType(rawValue: 1)
    public static let upDownCounterMeasurement = EventType(rawValue: 2)
    public static let gaugeMeasurement = EventType(rawValue: 3)
    public static let histogramMeasurement = EventType(rawValue: 4)
    /// A collection of the metrics projection: aggregated OTLP metric points.
    public static let metricsCollected = EventType(rawValue: 5)
    public static let logRecord = EventType(rawValue: 16)
    public static let spanStarted = EventType(rawValue: 32)
    public static let spanEventAdded = EventType(rawValue: 33)
    public static let spanEnded = EventType(rawValue: 34)
    public static let customSignal = EventType(rawValue: 48)
    public static let lifecycle = EventType(rawValue: 64)

    /// The types this build knows how to decode.
    public static let known: [EventType] = [
        .counterMeasurement, .upDownCounterMeasurement, .gaugeMeasurement, .histogramMeasurement, .metricsCollected, .logRecord,
        .spanStarted, .spanEventAdded, .spanEnded, .customSignal, .lifecycle,
    ]

    /// Whether the event is one measurement of an instrument (counter, up-down counter, gauge, histogram).
    public var isMeasurement: Bool { InstrumentKind(rawValue: rawValue) != nil }

    /// The built-in signal this type belongs to; custom signals name theirs in the payload.
    public var builtInSignal: SignalType? {
        switch rawValue {
        case 1...5: return .metrics
        case 16: return .logs
        case 32...34: return .traces
        default: return nil
        }
    }

    public var description: String {
        switch rawValue {
        case 1: return "counter"
        case 2: return "up_down_counter"
        case 3: return "gauge"
        case 4: return "histogram"
        case 5: return "metrics_collected"
        case 16: return "log"
        case 32: return "span_started"
        case 33: return "span_event"
        case 34: return "span_ended"
        case 48: return "custom"
        case 64: return "lifecycle"
        default: return "type(\(rawValue))"
        }
    }
}

/// A domain event: what one telemetry command appends to the log.
public enum TelemetryEvent: Sendable, Hashable {
    /// A counter, up-down counter, gauge or histogram measurement.
    case measurement(MetricMeasurement)
    /// A log record emitted under `scope`.
    case log(LogRecordData, scope: InstrumentationScope)
    /// A span began; carries the span as known at its start (no end time).
    case spanStarted(SpanData, scope: InstrumentationScope)
    /// An event was added to an open span.
    case spanEventAdded(traceID: TraceID, spanID: SpanID, event: SpanEvent)
    /// A span ended; carries the complete span, ready to export.
    case spanEnded(SpanData, scope: InstrumentationScope)
    /// Aggregated metric points of one collection interval.
    case metricsCollected(CollectedMetrics)
    /// A record of a custom signal type.
    case custom(CustomSignalRecord)
    /// An SDK lifecycle change.
    case lifecycle(LifecycleEvent)

    /// The envelope type this event is stored under.
    public var type: EventType {
        switch self {
        case .measurement(let m):
            switch m.kind {
            case .counter: return .counterMeasurement
            case .upDownCounter: return .upDownCounterMeasurement
            case .gauge: return .gaugeMeasurement
            case .histogram: return .histogramMeasurement
            }
        case .metricsCollected: return .metricsCollected
        case .log: return .logRecord
        case .spanStarted: return .spanStarted
        case .spanEventAdded: return .spanEventAdded
        case .spanEnded: return .spanEnded
        case .custom: return .customSignal
        case .lifecycle: return .lifecycle
        }
    }

    /// The signal this event belongs to, or nil for SDK lifecycle events.
    public var signal: SignalType? {
        if case .custom(let record) = self { return record.signal }
        return type.builtInSignal
    }
}
