/// How the metrics projection aggregates.
public struct MetricAggregationConfiguration: Sendable, Hashable {
    /// OpenTelemetry's default explicit bucket boundaries.
    public static let defaultBounds: [Double] = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]

    public var temporality: AggregationTemporality = .cumulative
    /// Histogram boundaries for instruments not named in ``histogramBoundsByInstrument``.
    public var histogramBounds: [Double] = defaultBounds
    public var histogramBoundsByInstrument: [String: [Double]] = [:]
    /// Most attribute sets per instrument; measurements of further sets go to one overflow series with the
    /// attribute `otel.metric.overflow = true` and are counted.
    public var cardinalityLimit = 2000

    public init() {}

    public func validate() throws {
        for bounds in [histogramBounds] + Array(histogramBoundsByInstrument.values) {
            guard zip(bounds, bounds.dropFirst()).allSatisfy({ $0 < $1 }), bounds.allSatisfy(\.isFinite) else {
                throw TelemetryFlowError(.invalidConfiguration, "histogram bounds \(bounds) must be finite and strictly increasing")
            }
        }
        guard cardinalityLimit >= 1 else {
            throw TelemetryFlowError(.invalidConfiguration, "cardinalityLimit must be at least 1 (got \(cardinalityLimit))")
        }
    }
}
