/// The one clock that export workers and projections take every timer from (batch delay, backoff, `Retry-After`,
/// breaker cooldown, collection interval, shutdown deadline): any `Clock` measured in `Duration`, read as the time
/// since it was adopted. Tests pass a manual clock (`TelemetryFlowTesting.ManualClock`) and assert exact schedules.
struct TimerClock: Sendable {
    private let reading: @Sendable () -> Duration
    private let sleeper: @Sendable (Duration) async throws -> Void

    init<C: Clock>(_ clock: C) where C.Duration == Duration {
        let origin = clock.now
        reading = { origin.duration(to: clock.now) }
        sleeper = { deadline in try await clock.sleep(until: origin.advanced(by: deadline), tolerance: nil) }
    }

    /// The time since the clock was adopted.
    func now() -> Duration { reading() }

    /// Sleeps until `deadline` (a reading of ``now()``). Throws `CancellationError` when the task is cancelled.
    func sleep(until deadline: Duration) async throws { try await sleeper(deadline) }

    /// Sleeps for `duration`. Throws `CancellationError` when the task is cancelled.
    func sleep(for duration: Duration) async throws { try await sleeper(reading() + duration) }
}

/// What ended a ``firstOf(_:)`` wait.
enum Wake: Sendable, Equatable {
    /// New events were committed to the log.
    case committed
    /// The timer ran out.
    case deadline
    /// A graceful shutdown began.
    case shutdown
    /// The log was closed.
    case closed
    /// The task was cancelled.
    case cancelled
}

/// Waits for the first of several events and cancels the other waits.
func firstOf(_ waits: [@Sendable () async -> Wake]) async -> Wake {
    await withTaskGroup(of: Wake.self) { group in
        for wait in waits { group.addTask { await wait() } }
        let first = await group.next() ?? .cancelled
        group.cancelAll()
        return Task.isCancelled ? .cancelled : first
    }
}
