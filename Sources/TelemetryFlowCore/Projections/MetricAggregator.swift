/// Folds metric measurements into sums, last-value gauges and histograms per instrument and attribute set
/// (the read model behind `metrics_collected` events). A value type: the projection checkpoints it.
///
/// Two ways in: ``fold(_:timeUnixNano:)`` takes a decoded measurement; ``fold(_:)`` takes a stored event and,
/// for a series it has seen in this interval, folds from the record's bytes without decoding them (a
/// measurement's payload is its series — instrument, unit, scope, attributes — then its value; identical series
/// bytes always decode to the same series).
package struct MetricAggregator: Sendable {
    struct InstrumentKey: Hashable, Sendable {
        var name: String
        var kind: InstrumentKind
        var unit: String
        var scope: InstrumentationScope
    }

    /// One series: its start time and its aggregate (a sum or last value in `value`, or a histogram).
    struct Stream: Sendable {
        var start: UInt64
        var kind: InstrumentKind
        var value: MetricValue
        var histogram: HistogramPoint?
    }

    package let configuration: MetricAggregationConfiguration
    /// Instrument descriptions by name, as the client's instruments declare them (exported with the points; not
    /// part of the checkpoint: the instruments declare them again after a restart).
    package var descriptions: [String: String] = [:]
    /// Every instrument's series, as indexes into ``streams``.
    var instruments: [InstrumentKey: [Attributes: Int]] = [:]
    var order: [InstrumentKey] = []
    var streams: [Stream] = []
    /// Series bytes of stored measurements → their stream (cleared with the streams).
    var seen = SeriesTable()
    /// The end of the last collection (start of the current delta interval).
    package private(set) var lastCollectionUnixNano: UInt64 = 0
    /// Measurements folded into overflow series because an instrument hit the cardinality limit.
    package private(set) var overflowMeasurements: UInt64 = 0
    /// Measurements refused: NaN or infinite values, negative counter increments, payloads that do not decode.
    package private(set) var invalidMeasurements: UInt64 = 0

    static let overflowAttributes: Attributes = ["otel.metric.overflow": true]

    package init(configuration: MetricAggregationConfiguration, startUnixNano: UInt64 = 0) {
        self.configuration = configuration
        lastCollectionUnixNano = startUnixNano
    }

    /// Number of series held.
    package var seriesCount: Int { streams.count }

    /// Folds one measurement recorded at `timeUnixNano`.
    package mutating func fold(_ m: MetricMeasurement, timeUnixNano: UInt64) {
        _ = foldDecoded(m, timeUnixNano: timeUnixNano)
    }

    /// Folds one stored event if it is a measurement (other events are ignored). A payload that does not decode
    /// is counted as invalid.
    package mutating func fold(_ event: StoredEvent) {
        guard event.isMeasurement else { return }
        let kind = event.type.rawValue
        // Only the look-up runs inside the closure: the aggregator is not mutated there.
        let known = event.withMeasurementSeries { series, value -> (SeriesTable.Entry, MetricValue)? in
            guard let value, let entry = seen.find(series, kind: kind) else { return nil }
            return (entry, value)
        }
        if let (entry, value) = known ?? nil {
            apply(value, to: Int(entry.stream), overflow: entry.overflow)
            return
        }
        guard let m = try? event.measurement() else {
            invalidMeasurements += 1
            return
        }
        guard let (stream, overflow) = foldDecoded(m, timeUnixNano: event.timestampUnixNano) else { return }
        _ = event.withMeasurementSeries { series, _ in seen.insert(series, kind: kind, stream: stream, overflow: overflow) }
    }

    /// Folds a decoded measurement; returns its stream and whether it is an overflow series (nil when refused).
    private mutating func foldDecoded(_ m: MetricMeasurement, timeUnixNano: UInt64) -> (stream: Int, overflow: Bool)? {
        guard m.value.isValid(for: m.kind) else {
            invalidMeasurements += 1
            return nil
        }
        let key = InstrumentKey(name: m.name, kind: m.kind, unit: m.unit, scope: m.scope)
        if instruments[key] == nil {
            instruments[key] = [:]
            order.append(key)
        }
        var attributes = m.attributes.sortedByKey()
        var overflow = false
        if instruments[key]![attributes] == nil && instruments[key]!.count >= configuration.cardinalityLimit {
            attributes = Self.overflowAttributes
            overflow = true
        }
        let index: Int
        if let existing = instruments[key]![attributes] {
            index = existing
        } else {
            index = streams.count
            let start = configuration.temporality == .delta ? lastCollectionUnixNano : timeUnixNano
            streams.append(empty(for: key, start: start))
            instruments[key]![attributes] = index
        }
        apply(m.value, to: index, overflow: overflow)
        return (index, overflow)
    }

    @inline(__always)
    private mutating func apply(_ value: MetricValue, to index: Int, overflow: Bool) {
        guard value.isValid(for: streams[index].kind) else {
            invalidMeasurements += 1
            return
        }
        if overflow { overflowMeasurements += 1 }
        switch streams[index].kind {
        case .counter, .upDownCounter: streams[index].value = Self.add(streams[index].value, value)
        case .gauge: streams[index].value = value
        case .histogram: streams[index].histogram!.record(value.asDouble)
        }
    }

    private func empty(for key: InstrumentKey, start: UInt64) -> Stream {
        let histogram = key.kind == .histogram
            ? HistogramPoint(bounds: configuration.histogramBoundsByInstrument[key.name] ?? configuration.histogramBounds) : nil
        return Stream(start: start, kind: key.kind, value: .int(0), histogram: histogram)
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
            let points = streams.sorted { $0.key.description < $1.key.description }.map { attributes, index in
                let stream = self.streams[index]
                let value: MetricPoint.Value = stream.histogram.map { .histogram($0) } ?? .number(stream.value)
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
            streams.removeAll(keepingCapacity: true)
            seen.removeAll()
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
            var series = instruments[key] ?? [:]
            for point in metric.points {
                var stream = Stream(start: point.startTimeUnixNano, kind: kind, value: .int(0), histogram: nil)
                switch point.value {
                case .histogram(let h) where kind == .histogram: stream.histogram = h
                case .number(let v) where kind != .histogram: stream.value = v
                default: throw TelemetryFlowError(.decoding, "metrics checkpoint: a point of \(metric.name) does not match its kind")
                }
                if let existing = series[point.attributes] {
                    streams[existing] = stream
                } else {
                    series[point.attributes] = streams.count
                    streams.append(stream)
                }
            }
            instruments[key] = series
        }
    }
}
