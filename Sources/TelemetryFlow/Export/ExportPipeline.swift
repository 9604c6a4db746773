import Synchronization
public import TelemetryFlowCore
public import TelemetryFlowStorage

/// What one exporter has done so far.
public struct ExporterStatus: Sendable, Hashable {
    public var name: String
    public var plugin: String
    /// The exporter's durable cursor position: every event up to it was handled.
    public var cursor: UInt64
    /// Events sent and accepted (partially accepted batches count their whole size here).
    public var exportedEvents: UInt64 = 0
    public var exportedBatches: UInt64 = 0
    /// Items the backend rejected in partial successes (never retried).
    public var rejectedItems: UInt64 = 0
    /// Retryable failures, each followed by a backoff.
    public var retries: UInt64 = 0
    public var deadLetteredBatches: UInt64 = 0
    public var deadLetteredEvents: UInt64 = 0
    /// Events skipped because the exporter does not take their signal.
    public var skippedEvents: UInt64 = 0
    public var consecutiveFailures = 0
    public var circuit = "closed"
    public var circuitOpenings = 0
    public var lastError: String?
    public var running = true
}

/// One worker and one durable cursor (`exporter.<name>`) per exporter (DESIGN.md §5). Workers read the log after
/// their cursor, batch by count, bytes and time, and move the cursor only when the exporter answered success,
/// partial success, or permanent failure (the batch then goes to the dead-letter store). A slow or dead
/// exporter only delays its own worker: recording and other exporters never wait on it.
public final class ExportPipeline: Sendable {
    public let log: EventLog
    private let workers: [ExportWorker]
    private let tasks: Mutex<[Task<Void, Never>]>

    /// Builds every exporter through `registry` and registers its cursor. Nothing is sent before ``start()``.
    ///
    /// - Parameters:
    ///   - startAt: where a new exporter's cursor starts: the oldest retained event (default), or the end.
    /// - Throws: configuration errors from the plugins, ``TelemetryFlowError/Code/invalidConfiguration`` for a
    ///   duplicate exporter name.
    public init(
        log: EventLog, exporters: [ExporterConfiguration], registry: PluginRegistry,
        clock: any ExportClock = SystemExportClock(), startAt: EventLog.CursorStart = .beginning
    ) async throws {
        self.log = log
        var names: Set<String> = []
        var workers: [ExportWorker] = []
        for configuration in exporters {
            guard !configuration.name.isEmpty, names.insert(configuration.name).inserted else {
                throw TelemetryFlowError(.invalidConfiguration, "exporter name \"\(configuration.name)\" is empty or used twice")
            }
            let exporter = try registry.makeExporter(configuration)
            let cursor = "exporter." + configuration.name
            let position = try await log.registerCursor(cursor, startingAt: startAt)
            workers.append(ExportWorker(
                log: log, exporter: exporter, configuration: configuration, cursor: cursor, position: position, clock: clock))
        }
        self.workers = workers
        tasks = Mutex([])
    }

    /// Starts one task per exporter.
    public func start() {
        tasks.withLock { tasks in
            guard tasks.isEmpty else { return }
            tasks = workers.map { worker in Task.detached { await worker.run() } }
        }
    }

    /// Every exporter's status.
    public var status: [ExporterStatus] { workers.map(\.status) }

    /// Waits until every exporter's cursor has passed `sequence` (the events were delivered, rejected or
    /// dead-lettered) or `timeout` ran out. Returns whether all got there.
    public func waitUntilHandled(through sequence: UInt64, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if workers.allSatisfy({ $0.position >= sequence }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return workers.allSatisfy { $0.position >= sequence }
    }

    /// Stops the workers (an export in flight finishes or times out first) and shuts the exporters down. The
    /// cursors keep their positions: a restart resumes where this left off.
    public func stop() async {
        let running = tasks.withLock { tasks -> [Task<Void, Never>] in
            defer { tasks = [] }
            return tasks
        }
        for worker in workers { worker.requestStop() }
        for task in running { await task.value }
        for worker in workers { await worker.exporter.shutdown() }
    }
}

/// The loop of one exporter.
final class ExportWorker: Sendable {
    let log: EventLog
    let exporter: any TelemetryExporter
    let configuration: ExporterConfiguration
    let cursor: String
    let clock: any ExportClock
    private let state: Mutex<ExporterStatus>
    private let stopping = Atomic<Bool>(false)
    private let acceptedTypes: Set<UInt8>

    init(log: EventLog, exporter: any TelemetryExporter, configuration: ExporterConfiguration, cursor: String, position: UInt64, clock: any ExportClock) {
        self.log = log
        self.exporter = exporter
        self.configuration = configuration
        self.cursor = cursor
        self.clock = clock
        state = Mutex(ExporterStatus(name: configuration.name, plugin: configuration.plugin, cursor: position))
        let signals = exporter.acceptedSignals
        acceptedTypes = Set(EventType.known.filter { type in
            if let signal = type.builtInSignal { return signals.contains(signal) }
            return type == .customSignal && signals.contains { !SignalType.builtIn.contains($0) }
        }.map(\.rawValue))
    }

    var status: ExporterStatus { state.withLock { $0 } }
    var position: UInt64 { state.withLock { $0.cursor } }

    func requestStop() { stopping.store(true, ordering: .relaxed) }
    private var shouldStop: Bool { stopping.load(ordering: .relaxed) || Task.isCancelled }

    /// Sleeps up to `duration` in slices so that a stop request is seen promptly.
    private func pause(_ duration: Duration) async {
        var left = duration
        while left > .zero && !shouldStop {
            let slice = min(left, .milliseconds(50))
            await clock.sleep(for: slice)
            left -= slice
        }
    }

    func run() async {
        let policy = configuration.policy
        let backoff = Backoff(policy: policy)
        var breaker = CircuitBreaker(threshold: policy.breakerThreshold, cooldown: policy.breakerCooldown)
        var partialSince: (first: UInt64, at: ContinuousClock.Instant)?
        while !shouldStop {
            let position = self.position
            let batch: EventBatch
            do {
                batch = try log.read(after: position, maxCount: policy.maxBatchCount, maxBytes: policy.maxBatchBytes)
            } catch {
                state.withLock { $0.lastError = "reading the log: \(error)" }
                await pause(.milliseconds(200))
                continue
            }
            if batch.endSequence == position {
                try? await Task.sleep(for: .milliseconds(log.lastAppendedSequence > position ? 2 : 10))
                continue
            }
            // Batch by time: a batch that is not full waits up to scheduleDelay for more events.
            let full = batch.count >= policy.maxBatchCount || batch.byteCount >= policy.maxBatchBytes
            if !full, policy.scheduleDelay > .zero, let first = batch.first?.sequence {
                if partialSince?.first != first { partialSince = (first, .now) }
                let waited = ContinuousClock.now - partialSince!.at
                if waited < policy.scheduleDelay && !stopping.load(ordering: .relaxed) {
                    try? await Task.sleep(for: min(policy.scheduleDelay - waited, .milliseconds(10)))
                    continue
                }
            }
            partialSince = nil
            let wanted = batch.allSatisfy { acceptedTypes.contains($0.type.rawValue) }
                ? batch : batch.filter(types: { acceptedTypes.contains($0.rawValue) })
            let skipped = UInt64(batch.count - wanted.count)
            if wanted.isEmpty {
                await advance(to: batch.endSequence) { $0.skippedEvents += skipped }
                continue
            }
            let wait = breaker.waitBeforeSending(now: clock.now())
            if wait > .zero {
                state.withLock { $0.circuit = breaker.state.description }
                await pause(wait)
                continue
            }
            let result = await exporter.export(wanted)
            switch result {
            case .success, .partialSuccess:
                breaker.recordSuccess()
                var rejected: UInt64 = 0
                if case .partialSuccess(let n, let message) = result {
                    rejected = UInt64(max(0, n))
                    state.withLock { $0.lastError = "partial success: \(n) rejected: \(message)" }
                }
                await advance(to: batch.endSequence) { s in
                    s.exportedEvents += UInt64(wanted.count)
                    s.exportedBatches += 1
                    s.rejectedItems += rejected
                    s.skippedEvents += skipped
                    s.consecutiveFailures = 0
                    s.circuit = "closed"
                }
            case .retryable(let reason, let retryAfter):
                breaker.recordFailure(now: clock.now())
                let failures = breaker.consecutiveFailures
                state.withLock { s in
                    s.retries += 1
                    s.consecutiveFailures = failures
                    s.lastError = reason
                    s.circuit = breaker.state.description
                    s.circuitOpenings = breaker.openings
                }
                await pause(backoff.delay(afterFailures: failures, retryAfter: retryAfter))
            case .permanent(let reason):
                breaker.recordSuccess()  // the backend answered; it is not down
                do {
                    try await log.deadLetter(
                        wanted, exporter: configuration.name, reason: reason, cursor: cursor, maxBatches: policy.deadLetterMaxBatches)
                    state.withLock { s in
                        s.cursor = batch.endSequence
                        s.deadLetteredBatches += 1
                        s.deadLetteredEvents += UInt64(wanted.count)
                        s.skippedEvents += skipped
                        s.lastError = reason
                    }
                } catch {
                    state.withLock { $0.lastError = "storing a dead letter: \(error)" }
                    await pause(.milliseconds(200))
                }
            }
        }
        state.withLock { $0.running = false }
    }

    private func advance(to sequence: UInt64, _ update: (inout ExporterStatus) -> Void) async {
        do {
            try await log.setCursor(cursor, to: sequence)
            state.withLock { s in
                s.cursor = sequence
                update(&s)
            }
        } catch {
            state.withLock { $0.lastError = "moving the cursor: \(error)" }
            await pause(.milliseconds(200))
        }
    }
}
