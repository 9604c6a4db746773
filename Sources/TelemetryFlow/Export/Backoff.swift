package import TelemetryFlowCore

/// Exponential backoff with jitter: the n-th consecutive failure waits `initial × 2ⁿ⁻¹` (at most `max`), spread by
/// ±`jitter`, and never less than a `Retry-After` the backend asked for.
package struct Backoff: Sendable {
    package let policy: ExportPolicy
    private let random: @Sendable () -> Double

    /// - Parameter random: a source of numbers in 0..<1 (injected by tests).
    package init(policy: ExportPolicy, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }) {
        self.policy = policy
        self.random = random
    }

    package func delay(afterFailures failures: Int, retryAfter: Duration?) -> Duration {
        let exponent = min(max(failures - 1, 0), 30)
        var base = policy.initialBackoff * (1 << exponent)
        if base > policy.maxBackoff { base = policy.maxBackoff }
        let factor = 1 - policy.jitter + 2 * policy.jitter * random()
        let jittered = base * factor
        if let retryAfter, retryAfter > jittered { return retryAfter }
        return jittered
    }
}
