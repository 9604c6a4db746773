import Synchronization
import TelemetryFlowCore

/// A clock that moves only when a test says so, for asserting exact schedules (backoff, `Retry-After`, breaker
/// cooldown, batch delay, collection interval) without waiting real time.
///
/// Pass it to ``TelemetryFlow/ExportPipeline`` or ``TelemetryFlow/MetricsProjection`` as their `clock`. Tasks
/// that sleep on it are resumed by ``advance(by:)`` / ``advance(to:)``; ``advanceToNextDeadline(timeout:)``
/// waits (in real time) until something sleeps and then moves to its deadline.
public final class ManualClock: Clock, Sendable {
    /// A point on a manual clock: the time since the clock was made.
    public struct Instant: InstantProtocol, Hashable, Sendable, CustomStringConvertible {
        /// The time since the clock was made.
        public var offset: Duration

        public init(offset: Duration) { self.offset = offset }
        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
        public var description: String { "\(offset)" }
    }

    private struct Sleeper {
        let id: UInt64
        let deadline: Instant
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        /// Every deadline a task went to sleep for, in order.
        var history: [Instant] = []
    }

    private let state = Locked(State())

    public init() {}

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .zero }

    /// How many tasks are sleeping on the clock now.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// The earliest deadline a task is sleeping for, if any.
    public var nextDeadline: Instant? { state.withLock { $0.sleepers.map(\.deadline).min() } }

    /// Every deadline tasks went to sleep for (offsets from the start), in the order they slept.
    public var sleepHistory: [Duration] { state.withLock { $0.history.map(\.offset) } }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate = state.withLock { s -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    s.history.append(deadline)
                    if deadline <= s.now { return .success(()) }
                    s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let sleeper = state.withLock { s -> Sleeper? in
                guard let index = s.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return s.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward by `duration` and resumes every task whose deadline has come.
    public func advance(by duration: Duration) {
        advance(to: now.advanced(by: duration))
    }

    /// Moves the clock to `instant` (never backwards) and resumes every task whose deadline has come.
    public func advance(to instant: Instant) {
        let due = state.withLock { s -> [Sleeper] in
            if instant > s.now { s.now = instant }
            let now = s.now
            let due = s.sleepers.filter { $0.deadline <= now }
            s.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits (up to `timeout` of real time) until a task sleeps on the clock, then moves the clock to the earliest
    /// deadline. Returns that deadline, or nil when nothing went to sleep in time.
    @discardableResult
    public func advanceToNextDeadline(timeout: Duration = .seconds(10)) async -> Instant? {
        let giveUp = ContinuousClock.now + timeout
        while ContinuousClock.now < giveUp {
            if let deadline = nextDeadline {
                advance(to: deadline)
                return deadline
            }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }

    /// Advances from deadline to deadline until `condition` holds (checked before each step), waiting up to
    /// `timeout` of real time in all. Returns whether it held.
    public func advance(until condition: @Sendable () -> Bool, timeout: Duration = .seconds(20)) async -> Bool {
        let giveUp = ContinuousClock.now + timeout
        while ContinuousClock.now < giveUp {
            if condition() { return true }
            if let deadline = nextDeadline {
                advance(to: deadline)
                await Task.yield()
            } else {
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
        return condition()
    }
}
