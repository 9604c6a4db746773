import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TelemetryFlow
import TelemetryFlowTesting

/// The export worker's schedule — batch delay, backoff, `Retry-After`, breaker cooldown, dead letters, graceful
/// shutdown — on the test kit's manual clock: exact times, no real waiting.
@Suite struct ExportScheduleTests {
    /// A log with `count` log records, flushed; returns the log and the last sequence.
    func filledLog(_ count: Int) async throws -> (TemporaryLog, UInt64) {
        let temporary = try TemporaryLog { $0.durability = .never }
        for n in 0..<count {
            let record = LogRecordData(timeUnixNano: UInt64(n), severity: .info, body: .string("event \(n)"))
            temporary.log.append(.log(record, scope: InstrumentationScope(name: "schedule")), timestampUnixNano: UInt64(n))
        }
        return (temporary, try await temporary.log.flush())
    }

    func configuration(_ change: (inout ExportPolicy) -> Void = { _ in }) -> ExporterConfiguration {
        var c = ExporterConfiguration.plugin(name: "memory")
        c.policy.jitter = 0
        c.policy.scheduleDelay = .zero
        change(&c.policy)
        return c
    }

    func pipeline(_ log: EventLog, _ exporter: InMemoryExporter, _ clock: ManualClock, _ configuration: ExporterConfiguration,
                  grace: Duration = .seconds(5)) async throws -> ExportPipeline {
        let registry = PluginRegistry.standard()
        try registry.register(exporter: exporter.plugin(name: "memory"))
        return try await ExportPipeline(log: log, exporters: [configuration], registry: registry, clock: clock, shutdownGracePeriod: grace)
    }

    @Test func retriesBackOffExponentiallyAfterTheBatchDelay() async throws {
        let (temporary, last) = try await filledLog(5)
        let clock = ManualClock()
        let exporter = InMemoryExporter(answers: Array(repeating: .retryable(reason: "503"), count: 4), clock: clock)
        let pipeline = try await pipeline(temporary.log, exporter, clock, configuration {
            $0.scheduleDelay = .milliseconds(200)
            $0.initialBackoff = .milliseconds(500)
            $0.maxBackoff = .seconds(3)
        })
        pipeline.start()
        #expect(await clock.advance(until: { pipeline.status[0].cursor == last }))
        await pipeline.stop()
        // 200 ms batch delay, then 500, 1000, 2000 and (capped) 3000 ms between the five attempts.
        #expect(exporter.calls.map(\.at) == [.milliseconds(200), .milliseconds(700), .milliseconds(1700), .milliseconds(3700), .milliseconds(6700)])
        #expect(exporter.calls.allSatisfy { $0.sequences == Array(1...5) }, "every attempt carries the same batch")
        let status = pipeline.status[0]
        #expect(status.retries == 4 && status.exportedEvents == 5 && status.exportedBatches == 1 && status.consecutiveFailures == 0)
        #expect(exporter.shutdownCount == 1)
    }

    @Test func retryAfterIsHonouredWhenLongerThanTheBackoff() async throws {
        let (temporary, last) = try await filledLog(3)
        let clock = ManualClock()
        let exporter = InMemoryExporter(answers: [
            .retryable(reason: "429", retryAfter: .seconds(7)),
            .retryable(reason: "503", retryAfter: .milliseconds(100)),
        ], clock: clock)
        let pipeline = try await pipeline(temporary.log, exporter, clock, configuration { $0.initialBackoff = .milliseconds(500) })
        pipeline.start()
        #expect(await clock.advance(until: { pipeline.status[0].cursor == last }))
        await pipeline.stop()
        // Retry-After 7 s beats the 500 ms backoff; 100 ms loses to the 1 s one.
        #expect(exporter.calls.map(\.at) == [.zero, .seconds(7), .seconds(8)])
    }

    @Test func theBreakerOpensAfterTheThresholdAndProbesAfterTheCooldown() async throws {
        let (temporary, last) = try await filledLog(2)
        let clock = ManualClock()
        let exporter = InMemoryExporter(answers: Array(repeating: .retryable(reason: "down"), count: 4), clock: clock)
        let pipeline = try await pipeline(temporary.log, exporter, clock, configuration {
            $0.initialBackoff = .milliseconds(100)
            $0.maxBackoff = .milliseconds(100)
            $0.breakerThreshold = 3
            $0.breakerCooldown = .seconds(30)
        })
        pipeline.start()
        #expect(await clock.advance(until: { exporter.calls.count == 3 }))
        // The third failure opens the circuit; after its 100 ms backoff the worker waits for the cooldown. (The
        // clock may already stand at the end of that backoff: advancing races the worker's next sleep.)
        if await eventually({ clock.nextDeadline != nil }), clock.nextDeadline == ManualClock.Instant(offset: .milliseconds(300)) {
            clock.advance(to: ManualClock.Instant(offset: .milliseconds(300)))
        }
        #expect(await eventually { clock.nextDeadline == ManualClock.Instant(offset: .milliseconds(30_200)) }, "the open circuit waits for the cooldown")
        #expect(pipeline.status[0].circuit == "open" && exporter.calls.count == 3, "nothing is sent while the circuit is open")
        #expect(await clock.advance(until: { pipeline.status[0].cursor == last }))
        await pipeline.stop()
        // Three failures 100 ms apart open the circuit until 30.2 s; the probe then fails and opens it again
        // until 60.2 s; the next probe succeeds.
        #expect(exporter.calls.map(\.at) == [.zero, .milliseconds(100), .milliseconds(200), .milliseconds(30_200), .milliseconds(60_200)])
        let status = pipeline.status[0]
        #expect(status.circuitOpenings == 2 && status.circuit == "closed" && status.retries == 4)
    }

    @Test func batchesAreSentWhenFullOrWhenTheDelayRunsOut() async throws {
        let (temporary, _) = try await filledLog(10)
        let clock = ManualClock()
        let exporter = InMemoryExporter(clock: clock)
        let pipeline = try await pipeline(temporary.log, exporter, clock, configuration {
            $0.maxBatchCount = 4
            $0.scheduleDelay = .seconds(1)
        })
        pipeline.start()
        #expect(await clock.advance(until: { pipeline.status[0].cursor == 10 }))
        #expect(exporter.calls.map(\.sequences.count) == [4, 4, 2])
        #expect(exporter.calls.map(\.at) == [.zero, .zero, .seconds(1)], "full batches go at once, the rest after the delay")
        // A waiting batch that fills up is sent when the commit that fills it arrives, before the delay.
        for n in 0..<2 { temporary.log.append(.log(LogRecordData(timeUnixNano: 1, severity: .info, body: .string("a\(n)")), scope: .init(name: "s")), timestampUnixNano: 1) }
        _ = try await temporary.log.flush()
        #expect(await eventually { clock.sleeperCount > 0 }, "the worker waits for the batch to fill")
        for n in 0..<2 { temporary.log.append(.log(LogRecordData(timeUnixNano: 1, severity: .info, body: .string("b\(n)")), scope: .init(name: "s")), timestampUnixNano: 1) }
        let last = try await temporary.log.flush()
        #expect(await pipeline.waitUntilHandled(through: last, timeout: .seconds(10)))
        #expect(exporter.calls.last?.sequences == Array(11...14) && exporter.calls.last?.at == .seconds(1), "sent without the clock moving")
        await pipeline.stop()
    }

    @Test func aPermanentFailureDeadLettersTheBatchAndMovesOn() async throws {
        let (temporary, last) = try await filledLog(6)
        let clock = ManualClock()
        let exporter = InMemoryExporter(answers: [.permanent(reason: "HTTP 400: bad batch")], clock: clock)
        let pipeline = try await pipeline(temporary.log, exporter, clock, configuration { $0.maxBatchCount = 3 })
        pipeline.start()
        #expect(await pipeline.waitUntilHandled(through: last, timeout: .seconds(10)))
        await pipeline.stop()
        let letters = try temporary.log.deadLetters(exporter: "memory")
        #expect(letters.count == 1 && letters[0].batch.map(\.sequence) == [1, 2, 3] && letters[0].reason == "HTTP 400: bad batch")
        let status = pipeline.status[0]
        #expect(status.deadLetteredBatches == 1 && status.deadLetteredEvents == 3 && status.exportedEvents == 3 && status.retries == 0)
        #expect(exporter.calls.map(\.at) == [.zero, .zero], "a permanent failure is not retried or delayed")
    }

    @Test func gracefulShutdownSendsWhatIsCommittedWithoutWaitingForTheBatchDelay() async throws {
        let (temporary, last) = try await filledLog(7)
        let clock = ManualClock()
        let exporter = InMemoryExporter(clock: clock)
        let pipeline = try await pipeline(temporary.log, exporter, clock, configuration { $0.scheduleDelay = .seconds(60) })
        pipeline.start()
        #expect(await eventually { clock.sleeperCount > 0 }, "the worker waits for the batch to fill")
        await pipeline.stop()
        #expect(pipeline.status[0].cursor == last && exporter.receivedSequences == Array(1...7) && exporter.calls[0].at == .zero)
        #expect(pipeline.status[0].running == false && exporter.shutdownCount == 1)
    }

    @Test func gracefulShutdownLeavesWhatTheBackendRefusesOnDisk() async throws {
        let (temporary, last) = try await filledLog(5)
        let clock = ManualClock()
        let down = InMemoryExporter(fallback: .retryable(reason: "connection refused"), clock: clock)
        let first = try await pipeline(temporary.log, down, clock, configuration())
        first.start()
        #expect(await clock.advance(until: { down.calls.count >= 3 }))
        await first.stop()  // returns without waiting out the backoff: a refused send ends the drain
        #expect(first.status[0].cursor == 0 && temporary.log.cursor("exporter.memory") == 0)
        // The next start (a new process, here a new pipeline) sends everything.
        let up = InMemoryExporter(clock: clock)
        let second = try await pipeline(temporary.log, up, clock, configuration())
        second.start()
        #expect(await second.waitUntilHandled(through: last, timeout: .seconds(10)))
        await second.stop()
        #expect(up.receivedSequences == Array(1...5))
    }

    @Test func theShutdownDeadlineCancelsAnExportThatHangs() async throws {
        let (temporary, _) = try await filledLog(4)
        let clock = ManualClock()
        let hanging = HangingExporter()
        let registry = PluginRegistry.standard()
        try registry.register(exporter: HangingExporterPlugin(exporter: hanging))
        var hang = ExporterConfiguration.plugin(name: "hang")
        hang.policy.scheduleDelay = .zero
        let pipeline = try await ExportPipeline(
            log: temporary.log, exporters: [hang], registry: registry, clock: clock,
            shutdownGracePeriod: .seconds(3))
        pipeline.start()
        #expect(await eventually { hanging.started.withLock { $0 } }, "the export started")
        let stopped = Atomic<Bool>(false)
        let stopping = Task {
            await pipeline.stop()
            stopped.store(true, ordering: .relaxed)
        }
        // Nothing ends before the grace period is over on the clock, then the export is cancelled.
        #expect(await clock.advanceToNextDeadline(timeout: .seconds(60)) == ManualClock.Instant(offset: .seconds(3)))
        #expect(await clock.advance(until: { stopped.load(ordering: .relaxed) }, timeout: .seconds(60)))
        await stopping.value
        #expect(stopped.load(ordering: .relaxed) && hanging.cancelled.withLock { $0 })
        #expect(pipeline.status[0].cursor == 0, "the batch cut off by the deadline stays on disk")
    }

    @Test func aServiceGroupRunsThePipelineAndTheProjectionAndShutsThemDownGracefully() async throws {
        let (temporary, last) = try await filledLog(3)
        let clock = ManualClock()
        let exporter = InMemoryExporter(clock: clock)
        let pipeline = try await pipeline(temporary.log, exporter, clock, configuration())
        let projection = try await MetricsProjection(log: temporary.log, interval: .seconds(10), clock: clock, now: { 1_700_000_000_000_000_000 })
        let group = ServiceGroup(services: [pipeline, projection], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        #expect(await pipeline.waitUntilHandled(through: last, timeout: .seconds(10)))
        let counter = MetricMeasurement(kind: .counter, name: "jobs", value: .int(2))
        temporary.log.append(.measurement(counter), timestampUnixNano: 1)
        _ = try await temporary.log.flush()
        // The projection collects at 10 s on the clock (the only sleeper: the worker waits for commits); the
        // pipeline then exports the collection without the clock moving again.
        #expect(await eventually { clock.nextDeadline == ManualClock.Instant(offset: .seconds(10)) })
        clock.advance(by: .seconds(10))
        #expect(await eventually { exporter.calls.contains { $0.events.contains { $0.type == .metricsCollected } } })
        #expect(clock.now.offset == .seconds(10))
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(pipeline.status[0].running == false && exporter.shutdownCount == 1)
    }
}

/// Waits (up to `timeout` of real time, checking every millisecond) until `condition` holds; returns whether it did.
func eventually(timeout: Duration = .seconds(10), _ condition: @Sendable () -> Bool) async -> Bool {
    let giveUp = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < giveUp else { return false }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return true
}

/// An exporter whose export never answers until it is cancelled.
final class HangingExporter: TelemetryExporter {
    let acceptedSignals: Set<SignalType> = Set(SignalType.builtIn)
    let started = Locked(false)
    let cancelled = Locked(false)

    func export(_ batch: EventBatch) async -> ExportResult {
        started.withLock { $0 = true }
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        cancelled.withLock { $0 = true }
        return .retryable(reason: "cancelled")
    }
}

struct HangingExporterPlugin: ExporterPlugin {
    let name = "hang"
    let exporter: HangingExporter
    func makeExporter(_ configuration: ExporterConfiguration, context: ExporterContext) throws -> any TelemetryExporter { exporter }
}
