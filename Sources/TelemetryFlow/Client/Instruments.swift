public import TelemetryFlowCore
import TelemetryFlowStorage

/// What every instrument handle holds: its identity and the bus its measurements go to (nil: its signal is
/// disabled, and every call is a no-op).
struct InstrumentCore: Sendable {
    let bus: CommandBus?
    /// `bus` without reference counting on each call (`bus` keeps it alive as long as the handle lives): a handle
    /// is shared by every thread that records with it, and a retain and release per call on the bus's shared
    /// header would bounce that cache line between them.
    private let unretainedBus: Unmanaged<CommandBus>?
    let kind: InstrumentKind
    let name: String
    let unit: String
    let scope: InstrumentationScope
    /// Name, unit and scope as the record encodes them, once.
    let prefix: [UInt8]

    init(bus: CommandBus?, kind: InstrumentKind, name: String, unit: String, scope: InstrumentationScope) {
        self.bus = bus
        unretainedBus = bus.map { Unmanaged.passUnretained($0) }
        self.kind = kind
        self.name = name
        self.unit = unit
        self.scope = scope
        prefix = EventCodec.measurementPrefix(name: name, unit: unit, scope: scope)
    }

    @inline(__always)
    func record(_ value: MetricValue, _ attributes: Attributes) {
        unretainedBus?._withUnsafeGuaranteedRef { $0.record(self, value, attributes) }
    }
}

/// A monotonic sum (requests served, bytes sent). Negative, NaN and infinite values are dropped and counted
/// (`invalid_measurement`). Handles are cheap values: keep one, or ask the client again.
public struct Counter: Sendable {
    let core: InstrumentCore
    public var name: String { core.name }
    public func add(_ value: Int = 1, _ attributes: Attributes = [:]) { core.record(.int(Int64(value)), attributes) }
    public func add(_ value: Double, _ attributes: Attributes = [:]) { core.record(.double(value), attributes) }
}

/// A sum that goes up and down (queue length, connections open).
public struct UpDownCounter: Sendable {
    let core: InstrumentCore
    public var name: String { core.name }
    public func add(_ value: Int, _ attributes: Attributes = [:]) { core.record(.int(Int64(value)), attributes) }
    public func add(_ value: Double, _ attributes: Attributes = [:]) { core.record(.double(value), attributes) }
}

/// The last value of something (temperature, memory in use): each collection reports the latest recorded
/// value per attribute set, never a sum.
public struct Gauge: Sendable {
    let core: InstrumentCore
    public var name: String { core.name }
    public func record(_ value: Int, _ attributes: Attributes = [:]) { core.record(.int(Int64(value)), attributes) }
    public func record(_ value: Double, _ attributes: Attributes = [:]) { core.record(.double(value), attributes) }
}

/// A distribution (request durations, payload sizes), aggregated into explicit buckets: OpenTelemetry's default
/// boundaries, or the instrument's own from ``TelemetryFlow/Configuration/metrics``
/// (`histogramBoundsByInstrument`, `TelemetryFlowBuilder.withHistogramBoundaries(_:_:)`).
public struct Histogram: Sendable {
    let core: InstrumentCore
    public var name: String { core.name }
    public func record(_ value: Int, _ attributes: Attributes = [:]) { core.record(.int(Int64(value)), attributes) }
    public func record(_ value: Double, _ attributes: Attributes = [:]) { core.record(.double(value), attributes) }
}
