// MARK: OTLP protobuf

extension CollectedMetrics {
    /// Writes the metrics as OTLP `ScopeMetrics` messages in `field` (field 2 of `ResourceMetrics`), one per scope
    /// in first-seen order.
    package func encodeOTLPScopeMetrics(field: UInt32 = 2, into w: inout ProtobufWriter) {
        var order: [InstrumentationScope] = []
        var byScope: [InstrumentationScope: [Int]] = [:]
        for (i, metric) in metrics.enumerated() {
            if byScope[metric.scope] == nil { order.append(metric.scope) }
            byScope[metric.scope, default: []].append(i)
        }
        for scope in order {
            w.writeMessageField(field) { w in
                w.writeMessageField(1) { w in
                    w.writeStringField(1, scope.name)
                    w.writeStringField(2, scope.version)
                }
                for i in byScope[scope]! { metrics[i].encodeOTLP(field: 2, into: &w) }
            }
        }
    }

    /// Reads `ScopeMetrics` messages written by ``encodeOTLPScopeMetrics(field:into:)``.
    package static func decodeOTLPScopeMetrics(_ bytes: ArraySlice<UInt8>, field: UInt32 = 2) throws -> [MetricData] {
        var out: [MetricData] = []
        var r = ProtobufReader(bytes)
        while let (f, v) = try r.next() {
            guard f == field else { continue }
            var scope = InstrumentationScope(name: "")
            var metricBytes: [ArraySlice<UInt8>] = []
            var sr = ProtobufReader(try v.asBytes())
            while let (sf, sv) = try sr.next() {
                switch sf {
                case 1:
                    var ir = ProtobufReader(try sv.asBytes())
                    while let (inf, iv) = try ir.next() {
                        if inf == 1 { scope.name = try iv.asString() } else if inf == 2 { scope.version = try iv.asString() }
                    }
                case 2: metricBytes.append(try sv.asBytes())
                default: break
                }
            }
            for m in metricBytes { out.append(try MetricData(otlp: m, scope: scope)) }
        }
        return out
    }
}

extension MetricData {
    func encodeOTLP(field: UInt32, into w: inout ProtobufWriter) {
        w.writeMessageField(field) { w in
            w.writeStringField(1, name)
            w.writeStringField(2, description)
            w.writeStringField(3, unit)
            switch kind {
            case .gauge:
                w.writeMessageField(5) { w in for p in points { p.encodeNumberOTLP(into: &w) } }
            case .sum(let monotonic, let temporality):
                w.writeMessageField(7) { w in
                    for p in points { p.encodeNumberOTLP(into: &w) }
                    w.writeVarintField(2, UInt64(temporality.rawValue))
                    w.writeBoolField(3, monotonic)
                }
            case .histogram(let temporality):
                w.writeMessageField(9) { w in
                    for p in points { p.encodeHistogramOTLP(into: &w) }
                    w.writeVarintField(2, UInt64(temporality.rawValue))
                }
            }
        }
    }

    init(otlp bytes: ArraySlice<UInt8>, scope: InstrumentationScope) throws {
        self.init(name: "", scope: scope, kind: .gauge, points: [])
        var r = ProtobufReader(bytes)
        while let (f, v) = try r.next() {
            switch f {
            case 1: name = try v.asString()
            case 2: description = try v.asString()
            case 3: unit = try v.asString()
            case 5, 7, 9:
                var temporality = AggregationTemporality.cumulative
                var monotonic = false
                var dr = ProtobufReader(try v.asBytes())
                while let (df, dv) = try dr.next() {
                    switch df {
                    case 1: points.append(try MetricPoint(otlp: try dv.asBytes(), histogram: f == 9))
                    case 2: temporality = AggregationTemporality(rawValue: UInt8(truncatingIfNeeded: try dv.asVarint())) ?? .cumulative
                    case 3: monotonic = try dv.asVarint() != 0
                    default: break
                    }
                }
                kind = f == 5 ? .gauge : f == 7 ? .sum(monotonic: monotonic, temporality: temporality) : .histogram(temporality: temporality)
            default: break
            }
        }
    }
}

extension MetricPoint {
    func encodeNumberOTLP(into w: inout ProtobufWriter) {
        w.writeMessageField(1) { w in
            w.writeFixed64Field(2, startTimeUnixNano)
            w.writeFixed64Field(3, timeUnixNano)
            if case .number(let n) = value {
                switch n {
                case .double(let d): w.writeDoubleField(4, d, always: true)
                case .int(let i): w.writeFixed64Field(6, UInt64(bitPattern: i), always: true)
                }
            }
            attributes.encodeOTLP(field: 7, into: &w)
        }
    }

    func encodeHistogramOTLP(into w: inout ProtobufWriter) {
        guard case .histogram(let h) = value else { return }
        w.writeMessageField(1) { w in
            w.writeFixed64Field(2, startTimeUnixNano)
            w.writeFixed64Field(3, timeUnixNano)
            w.writeFixed64Field(4, h.count, always: true)
            w.writeDoubleField(5, h.sum, always: true)
            w.writeMessageField(6) { w in for c in h.bucketCounts { w.writeRawFixed64(c) } }
            if !h.bounds.isEmpty { w.writeMessageField(7) { w in for b in h.bounds { w.writeRawFixed64(b.bitPattern) } } }
            attributes.encodeOTLP(field: 9, into: &w)
            if h.count > 0 {
                w.writeDoubleField(11, h.min, always: true)
                w.writeDoubleField(12, h.max, always: true)
            }
        }
    }

    init(otlp bytes: ArraySlice<UInt8>, histogram: Bool) throws {
        var attributes = Attributes()
        var start: UInt64 = 0, time: UInt64 = 0
        var number = MetricValue.int(0)
        var h = HistogramPoint(bounds: [], bucketCounts: [])
        var r = ProtobufReader(bytes)
        func packedFixed64(_ v: ProtobufReader.Value) throws -> [UInt64] {
            let b = try v.asBytes()
            guard b.count % 8 == 0 else { throw TelemetryFlowError(.decoding, "packed fixed64 field has \(b.count) bytes") }
            return stride(from: 0, to: b.count, by: 8).map { b.littleEndianUInt64(at: $0) }
        }
        while let (f, v) = try r.next() {
            switch (histogram, f) {
            case (_, 2): start = try v.asFixed64()
            case (_, 3): time = try v.asFixed64()
            case (false, 4): number = .double(Double(bitPattern: try v.asFixed64()))
            case (false, 6): number = .int(Int64(bitPattern: try v.asFixed64()))
            case (false, 7), (true, 9): try attributes.appendOTLPKeyValue(try v.asBytes())
            case (true, 4): h.count = try v.asFixed64()
            case (true, 5): h.sum = Double(bitPattern: try v.asFixed64())
            case (true, 6): h.bucketCounts = try packedFixed64(v)
            case (true, 7): h.bounds = try packedFixed64(v).map { Double(bitPattern: $0) }
            case (true, 11): h.min = Double(bitPattern: try v.asFixed64())
            case (true, 12): h.max = Double(bitPattern: try v.asFixed64())
            default: break
            }
        }
        self.init(attributes: attributes, startTimeUnixNano: start, timeUnixNano: time, value: histogram ? .histogram(h) : .number(number))
    }
}

// MARK: OTLP JSON

extension MetricData {
    /// Writes an OTLP `Metric` object.
    package func writeOTLPJSON(into j: inout JSONWriter) {
        j.object { j in
            j.field("name", name)
            if !description.isEmpty { j.field("description", description) }
            if !unit.isEmpty { j.field("unit", unit) }
            switch kind {
            case .gauge:
                j.key("gauge")
                j.object { j in writePoints(&j) }
            case .sum(let monotonic, let temporality):
                j.key("sum")
                j.object { j in
                    writePoints(&j)
                    j.field("aggregationTemporality", Int64(temporality.rawValue))
                    j.field("isMonotonic", monotonic)
                }
            case .histogram(let temporality):
                j.key("histogram")
                j.object { j in
                    writePoints(&j)
                    j.field("aggregationTemporality", Int64(temporality.rawValue))
                }
            }
        }
    }

    private func writePoints(_ j: inout JSONWriter) {
        j.key("dataPoints")
        j.array { j in
            for p in points {
                j.object { j in
                    p.attributes.writeOTLPJSON(into: &j)
                    j.field("startTimeUnixNano", String(p.startTimeUnixNano))
                    j.field("timeUnixNano", String(p.timeUnixNano))
                    switch p.value {
                    case .number(.int(let i)): j.field("asInt", String(i))
                    case .number(.double(let d)): j.field("asDouble", d)
                    case .histogram(let h):
                        j.field("count", String(h.count))
                        j.field("sum", h.sum)
                        j.key("bucketCounts")
                        j.array { j in for c in h.bucketCounts { j.value(String(c)) } }
                        j.key("explicitBounds")
                        j.array { j in for b in h.bounds { j.value(b) } }
                        if h.count > 0 {
                            j.field("min", h.min)
                            j.field("max", h.max)
                        }
                    }
                }
            }
        }
    }
}
