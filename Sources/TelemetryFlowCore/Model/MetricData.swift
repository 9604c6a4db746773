/// OTLP aggregation temporality (the numbers are OTLP's enum values).
public enum AggregationTemporality: UInt8, Sendable, Hashable, CaseIterable {
    case delta = 1
    case cumulative = 2
}

/// One histogram data point with explicit bucket boundaries.
public struct HistogramPoint: Sendable, Hashable {
    public var count: UInt64
    public var sum: Double
    public var min: Double
    public var max: Double
    /// Upper bounds of the buckets; there is one more bucket than bounds (the overflow bucket).
    public var bounds: [Double]
    public var bucketCounts: [UInt64]

    public init(count: UInt64 = 0, sum: Double = 0, min: Double = .infinity, max: Double = -.infinity, bounds: [Double], bucketCounts: [UInt64]? = nil) {
        self.count = count
        self.sum = sum
        self.min = min
        self.max = max
        self.bounds = bounds
        self.bucketCounts = bucketCounts ?? Array(repeating: 0, count: bounds.count + 1)
    }

    /// Adds one value (the bucket is the first whose bound is ≥ the value, as OTLP defines).
    public mutating func record(_ value: Double) {
        var low = 0, high = bounds.count
        while low < high {
            let mid = (low + high) / 2
            if value <= bounds[mid] { high = mid } else { low = mid + 1 }
        }
        bucketCounts[low] &+= 1
        count &+= 1
        sum += value
        if value < min { min = value }
        if value > max { max = value }
    }

    /// Adds another point with the same bounds.
    public mutating func merge(_ other: HistogramPoint) {
        for i in bucketCounts.indices where i < other.bucketCounts.count { bucketCounts[i] &+= other.bucketCounts[i] }
        count &+= other.count
        sum += other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
    }
}

/// One exported data point of a metric stream.
public struct MetricPoint: Sendable, Hashable {
    public enum Value: Sendable, Hashable {
        case number(MetricValue)
        case histogram(HistogramPoint)
    }

    public var attributes: Attributes
    public var startTimeUnixNano: UInt64
    public var timeUnixNano: UInt64
    public var value: Value

    public init(attributes: Attributes, startTimeUnixNano: UInt64, timeUnixNano: UInt64, value: Value) {
        self.attributes = attributes
        self.startTimeUnixNano = startTimeUnixNano
        self.timeUnixNano = timeUnixNano
        self.value = value
    }
}

/// One metric stream as collected: a sum, a last-value gauge or a histogram.
public struct MetricData: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case sum(monotonic: Bool, temporality: AggregationTemporality)
        case gauge
        case histogram(temporality: AggregationTemporality)
    }

    public var name: String
    public var description: String
    public var unit: String
    public var scope: InstrumentationScope
    public var kind: Kind
    public var points: [MetricPoint]

    public init(name: String, description: String = "", unit: String = "", scope: InstrumentationScope, kind: Kind, points: [MetricPoint]) {
        self.name = name
        self.description = description
        self.unit = unit
        self.scope = scope
        self.kind = kind
        self.points = points
    }
}

/// What one collection of the metrics projection produced; stored as a `metrics_collected` event.
public struct CollectedMetrics: Sendable, Hashable {
    /// Every measurement event with a sequence up to this one is included (and none after it).
    public var foldedThrough: UInt64
    public var timeUnixNano: UInt64
    public var metrics: [MetricData]

    public init(foldedThrough: UInt64, timeUnixNano: UInt64, metrics: [MetricData]) {
        self.foldedThrough = foldedThrough
        self.timeUnixNano = timeUnixNano
        self.metrics = metrics
    }

    /// Number of data points over all metrics.
    public var pointCount: Int { metrics.reduce(0) { $0 + $1.points.count } }
}
