import Synchronization
public import TelemetryFlowCore
public import TelemetryFlowStorage

/// The metrics projection: folds measurement events into a ``MetricAggregator`` and, every collection interval,
/// appends a `metrics_collected` event that exporters send like any other.
///
/// Crash safety: a collection appends its event (which names the last measurement it folded), waits until it is
/// durable, then stores the aggregation state and moves the projection's cursor to that measurement in one
/// metadata transaction. On open, the state is the last checkpoint plus the events after it; collections found
/// after the checkpoint end their interval during the replay exactly where they did before the crash. No
/// measurement is counted twice or lost.
public final class MetricsProjection: Sendable {
    public static let cursorName = "projection.metrics"
    public static let checkpointName = "metrics"

    public let log: EventLog
    public let interval: Duration
    private let state: Mutex<(aggregator: MetricAggregator, position: UInt64)>
    private let task = Mutex<Task<Void, Never>?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let clock: @Sendable () -> UInt64

    /// Opens the projection over `log`, rebuilding its state from the checkpoint and the events after it.
    ///
    /// - Parameter now: wall-clock unix nanoseconds (injected by tests).
    public init(
        log: EventLog, configuration: MetricAggregationConfiguration = MetricAggregationConfiguration(), interval: Duration = .seconds(10),
        now: @escaping @Sendable () -> UInt64 = { wallClockNanos() }
    ) async throws {
        try configuration.validate()
        guard interval > .zero else { throw TelemetryFlowError(.invalidConfiguration, "metrics collection interval must be positive") }
        self.log = log
        self.interval = interval
        self.clock = now
        var aggregator: MetricAggregator
        var position: UInt64
        if let saved = try log.checkpoint(Self.checkpointName), let cursor = log.cursor(Self.cursorName) {
            aggregator = try MetricAggregator(configuration: configuration, state: saved)
            position = cursor
        } else {
            position = try await log.registerCursor(Self.cursorName, startingAt: .beginning)
            aggregator = MetricAggregator(configuration: configuration, startUnixNano: now())
        }
        // Pass 1: collections written after the checkpoint (their intervals end during the replay).
        let checkpointed = position
        var boundaries: [(through: UInt64, time: UInt64)] = []
        try Self.scan(log, after: checkpointed) { batch in
            for event in batch where event.type == .metricsCollected {
                if let (through, time) = CollectedMetrics.header(ofPayload: event.payload), through > checkpointed {
                    boundaries.append((through, time))
                }
            }
        }
        // Pass 2: fold measurements, ending each recovered interval before the first measurement after it.
        var next = 0
        try Self.scan(log, after: checkpointed) { batch in
            for event in batch where (1...4).contains(event.type.rawValue) {
                while next < boundaries.count && boundaries[next].through < event.sequence {
                    aggregator.reset(at: boundaries[next].time)
                    next += 1
                }
                if case .measurement(let m) = try event.decode() { aggregator.fold(m, timeUnixNano: event.timestampUnixNano) }
            }
            position = batch.endSequence
        }
        while next < boundaries.count {
            aggregator.reset(at: boundaries[next].time)
            next += 1
        }
        state = Mutex((aggregator, position))
    }

    /// Hands every batch after `start` to `body`, in order, until the end of the log.
    private static func scan(_ log: EventLog, after start: UInt64, _ body: (EventBatch) throws -> Void) throws {
        var position = start
        while true {
            let batch = try log.read(after: position, maxCount: 4096, maxBytes: 8 << 20)
            if batch.endSequence == position { return }
            try body(batch)
            position = batch.endSequence
        }
    }

    /// Folds every event appended so far that is readable.
    public func catchUp() throws {
        try Self.scan(log, after: state.withLock { $0.position }) { batch in
            state.withLock { s in
                for event in batch where (1...4).contains(event.type.rawValue) {
                    if case .measurement(let m)? = try? event.decode() { s.aggregator.fold(m, timeUnixNano: event.timestampUnixNano) }
                }
                s.position = batch.endSequence
            }
        }
    }

    /// The points a collection now would report (a local query; nothing is appended).
    public func currentMetrics() throws -> [MetricData] {
        try catchUp()
        return state.withLock { $0.aggregator.snapshot(timeUnixNano: clock()) }
    }

    /// Measurements folded into overflow series, and refused ones.
    public var counts: (overflow: UInt64, invalid: UInt64) {
        state.withLock { ($0.aggregator.overflowMeasurements, $0.aggregator.invalidMeasurements) }
    }

    /// Folds every measurement appended before the call (it waits until they are committed), appends a `metrics_collected` event when there are points, waits until it is durable and
    /// checkpoints. Returns what was collected (nil when there was nothing to report).
    @discardableResult
    public func collect() async throws -> CollectedMetrics? {
        _ = try await log.flush()
        try catchUp()
        let now = clock()
        let (collected, checkpoint, position) = state.withLock { s -> (CollectedMetrics, [UInt8], UInt64) in
            let c = s.aggregator.collect(foldedThrough: s.position, timeUnixNano: now)
            return (c, s.aggregator.encodedState(), s.position)
        }
        if !collected.metrics.isEmpty {
            guard log.append(.metricsCollected(collected), timestampUnixNano: now).sequence != nil else {
                throw TelemetryFlowError(.quotaExceeded, "the metrics collection could not be appended: \(log.statistics.dropped)")
            }
            _ = try await log.flush()
        }
        try await log.setCursor(Self.cursorName, to: position, checkpoint: Self.checkpointName, value: checkpoint)
        return collected.metrics.isEmpty ? nil : collected
    }

    /// Collects every ``interval`` until ``stop()``.
    public func start() {
        task.withLock { task in
            guard task == nil else { return }
            task = Task.detached { [self] in
                while !stopping.load(ordering: .relaxed) {
                    try? await Task.sleep(for: interval)
                    if stopping.load(ordering: .relaxed) { break }
                    _ = try? await collect()
                }
            }
        }
    }

    /// Stops the periodic collection (without a final one; call ``collect()`` for that).
    public func stop() async {
        stopping.store(true, ordering: .relaxed)
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
    }
}
