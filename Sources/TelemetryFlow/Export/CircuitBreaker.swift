import TelemetryFlowCore

/// A circuit breaker: after `threshold` consecutive failures it opens and nothing is sent until `cooldown` has
/// passed; then one probe batch goes out (half-open). A success closes it; a failed probe opens it again.
package struct CircuitBreaker: Sendable {
    package enum State: Sendable, Hashable, CustomStringConvertible {
        case closed
        case open(until: Duration)
        case halfOpen

        package var description: String {
            switch self {
            case .closed: return "closed"
            case .open: return "open"
            case .halfOpen: return "half-open"
            }
        }
    }

    package let threshold: Int
    package let cooldown: Duration
    package private(set) var state: State = .closed
    package private(set) var consecutiveFailures = 0
    /// How many times the circuit opened.
    package private(set) var openings = 0

    package init(threshold: Int, cooldown: Duration) {
        self.threshold = threshold
        self.cooldown = cooldown
    }

    /// How long to wait before sending at `now` (zero when a batch may go now). Moves open → half-open when the
    /// cooldown has passed.
    package mutating func waitBeforeSending(now: Duration) -> Duration {
        if case .open(let until) = state {
            if now >= until {
                state = .halfOpen
                return .zero
            }
            return until - now
        }
        return .zero
    }

    package mutating func recordSuccess() {
        consecutiveFailures = 0
        state = .closed
    }

    package mutating func recordFailure(now: Duration) {
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
