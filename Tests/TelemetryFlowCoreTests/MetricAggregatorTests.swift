import Testing
@testable import TelemetryFlowCore

@Suite struct MetricAggregatorTests {
    func m(_ kind: InstrumentKind, _ name: String, _ value: MetricValue, _ attributes: Attributes = [:]) -> MetricMeasurement {
        MetricMeasurement(kind: kind, name: name, attributes: attributes, value: value)
    }

    func point(_ metrics: [MetricData], _ name: String) -> MetricPoint? { metrics.first { $0.name == name }?.points.first }

    @Test func cumulativeSumsKeepGrowingAndGaugesKeepTheLastValue() {
        var a = MetricAggregator(configuration: MetricAggregationConfiguration(), startUnixNano: 10)
        a.fold(m(.counter, "c", .int(2)), timeUnixNano: 11)
        a.fold(m(.counter, "c", .int(3)), timeUnixNano: 12)
        a.fold(m(.gauge, "g", .double(5)), timeUnixNano: 12)
        a.fold(m(.gauge, "g", .double(7)), timeUnixNano: 13)
        a.fold(m(.upDownCounter, "u", .int(5)), timeUnixNano: 13)
        a.fold(m(.upDownCounter, "u", .int(-8)), timeUnixNano: 13)
        let first = a.collect(foldedThrough: 6, timeUnixNano: 20)
        #expect(point(first.metrics, "c")?.value == .number(.int(5)) && point(first.metrics, "c")?.startTimeUnixNano == 11)
        #expect(point(first.metrics, "g")?.value == .number(.double(7)), "a gauge is never accumulated")
        #expect(point(first.metrics, "u")?.value == .number(.int(-3)))
        #expect(first.metrics.first { $0.name == "c" }?.kind == .sum(monotonic: true, temporality: .cumulative))
        a.fold(m(.counter, "c", .int(1)), timeUnixNano: 21)
        let second = a.collect(foldedThrough: 7, timeUnixNano: 30)
        #expect(point(second.metrics, "c")?.value == .number(.int(6)) && point(second.metrics, "c")?.startTimeUnixNano == 11)
        #expect(point(second.metrics, "g")?.value == .number(.double(7)))
    }

    @Test func deltaStartsOverEachIntervalAndReportsOnlyUpdatedSeries() {
        var configuration = MetricAggregationConfiguration()
        configuration.temporality = .delta
        var a = MetricAggregator(configuration: configuration, startUnixNano: 100)
        a.fold(m(.counter, "c", .int(2)), timeUnixNano: 101)
        a.fold(m(.gauge, "g", .int(9)), timeUnixNano: 101)
        let first = a.collect(foldedThrough: 2, timeUnixNano: 200)
        #expect(point(first.metrics, "c")?.value == .number(.int(2)) && point(first.metrics, "c")?.startTimeUnixNano == 100)
        a.fold(m(.counter, "c", .int(4)), timeUnixNano: 201)
        let second = a.collect(foldedThrough: 3, timeUnixNano: 300)
        #expect(point(second.metrics, "c")?.value == .number(.int(4)) && point(second.metrics, "c")?.startTimeUnixNano == 200)
        #expect(point(second.metrics, "g") == nil, "an unchanged gauge is not repeated in delta")
    }

    @Test func histogramsUseDefaultOrConfiguredBoundsAndRefuseNaN() {
        var configuration = MetricAggregationConfiguration()
        configuration.histogramBoundsByInstrument["small"] = [1, 2]
        var a = MetricAggregator(configuration: configuration)
        for v in [0.0, 3, 5, 10_001] { a.fold(m(.histogram, "latency", .double(v)), timeUnixNano: 1) }
        for v in [0.5, 1.5, 2.5] { a.fold(m(.histogram, "small", .double(v)), timeUnixNano: 1) }
        a.fold(m(.histogram, "latency", .double(.nan)), timeUnixNano: 1)
        a.fold(m(.counter, "c", .int(-1)), timeUnixNano: 1)
        let metrics = a.collect(foldedThrough: 1, timeUnixNano: 2).metrics
        guard case .histogram(let h)? = point(metrics, "latency")?.value, case .histogram(let s)? = point(metrics, "small")?.value else {
            Issue.record("histograms missing")
            return
        }
        #expect(h.bounds == MetricAggregationConfiguration.defaultBounds && h.count == 4 && h.sum == 10_009)
        #expect(h.bucketCounts[0] == 1 && h.bucketCounts[1] == 2 && h.bucketCounts.last == 1 && h.min == 0 && h.max == 10_001)
        #expect(s.bucketCounts == [1, 1, 1])
        #expect(a.invalidMeasurements == 2, "NaN and a negative counter increment are refused and counted")
    }

    @Test func cardinalityLimitSendsNewSeriesToTheOverflowSeries() {
        var configuration = MetricAggregationConfiguration()
        configuration.cardinalityLimit = 3
        var a = MetricAggregator(configuration: configuration)
        for i in 0..<10 { a.fold(m(.counter, "c", .int(1), ["i": .int(Int64(i))]), timeUnixNano: 1) }
        a.fold(m(.counter, "c", .int(1), ["i": .int(0)]), timeUnixNano: 1)
        let points = a.collect(foldedThrough: 1, timeUnixNano: 2).metrics[0].points
        #expect(points.count == 4 && a.overflowMeasurements == 7)
        let overflow = points.first { $0.attributes["otel.metric.overflow"] == .bool(true) }
        #expect(overflow?.value == .number(.int(7)))
        #expect(points.first { $0.attributes["i"] == .int(0) }?.value == .number(.int(2)))
    }

    @Test func stateSurvivesACheckpointRoundTrip() throws {
        var a = MetricAggregator(configuration: MetricAggregationConfiguration(), startUnixNano: 5)
        a.fold(m(.counter, "c", .int(2), ["r": "/a"]), timeUnixNano: 6)
        a.fold(m(.counter, "d", .double(0.5)), timeUnixNano: 6)
        a.fold(m(.gauge, "g", .int(3)), timeUnixNano: 7)
        a.fold(m(.histogram, "h", .double(42)), timeUnixNano: 7)
        let restored = try MetricAggregator(configuration: MetricAggregationConfiguration(), state: a.encodedState())
        #expect(restored.snapshot(timeUnixNano: 9) == a.snapshot(timeUnixNano: 9))
        #expect(restored.lastCollectionUnixNano == 5)
    }

    func stored(_ m: MetricMeasurement, sequence: UInt64, time: UInt64) throws -> StoredEvent {
        let record = EventCodec.encode(.measurement(m), timestampUnixNano: time, sequence: sequence)
        let envelope = try record.withUnsafeBytes { try EventCodec.envelope(of: $0, sequence: sequence) }
        return StoredEvent(sequence: sequence, type: envelope.type, timestampUnixNano: time, record: record[...], payload: record[envelope.payload])
    }

    @Test func foldingStoredRecordsGivesWhatFoldingDecodedMeasurementsGives() throws {
        var configuration = MetricAggregationConfiguration()
        configuration.cardinalityLimit = 3
        configuration.histogramBoundsByInstrument["h"] = [1, 10]
        var measurements: [MetricMeasurement] = []
        for i in 0..<40 {
            measurements.append(m(.counter, "c", .int(Int64(i % 3)), ["route": .string("/r\(i % 5)")]))
            measurements.append(m(.upDownCounter, "u", .int(Int64(i % 2 == 0 ? 2 : -1)), ["a": 1, "b": "x"]))
            measurements.append(m(.upDownCounter, "u", .int(1), ["b": "x", "a": 1]))  // same series, other order
            measurements.append(m(.gauge, "g", .double(Double(i)), [:]))
            measurements.append(m(.histogram, "h", .double(Double(i % 12)), ["k": true]))
        }
        measurements.append(m(.counter, "c", .int(-4), ["route": "/r0"]))  // refused, on a cached series
        measurements.append(m(.gauge, "g", .double(.nan)))
        var decoded = MetricAggregator(configuration: configuration, startUnixNano: 1)
        var fromBytes = MetricAggregator(configuration: configuration, startUnixNano: 1)
        for (i, measurement) in measurements.enumerated() {
            decoded.fold(measurement, timeUnixNano: UInt64(10 + i))
            fromBytes.fold(try stored(measurement, sequence: UInt64(i + 1), time: UInt64(10 + i)))
        }
        #expect(fromBytes.snapshot(timeUnixNano: 99) == decoded.snapshot(timeUnixNano: 99))
        #expect(fromBytes.overflowMeasurements == decoded.overflowMeasurements && fromBytes.overflowMeasurements > 0)
        #expect(fromBytes.invalidMeasurements == 2 && decoded.invalidMeasurements == 2)
        #expect(fromBytes.seen.count > 0, "later measurements of a series were folded from their bytes")
        // A delta interval forgets the series and the table with them.
        var delta = MetricAggregationConfiguration()
        delta.temporality = .delta
        var d = MetricAggregator(configuration: delta, startUnixNano: 1)
        d.fold(try stored(m(.counter, "c", .int(2)), sequence: 1, time: 2))
        d.fold(try stored(m(.counter, "c", .int(3)), sequence: 2, time: 3))
        #expect(point(d.collect(foldedThrough: 2, timeUnixNano: 4).metrics, "c")?.value == .number(.int(5)))
        #expect(d.seen.count == 0)
        d.fold(try stored(m(.counter, "c", .int(7)), sequence: 3, time: 5))
        #expect(point(d.collect(foldedThrough: 3, timeUnixNano: 6).metrics, "c")?.value == .number(.int(7)))
    }

    /// The series table is shared by copies of an aggregator until one of them changes it.
    @Test func aCopiedAggregatorKeepsItsOwnSeriesTable() throws {
        var original = MetricAggregator(configuration: MetricAggregationConfiguration(), startUnixNano: 1)
        original.fold(try stored(m(.counter, "c", .int(1), ["k": "a"]), sequence: 1, time: 2))
        var copy = original
        // A new series in the copy, then many (the table grows) — none of it reaches the original.
        for i in 0..<200 { copy.fold(try stored(m(.counter, "c", .int(1), ["k": .string("s\(i)")]), sequence: UInt64(2 + i), time: 3)) }
        original.fold(try stored(m(.counter, "c", .int(5), ["k": "a"]), sequence: 2, time: 3))
        #expect(original.seen.count == 1 && copy.seen.count == 201)
        #expect(point(original.snapshot(timeUnixNano: 9), "c")?.value == .number(.int(6)))
        #expect(original.seriesCount == 1 && copy.seriesCount == 201)
        // Clearing a shared table on a delta reset leaves the other copy's intact.
        var delta = MetricAggregationConfiguration()
        delta.temporality = .delta
        var d = MetricAggregator(configuration: delta, startUnixNano: 1)
        d.fold(try stored(m(.counter, "c", .int(2)), sequence: 1, time: 2))
        let kept = d
        _ = d.collect(foldedThrough: 1, timeUnixNano: 4)
        #expect(d.seen.count == 0 && kept.seen.count == 1)
    }

    @Test func aPayloadThatDoesNotDecodeIsCountedNotFolded() throws {
        var a = MetricAggregator(configuration: MetricAggregationConfiguration())
        let good = try stored(m(.counter, "c", .int(1)), sequence: 1, time: 1)
        var bytes = Array(good.payload)
        bytes[bytes.count - 9] = 7  // an unknown value tag
        let bad = StoredEvent(sequence: 2, type: good.type, timestampUnixNano: 1, record: good.record, payload: bytes[...])
        a.fold(bad)
        a.fold(good)
        a.fold(bad)  // now the series is known: the tag is still checked
        #expect(a.invalidMeasurements == 2)
        #expect(point(a.snapshot(timeUnixNano: 2), "c")?.value == .number(.int(1)))
    }
}
