import Synchronization
import TelemetryFlowCore
import TelemetryFlowStorage

/// The loop of one exporter: read after the cursor, batch, send, act on the answer (DESIGN.md §5).
final class ExportWorker: Sendable {
    let log: EventLog
    let exporter: any TelemetryExporter
    let configuration: ExporterConfiguration
    let cursor: String
    private let clock: TimerClock
    private let shutdown: SequenceWatch
    private let progress: SequenceWatch
    private let state: Locked<ExporterStatus>
    private let acceptedTypes: Set<EventType>
    private let backoff: Backoff

    init(
        log: EventLog, exporter: any TelemetryExporter, configuration: ExporterConfiguration, cursor: String, position: UInt64,
        clock: TimerClock, shutdown: SequenceWatch, progress: SequenceWatch
    ) {
        self.log = log
        self.exporter = exporter
        self.configuration = configuration
        self.cursor = cursor
        self.clock = clock
        self.shutdown = shutdown
        self.progress = progress
        state = Locked(ExporterStatus(name: configuration.name, plugin: configuration.plugin, cursor: position))
        let signals = exporter.acceptedSignals
        acceptedTypes = Set(EventType.known.filter { type in
            if let signal = type.builtInSignal { return signals.contains(signal) }
            return type == .customSignal && signals.contains { !SignalType.builtIn.contains($0) }
        })
        backoff = Backoff(policy: configuration.policy)
    }

    var status: ExporterStatus { state.withLock { $0 } }
    var position: UInt64 { state.withLock { $0.cursor } }
    private var draining: Bool { shutdown.value > 0 }

    /// Waits for the first of: an event committed after `sequence` (when given), `deadline` on the clock (when
    /// given), the start of a graceful shutdown, the log closing, cancellation.
    private func wait(commitAfter sequence: UInt64?, until deadline: Duration?) async -> Wake {
        var waits: [@Sendable () async -> Wake] = []
        let (log, clock, shutdown) = (self.log, self.clock, self.shutdown)
        if let sequence {
            waits.append {
                do {
                    _ = try await log.waitForCommit(after: sequence)
                    return .committed
                } catch let error as TelemetryFlowError where error.code == .closed {
                    return .closed
                } catch {
                    return .cancelled
                }
            }
        }
        if let deadline {
            waits.append {
                do {
                    try await clock.sleep(until: deadline)
                    return .deadline
                } catch {
                    return .cancelled
                }
            }
        }
        // Always, even when a graceful shutdown already began: callers check `draining` before they wait, and a
        // shutdown that begins between that check and this wait must still end it (it returns at once then). Left
        // out, the wait slept for a commit or a clock deadline that might never come (a ManualClock pipeline's
        // stop() hung under ThreadSanitizer, about one run in six).
        waits.append { (try? await shutdown.wait(after: 0)) != nil ? .shutdown : .cancelled }
        return await firstOf(waits)
    }

    /// Sleeps `duration` on the clock; a graceful shutdown cuts it short. Returns false when the worker must stop.
    private func pause(_ duration: Duration) async -> Bool {
        let woke = await wait(commitAfter: nil, until: clock.now() + duration)
        return woke != .cancelled && woke != .closed
    }

    func run() async {
        defer {
            state.withLock { $0.running = false }
            progress.bump()
        }
        let policy = configuration.policy
        var breaker = CircuitBreaker(threshold: policy.breakerThreshold, cooldown: policy.breakerCooldown)
        // The first sequence of a batch that is waiting to fill, and when the worker first saw it.
        var partialSince: (first: UInt64, at: Duration)?
        // The first sequence of the batch being retried, and how many times it failed retryably.
        var attempts: (first: UInt64, count: Int) = (0, 0)
        while !Task.isCancelled {
            let position = self.position
            let batch: EventBatch
            do {
                let log = self.log
                batch = try await BlockingPool.shared.run {
                    try log.read(after: position, maxCount: policy.maxBatchCount, maxBytes: policy.maxBatchBytes)
                }
            } catch {
                if (error as? TelemetryFlowError)?.code == .closed { return }
                state.withLock { $0.lastError = "reading the log: \(error)" }
                guard !draining, await pause(.milliseconds(200)) else { return }
                continue
            }
            if batch.endSequence == position {
                // Nothing new: sleep until the log commits more (or, when shutting down, stop: all is sent).
                guard !draining else { return }
                switch await wait(commitAfter: position, until: nil) {
                case .committed, .shutdown, .deadline: continue
                case .closed, .cancelled: return
                }
            }
            // Batch by time: a batch that is not full waits up to scheduleDelay for more events.
            let full = batch.count >= policy.maxBatchCount || batch.byteCount >= policy.maxBatchBytes
            if !full, policy.scheduleDelay > .zero, !draining, let first = batch.first?.sequence {
                if partialSince?.first != first { partialSince = (first, clock.now()) }
                let deadline = partialSince!.at + policy.scheduleDelay
                if clock.now() < deadline {
                    switch await wait(commitAfter: batch.endSequence, until: deadline) {
                    case .committed, .shutdown, .deadline: continue
                    case .closed, .cancelled: return
                    }
                }
            }
            let wanted = batch.allSatisfy { acceptedTypes.contains($0.type) } ? batch : batch.filter(types: { acceptedTypes.contains($0) })
            let skipped = UInt64(batch.count - wanted.count)
            if wanted.isEmpty {
                guard await advance(to: batch.endSequence, { $0.skippedEvents += skipped }) else { return }
                continue
            }
            let wait = breaker.waitBeforeSending(now: clock.now())
            if wait > .zero {
                state.withLock { $0.circuit = breaker.state.description }
                // An open circuit while shutting down: the backend is down, the rest stays on disk.
                guard !draining, await pause(wait) else { return }
                continue
            }
            let result = await exporter.export(wanted)
            // Cancelled mid-export (the shutdown deadline passed): the answer may be a cancellation; keep the cursor.
            if Task.isCancelled { return }
            switch result {
            case .success, .partialSuccess:
                breaker.recordSuccess()
                var rejected: UInt64 = 0
                if case .partialSuccess(let n, let message) = result {
                    rejected = UInt64(max(0, n))
                    state.withLock { $0.lastError = "partial success: \(n) rejected: \(message)" }
                }
                guard await advance(to: batch.endSequence, { s in
                    s.exportedEvents += UInt64(wanted.count)
                    s.exportedBatches += 1
                    s.rejectedItems += rejected
                    s.skippedEvents += skipped
                    s.consecutiveFailures = 0
                    s.circuit = "closed"
                }) else { return }
            case .retryable(let reason, let retryAfter):
                let first = wanted.first?.sequence ?? 0
                attempts = attempts.first == first ? (first, attempts.count + 1) : (first, 1)
                if let limit = policy.maxRetries, attempts.count > limit {
                    // The retry budget is spent: the batch is kept as a dead letter, not retried forever.
                    breaker.recordSuccess()
                    let reason = limit == 0 ? "retries are off: \(reason)" : "gave up after \(limit) retries: \(reason)"
                    guard await deadLetter(wanted, batch: batch, skipped: skipped, reason: reason) else { return }
                    continue
                }
                breaker.recordFailure(now: clock.now())
                let failures = breaker.consecutiveFailures
                state.withLock { s in
                    s.retries += 1
                    s.consecutiveFailures = failures
                    s.lastError = reason
                    s.circuit = breaker.state.description
                    s.circuitOpenings = breaker.openings
                }
                guard !draining, await pause(backoff.delay(afterFailures: failures, retryAfter: retryAfter)) else { return }
            case .permanent(let reason):
                breaker.recordSuccess()  // the backend answered; it is not down
                guard await deadLetter(wanted, batch: batch, skipped: skipped, reason: reason) else { return }
            }
        }
    }

    /// Moves a batch to the dead-letter store with the cursor past it; returns false when the worker must stop.
    private func deadLetter(_ wanted: EventBatch, batch: EventBatch, skipped: UInt64, reason: String) async -> Bool {
        do {
            try await log.deadLetter(
                wanted, exporter: configuration.name, reason: reason, cursor: cursor, maxBatches: configuration.policy.deadLetterMaxBatches)
            state.withLock { s in
                s.cursor = batch.endSequence
                s.deadLetteredBatches += 1
                s.deadLetteredEvents += UInt64(wanted.count)
                s.skippedEvents += skipped
                s.lastError = reason
            }
            progress.bump()
            return true
        } catch {
            state.withLock { $0.lastError = "storing a dead letter: \(error)" }
            return !draining ? await pause(.milliseconds(200)) : false
        }
    }

    /// Moves the cursor durably; returns false when the worker must stop.
    private func advance(to sequence: UInt64, _ update: (inout ExporterStatus) -> Void) async -> Bool {
        do {
            try await log.setCursor(cursor, to: sequence)
            state.withLock { s in
                s.cursor = sequence
                update(&s)
            }
            progress.bump()
            return true
        } catch {
            state.withLock { $0.lastError = "moving the cursor: \(error)" }
            if draining { return false }
            return await pause(.milliseconds(200))
        }
    }
}
