public import TelemetryFlowCore

/// Time for export workers: a monotonic reading and a sleep. Tests inject their own to make backoff and the
/// circuit breaker deterministic.
public protocol ExportClock: Sendable {
    /// A monotonic reading (any origin).
    func now() -> Duration
    /// Sleeps for `duration` (returns early only when the task is cancelled).
    func sleep(for duration: Duration) async
}

/// The real clock.
public struct SystemExportClock: ExportClock {
    public init() {}
    public func now() -> Duration { ContinuousClock.now - ContinuousClock.Instant.zeroReference }
    public func sleep(for duration: Duration) async {
        guard duration > .zero else { return }
        try? await Task.sleep(for: duration)
    }
}

extension ContinuousClock.Instant {
    static let zeroReference = ContinuousClock.now
}

/// Exponential backoff with jitter: the n-th consecutive failure waits `initial × 2ⁿ⁻¹` (at most `max`), spread by
/// ±`jitter`, and never less than a `Retry-After` the backend asked for.
public struct Backoff: Sendable {
    public let policy: ExportPolicy
    private let random: @Sendable () -> Double

    /// - Parameter random: a source of numbers in 0..<1 (injected by tests).
    public init(policy: ExportPolicy, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.policy = policy
        self.random = random
    }

    public func delay(afterFailures failures: Int, retryAfter: Duration?) -> Duration {
        let exponent = min(max(failures - 1, 0), 30)
        var base = policy.initialBackoff * (1 << exponent)
        if base > policy.maxBackoff { base = policy.maxBackoff }
        let factor = 1 - policy.jitter + 2 * policy.jitter * random()
        let jittered = base * factor
        if let retryAfter, retryAfter > jittered { return retryAfter }
        return jittered
    }
}

/// A circuit breaker: after `threshold` consecutive failures it opens and nothing is sent until `cooldown` has
/// passed; then one probe batch goes out (half-open). A success closes it; a failed probe opens it again.
public struct CircuitBreaker: Sendable {
    public enum State: Sendable, Hashable, CustomStringConvertible {
        case closed
        case open(until: Duration)
        case halfOpen

        public var description: String {
            switch self {
            case .closed: return "closed"
            case .open: return "open"
            case .halfOpen: return "half-open"
            }
        }
    }

    public let threshold: Int
    public let cooldown: Duration
    public private(set) var state: State = .closed
    public private(set) var consecutiveFailures = 0
    /// How many times the circuit opened.
    public private(set) var openings = 0

    public init(threshold: Int, cooldown: Duration) {
        self.threshold = threshold
        self.cooldown = cooldown
    }

    /// How long to wait before sending at `now` (zero when a batch may go now). Moves open → half-open when the
    /// cooldown has passed.
    public mutating func waitBeforeSending(now: Duration) -> Duration {
        if case .open(let until) = state {
            if now >= until {
                state = .halfOpen
                return .zero
            }
            return until - now
        }
        return .zero
    }

    public mutating func recordSuccess() {
        consecutiveFailures = 0
        state = .closed
    }

    public mutating func recordFailure(now: Duration) {
        consecutiveFailures += 1
        switch state {
        case .halfOpen:
            state = .open(until: now + cooldown)
            openings += 1
        case .closed where consecutiveFailures >= threshold:
            state = .open(until: now + cooldown)
            openings += 1
        default:
            break
        }
    }
}
