public import ServiceLifecycle
import Synchronization
public import TelemetryFlowCore
public import TelemetryFlowStorage

/// One worker and one durable cursor (`exporter.<name>`) per exporter (DESIGN.md §5). Workers read the log after
/// their cursor, batch by count, bytes and time, and move the cursor only when the exporter answered success,
/// partial success, or permanent failure (the batch then goes to the dead-letter store). A slow or dead
/// exporter only delays its own worker: recording and other exporters never wait on it.
///
/// The pipeline is a swift-service-lifecycle `Service`: run it in a `ServiceGroup` beside the application's
/// other services, or call ``start()`` and ``stop()``. Idle workers sleep until the log commits new events (no
/// polling), every timer comes from the injected clock, and bulk log reads run on the engine's own I/O threads,
/// never on the cooperative pool. On graceful shutdown each worker sends what is committed, for at most
/// ``shutdownGracePeriod``, and stops at the first failure; what it did not send stays on disk for the next start.
public final class ExportPipeline: Service, Sendable {
    public let log: EventLog
    /// How long a graceful shutdown keeps sending what is committed before the workers are cancelled.
    public let shutdownGracePeriod: Duration
    private let workers: [ExportWorker]
    private let clock: TimerClock
    /// 0 while running, 1 once a graceful shutdown began.
    private let shutdown = SequenceWatch(closedMessage: "the export pipeline stopped")
    /// Rises whenever a worker moves its cursor or stops: ``waitUntilHandled(through:timeout:)`` waits on it.
    private let progress = SequenceWatch(closedMessage: "the export pipeline stopped")
    private let runState = Locked<RunState>(.idle)

    private enum RunState {
        case idle
        case running(Task<Void, Never>?)
        case finished
    }

    /// Builds every exporter through `registry` and registers its cursor. Nothing is sent before ``run()`` or
    /// ``start()``.
    ///
    /// - Parameters:
    ///   - resource: the resource of the process, which every exported batch is attributed to
    ///     (``TelemetryFlow/Configuration/resource`` builds it from the configuration and the environment).
    ///   - clock: the clock of every timer (batch delay, backoff, `Retry-After`, breaker cooldown, shutdown
    ///     deadline); tests pass a manual one.
    ///   - startAt: where a new exporter's cursor starts: the oldest retained event (default), or the end.
    ///   - shutdownGracePeriod: how long a graceful shutdown keeps sending (default 5 s).
    /// - Throws: configuration errors from the plugins; ``TelemetryFlowError/Code/invalidConfiguration`` for a
    ///   duplicate exporter name, an invalid export policy or a negative grace period.
    public init<C: Clock>(
        log: EventLog, exporters: [ExporterConfiguration], registry: PluginRegistry, resource: Resource = Resource(), clock: C,
        startAt: EventLog.CursorStart = .beginning, shutdownGracePeriod: Duration = .seconds(5)
    ) async throws where C.Duration == Duration {
        guard shutdownGracePeriod >= .zero else {
            throw TelemetryFlowError(.invalidConfiguration, "shutdownGracePeriod must not be negative (got \(shutdownGracePeriod))")
        }
        self.log = log
        self.shutdownGracePeriod = shutdownGracePeriod
        let timers = TimerClock(clock)
        self.clock = timers
        var names: Set<String> = []
        var workers: [ExportWorker] = []
        for configuration in exporters {
            guard !configuration.name.isEmpty, names.insert(configuration.name).inserted else {
                throw TelemetryFlowError(.invalidConfiguration, "exporter name \"\(configuration.name)\" is empty or used twice")
            }
            try configuration.policy.validate()
            let exporter = try registry.makeExporter(configuration, resource: resource)
            let cursor = "exporter." + configuration.name
            let position = try await log.registerCursor(cursor, startingAt: startAt)
            workers.append(ExportWorker(
                log: log, exporter: exporter, configuration: configuration, cursor: cursor, position: position, clock: timers,
                shutdown: shutdown, progress: progress))
        }
        self.workers = workers
    }

    /// The same on the system's `ContinuousClock`.
    public convenience init(
        log: EventLog, exporters: [ExporterConfiguration], registry: PluginRegistry, resource: Resource = Resource(),
        startAt: EventLog.CursorStart = .beginning, shutdownGracePeriod: Duration = .seconds(5)
    ) async throws {
        try await self.init(
            log: log, exporters: exporters, registry: registry, resource: resource, clock: ContinuousClock(), startAt: startAt,
            shutdownGracePeriod: shutdownGracePeriod)
    }

    /// Runs every worker until the task is cancelled or a graceful shutdown (of the `ServiceGroup`, or
    /// ``stop()``) has drained them, then shuts the exporters down. Cursors keep their positions: a restart
    /// resumes where this left off.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidArgument`` when the pipeline already ran or is running.
    public func run() async throws {
        try claim(task: nil)
        await withGracefulShutdownHandler {
            await runWorkers()
        } onGracefulShutdown: { [shutdown] in
            shutdown.publish(1)
        }
        await finish()
    }

    /// Starts ``run()`` in a task of its own, for code that does not use a `ServiceGroup`. Calling it again, or
    /// after the pipeline ran, does nothing.
    public func start() {
        runState.withLock { state in
            guard case .idle = state else { return }
            state = .running(Task.detached { [self] in
                await runWorkers()
                await finish()
            })
        }
    }

    /// Begins a graceful shutdown and waits until ``run()`` (or the task of ``start()``) has returned.
    public func stop() async {
        shutdown.publish(1)
        let task: Task<Void, Never>? = runState.withLock { state in
            if case .running(let task) = state { return task }
            if case .idle = state { state = .finished }
            return nil
        }
        await task?.value
        // A pipeline run by `run()` elsewhere: wait for its workers to report that they stopped.
        // The progress value is read before the condition, so a worker that stops in between still wakes the wait.
        while true {
            let seen = progress.value
            guard workers.contains(where: { $0.status.running }), runState.withLock({ if case .running = $0 { true } else { false } })
            else { break }
            _ = try? await progress.wait(after: seen)
        }
    }

    /// Every exporter's status.
    public var status: [ExporterStatus] { workers.map(\.status) }

    /// Waits until every exporter's cursor has passed `sequence` (the events were delivered, rejected or
    /// dead-lettered) or `timeout` (real time) ran out. Returns whether all got there. Woken by the workers'
    /// progress, it does not poll.
    public func waitUntilHandled(through sequence: UInt64, timeout: Duration) async -> Bool {
        let done: @Sendable () -> Bool = { [workers] in workers.allSatisfy { $0.position >= sequence } }
        if done() { return true }
        let progress = self.progress
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                var seen = progress.value
                while !done() {
                    guard let next = try? await progress.wait(after: seen) else { return done() }
                    seen = next
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return done()
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first || done()
        }
    }

    private func claim(task: Task<Void, Never>?) throws {
        try runState.withLock { state in
            guard case .idle = state else {
                throw TelemetryFlowError(.invalidArgument, "the export pipeline already ran; make a new one to run again")
            }
            state = .running(task)
        }
    }

    private func finish() async {
        for worker in workers { await worker.exporter.shutdown() }
        runState.withLock { $0 = .finished }
        progress.bump()
    }

    /// Runs the workers; once a graceful shutdown began, cancels those still running after the grace period.
    private func runWorkers() async {
        enum Ended { case worker, deadline }
        let (clock, shutdown, grace) = (self.clock, self.shutdown, shutdownGracePeriod)
        await withTaskGroup(of: Ended.self) { group in
            for worker in workers { group.addTask { await worker.run(); return .worker } }
            group.addTask {
                guard (try? await shutdown.wait(after: 0)) != nil else { return .deadline }
                try? await clock.sleep(for: grace)
                return .deadline
            }
            var running = workers.count
            while let ended = await group.next() {
                switch ended {
                case .worker:
                    running -= 1
                    if running == 0 { group.cancelAll() }
                case .deadline:
                    group.cancelAll()
                }
            }
        }
    }
}
