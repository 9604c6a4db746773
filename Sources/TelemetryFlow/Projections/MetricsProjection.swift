public import ServiceLifecycle
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
///
/// The projection is a swift-service-lifecycle `Service`: ``run()`` collects every ``interval`` on the injected
/// clock and, on graceful shutdown, collects once more so that the last interval is not lost.
public final class MetricsProjection: Service, Sendable {
    public static let cursorName = "projection.metrics"
    public static let checkpointName = "metrics"

    public let log: EventLog
    public let interval: Duration
    private let state: Locked<(aggregator: MetricAggregator, position: UInt64)>
    private let task = Locked<Task<Void, Never>?>(nil)
    /// 0 while running, 1 once a graceful shutdown began.
    private let shutdown = SequenceWatch(closedMessage: "the metrics projection stopped")
    private let timer: TimerClock
    private let wallClock: @Sendable () -> UInt64

    /// Opens the projection over `log`, rebuilding its state from the checkpoint and the events after it.
    ///
    /// - Parameters:
    ///   - interval: how often ``run()`` collects (default 10 s).
    ///   - clock: the clock of the collection interval; tests pass a manual one.
    ///   - now: the wall-clock time in unix nanoseconds that points are stamped with.
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` for an invalid configuration or interval; the
    ///   log's errors while it reads the checkpoint and the events after it.
    public init<C: Clock>(
        log: EventLog, configuration: MetricAggregationConfiguration = MetricAggregationConfiguration(), interval: Duration = .seconds(10),
        clock: C, now: @escaping @Sendable () -> UInt64
    ) async throws where C.Duration == Duration {
        try configuration.validate()
        guard interval > .zero else { throw TelemetryFlowError(.invalidConfiguration, "metrics collection interval must be positive") }
        self.log = log
        self.interval = interval
        self.timer = TimerClock(clock)
        self.wallClock = now
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
        try Self.scan(log, after: checkpointed, types: [.metricsCollected]) { batch in
            for event in batch where event.type == .metricsCollected {
                if let (through, time) = event.collectionHeader, through > checkpointed {
                    boundaries.append((through, time))
                }
            }
        }
        // Pass 2: fold measurements, ending each recovered interval before the first measurement after it.
        var next = 0
        try Self.scan(log, after: checkpointed, types: .measurements) { batch in
            for event in batch where event.isMeasurement {
                while next < boundaries.count && boundaries[next].through < event.sequence {
                    aggregator.reset(at: boundaries[next].time)
                    next += 1
                }
                aggregator.fold(event)
            }
            position = batch.endSequence
        }
        while next < boundaries.count {
            aggregator.reset(at: boundaries[next].time)
            next += 1
        }
        state = Locked((aggregator, position))
    }

    /// The same on the system's clocks.
    public convenience init(
        log: EventLog, configuration: MetricAggregationConfiguration = MetricAggregationConfiguration(), interval: Duration = .seconds(10)
    ) async throws {
        try await self.init(log: log, configuration: configuration, interval: interval, clock: ContinuousClock(), now: { wallClockNanos() })
    }

    /// Hands every batch of events of `types` after `start` to `body`, in order, until the end of the log.
    private static func scan(_ log: EventLog, after start: UInt64, types: EventTypeSet, _ body: (EventBatch) throws -> Void) throws {
        var position = start
        while true {
            let batch = try log.read(after: position, maxCount: 4096, maxBytes: 8 << 20, types: types)
            if batch.endSequence == position { return }
            try body(batch)
            position = batch.endSequence
        }
    }

    /// Folds every event appended so far that is readable.
    public func catchUp() throws {
        try Self.scan(log, after: state.withLock { $0.position }, types: .measurements) { batch in
            state.withLock { s in
                for event in batch { s.aggregator.fold(event) }
                s.position = batch.endSequence
            }
        }
    }

    /// The points a collection now would report (a local query; nothing is appended).
    public func currentMetrics() throws -> [MetricData] {
        try catchUp()
        return state.withLock { $0.aggregator.snapshot(timeUnixNano: wallClock()) }
    }

    /// Sets the description exported with an instrument's points.
    package func describe(instrument name: String, as description: String) {
        guard !description.isEmpty else { return }
        state.withLock { $0.aggregator.descriptions[name] = description }
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
        let now = wallClock()
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

    /// Collects every ``interval`` until the task is cancelled or a graceful shutdown begins; then collects once
    /// more. A failed collection is retried at the next interval (its measurements stay folded).
    public func run() async throws {
        await withGracefulShutdownHandler {
            await collectEveryInterval()
        } onGracefulShutdown: { [shutdown] in
            shutdown.publish(1)
        }
        if shutdown.value > 0 && !Task.isCancelled { _ = try? await collect() }
    }

    private func collectEveryInterval() async {
        let (timer, shutdown, interval) = (self.timer, self.shutdown, self.interval)
        var next = timer.now() + interval
        while shutdown.value == 0 && !Task.isCancelled {
            let deadline = next
            let woke = await firstOf([
                { (try? await timer.sleep(until: deadline)) != nil ? .deadline : .cancelled },
                { (try? await shutdown.wait(after: 0)) != nil ? .shutdown : .cancelled },
            ])
            guard woke == .deadline else { return }
            _ = try? await collect()
            next += interval
            // After a long stall, the next collection is one interval from now, not a burst of missed ones.
            if next <= timer.now() { next = timer.now() + interval }
        }
    }

    /// Starts ``run()`` in a task of its own, for code that does not use a `ServiceGroup`.
    public func start() {
        task.withLock { task in
            guard task == nil else { return }
            task = Task.detached { [self] in try? await run() }
        }
    }

    /// Begins a graceful shutdown (which collects once more) and waits until the task of ``start()`` returned.
    public func stop() async {
        shutdown.publish(1)
        let running = task.withLock { $0 }
        await running?.value
    }
}
