/// The kind of instrument a measurement was recorded with.
public enum InstrumentKind: UInt8, Sendable, Hashable, CaseIterable {
    case counter = 1, upDownCounter = 2, gauge = 3, histogram = 4
}

/// A measured number: integers stay integers all the way to the exported point.
public enum MetricValue: Sendable, Hashable, CustomStringConvertible {
    case int(Int64)
    case double(Double)

    public static func == (lhs: MetricValue, rhs: MetricValue) -> Bool {
        switch (lhs, rhs) {
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a.bitPattern == b.bitPattern
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .int(let v): hasher.combine(0); hasher.combine(v)
        case .double(let v): hasher.combine(1); hasher.combine(v.bitPattern)
        }
    }

    public var asDouble: Double {
        switch self {
        case .int(let v): return Double(v)
        case .double(let v): return v
        }
    }

    public var description: String {
        switch self {
        case .int(let v): return "\(v)"
        case .double(let v): return "\(v)"
        }
    }
}

/// One measurement of one instrument, in the log's compact format; the metrics projection aggregates them.
public struct MetricMeasurement: Sendable, Hashable {
    public var kind: InstrumentKind
    public var name: String
    public var unit: String
    public var scope: InstrumentationScope
    public var attributes: Attributes
    public var value: MetricValue

    public init(
        kind: InstrumentKind, name: String, unit: String = "", scope: InstrumentationScope = .telemetryFlow,
        attributes: Attributes = [:], value: MetricValue
    ) {
        self.kind = kind
        self.name = name
        self.unit = unit
        self.scope = scope
        self.attributes = attributes
        self.value = value
    }
}

/// A record of a custom, plugin-defined signal type.
public struct CustomSignalRecord: Sendable, Hashable {
    public var signal: SignalType
    public var name: String
    public var attributes: Attributes
    /// Opaque payload, encoded by the signal type's plugin codec.
    public var body: [UInt8]

    public init(signal: SignalType, name: String, attributes: Attributes = [:], body: [UInt8] = []) {
        self.signal = signal
        self.name = name
        self.attributes = attributes
        self.body = body
    }
}

/// A change in the SDK's own life: started, shut down, configuration applied, recovery finished.
public struct LifecycleEvent: Sendable, Hashable {
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let started = Kind(rawValue: 1)
        public static let shutdown = Kind(rawValue: 2)
        public static let configured = Kind(rawValue: 3)
        public static let recovered = Kind(rawValue: 4)
        /// Stored events were found lost or damaged (recovery, or the first read of a damaged segment); the
        /// attributes `telemetryflow.lost.count`, `telemetryflow.lost.ranges` (`first-last,…`),
        /// `telemetryflow.lost.reason` and, when known, `telemetryflow.lost.segment` say what and why.
        public static let dataLost = Kind(rawValue: 5)
        public var description: String {
            switch rawValue {
            case 1: return "started"
            case 2: return "shutdown"
            case 3: return "configured"
            case 4: return "recovered"
            case 5: return "data_lost"
            default: return "kind(\(rawValue))"
            }
        }
    }

    public var kind: Kind
    public var attributes: Attributes

    public init(kind: Kind, attributes: Attributes = [:]) {
        self.kind = kind
        self.attributes = attributes
    }
}

extension MetricValue {
    /// Whether an instrument of `kind` accepts the value: finite, and not negative for a counter.
    @inlinable
    package func isValid(for kind: InstrumentKind) -> Bool {
        switch self {
        case .double(let v): return v.isFinite && (v >= 0 || kind != .counter)
        case .int(let v): return v >= 0 || kind != .counter
        }
    }
}
