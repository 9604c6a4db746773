/// Folds metric measurements into sums, last-value gauges and histograms per instrument and attribute set
/// (the read model behind `metrics_collected` events). A value type: the projection checkpoints it.
package struct MetricAggregator: Sendable {
    struct InstrumentKey: Hashable, Sendable {
        var name: String
        var kind: InstrumentKind
        var unit: String
        var scope: InstrumentationScope
    }

    enum Aggregate: Sendable {
        case sum(MetricValue)
        case gauge(MetricValue)
        case histogram(HistogramPoint)
    }

    struct Stream: Sendable {
        var start: UInt64
        var aggregate: Aggregate
    }

    package let configuration: MetricAggregationConfiguration
    /// Instrument descriptions by name, as the client's instruments declare them (exported with the points; not
    /// part of the checkpoint: the instruments declare them again after a restart).
    package var descriptions: [String: String] = [:]
    var instruments: [InstrumentKey: [Attributes: Stream]] = [:]
    var order: [InstrumentKey] = []
    /// The end of the last collection (start of the current delta interval).
    package private(set) var lastCollectionUnixNano: UInt64 = 0
    /// Measurements folded into overflow series because an instrument hit the cardinality limit.
    package private(set) var overflowMeasurements: UInt64 = 0
    /// Measurements refused: NaN or infinite values, negative counter increments.
    package private(set) var invalidMeasurements: UInt64 = 0

    static let overflowAttributes: Attributes = ["otel.metric.overflow": true]

    package init(configuration: MetricAggregationConfiguration, startUnixNano: UInt64 = 0) {
        self.configuration = configuration
        lastCollectionUnixNano = startUnixNano
    }

    /// Number of series held.
    package var seriesCount: Int { instruments.values.reduce(0) { $0 + $1.count } }

    /// Folds one measurement recorded at `timeUnixNano`.
    package mutating func fold(_ m: MetricMeasurement, timeUnixNano: UInt64) {
        let number = m.value.asDouble
        guard number.isFinite, !(m.kind == .counter && number < 0) else {
            invalidMeasurements += 1
            return
        }
        let key = InstrumentKey(name: m.name, kind: m.kind, unit: m.unit, scope: m.scope)
        if instruments[key] == nil {
            instruments[key] = [:]
            order.append(key)
        }
        var attributes = m.attributes.sortedByKey()
        if instruments[key]![attributes] == nil && instruments[key]!.count >= configuration.cardinalityLimit {
            attributes = Self.overflowAttributes
            overflowMeasurements += 1
        }
        let start = configuration.temporality == .delta ? lastCollectionUnixNano : timeUnixNano
        var stream = instruments[key]![attributes] ?? Stream(start: start, aggregate: empty(for: key))
        switch stream.aggregate {
        case .sum(let current): stream.aggregate = .sum(Self.add(current, m.value))
        case .gauge: stream.aggregate = .gauge(m.value)
        case .histogram(var h):
            h.record(number)
            stream.aggregate = .histogram(h)
        }
        instruments[key]![attributes] = stream
    }

    private func empty(for key: InstrumentKey) -> Aggregate {
        switch key.kind {
        case .counter, .upDownCounter: return .sum(.int(0))
        case .gauge: return .gauge(.int(0))
        case .histogram: return .histogram(HistogramPoint(bounds: configuration.histogramBoundsByInstrument[key.name] ?? configuration.histogramBounds))
        }
    }

    static func add(_ a: MetricValue, _ b: MetricValue) -> MetricValue {
        switch (a, b) {
        case (.int(let x), .int(let y)):
            let (sum, overflow) = x.addingReportingOverflow(y)
            return overflow ? .double(Double(x) + Double(y)) : .int(sum)
        default: return .double(a.asDouble + b.asDouble)
        }
    }

    /// The current points; with delta temporality the state then starts a new interval.
    package mutating func collect(foldedThrough: UInt64, timeUnixNano: UInt64) -> CollectedMetrics {
        let metrics = snapshot(timeUnixNano: timeUnixNano)
        reset(at: timeUnixNano)
        return CollectedMetrics(foldedThrough: foldedThrough, timeUnixNano: timeUnixNano, metrics: metrics)
    }

    /// What a collection at `timeUnixNano` would report, without changing the state.
    package func snapshot(timeUnixNano: UInt64) -> [MetricData] {
        order.compactMap { key in
            guard let streams = instruments[key], !streams.isEmpty else { return nil }
            let points = streams.sorted { $0.key.description < $1.key.description }.map { attributes, stream in
                let value: MetricPoint.Value
                switch stream.aggregate {
                case .sum(let v), .gauge(let v): value = .number(v)
                case .histogram(let h): value = .histogram(h)
                }
                return MetricPoint(attributes: attributes, startTimeUnixNano: key.kind == .gauge ? 0 : stream.start, timeUnixNano: timeUnixNano, value: value)
            }
            let kind: MetricData.Kind
            switch key.kind {
            case .counter: kind = .sum(monotonic: true, temporality: configuration.temporality)
            case .upDownCounter: kind = .sum(monotonic: false, temporality: configuration.temporality)
            case .gauge: kind = .gauge
            case .histogram: kind = .histogram(temporality: configuration.temporality)
            }
            return MetricData(name: key.name, description: descriptions[key.name] ?? "", unit: key.unit, scope: key.scope, kind: kind, points: points)
        }
    }

    /// Ends an interval at `timeUnixNano`: with delta temporality every series starts over.
    package mutating func reset(at timeUnixNano: UInt64) {
        lastCollectionUnixNano = timeUnixNano
        if configuration.temporality == .delta {
            instruments.removeAll(keepingCapacity: true)
            order.removeAll(keepingCapacity: true)
        }
    }

    // MARK: Checkpoints

    /// The state as bytes: interval start, counters, then every series as OTLP `ScopeMetrics`.
    package func encodedState() -> [UInt8] {
        var w = ProtobufWriter()
        w.writeRawFixed64(lastCollectionUnixNano)
        w.writeRawFixed64(overflowMeasurements)
        w.writeRawFixed64(invalidMeasurements)
        // Cumulative snapshot: the time field is unused on restore.
        CollectedMetrics(foldedThrough: 0, timeUnixNano: 0, metrics: snapshot(timeUnixNano: 0)).encodeOTLPScopeMetrics(into: &w)
        return w.bytes
    }

    /// Restores a state written by ``encodedState()``.
    package init(configuration: MetricAggregationConfiguration, state bytes: [UInt8]) throws {
        self.init(configuration: configuration)
        guard bytes.count >= 24 else { throw TelemetryFlowError(.decoding, "metrics checkpoint is truncated") }
        lastCollectionUnixNano = bytes.littleEndianUInt64(at: 0)
        overflowMeasurements = bytes.littleEndianUInt64(at: 8)
        invalidMeasurements = bytes.littleEndianUInt64(at: 16)
        for metric in try CollectedMetrics.decodeOTLPScopeMetrics(bytes[24...]) {
            let kind: InstrumentKind
            switch metric.kind {
            case .sum(let monotonic, _): kind = monotonic ? .counter : .upDownCounter
            case .gauge: kind = .gauge
            case .histogram: kind = .histogram
            }
            let key = InstrumentKey(name: metric.name, kind: kind, unit: metric.unit, scope: metric.scope)
            if instruments[key] == nil { order.append(key) }
            var streams: [Attributes: Stream] = [:]
            for point in metric.points {
                let aggregate: Aggregate
                switch (point.value, kind) {
                case (.histogram(let h), _): aggregate = .histogram(h)
                case (.number(let v), .gauge): aggregate = .gauge(v)
                case (.number(let v), _): aggregate = .sum(v)
                }
                streams[point.attributes] = Stream(start: point.startTimeUnixNano, aggregate: aggregate)
            }
            instruments[key] = streams
        }
    }
}
