import Glibc
import TelemetryFlowCore

/// What `flush()` and consumers wait on: the highest sequence the writer processed (committed or dropped), the
/// flushes waiting for it, and the drops a flush must report instead of acknowledging.
///
/// A flush covers the events appended since the previous flush completed (its floor) up to the last one queued
/// when it was called (its target). It returns once the writer published the target, or throws the error of the
/// first drop inside that range, so that nothing dropped is ever acknowledged.
final class FlushTracker: Sendable {
    private let state = Locked(FlushState())
    /// Wakes consumers (export workers, projections) after each commit.
    let commits = SequenceWatch()

    /// The highest sequence committed or dropped.
    var processed: UInt64 { state.withLock { $0.processed } }

    /// Records sequences the writer handed out and then dropped, before it publishes them as processed.
    func recordDrop(_ range: ClosedRange<UInt64>, _ error: TelemetryFlowError) {
        state.withLock { $0.drops.append((range, error)) }
    }

    /// Waits until `target` is processed; throws the drops inside the flush's range, or `closed`.
    func wait(through target: UInt64) async throws -> UInt64 {
        try await withCheckedThrowingContinuation { continuation in
            let immediate: Result<UInt64, TelemetryFlowError>? = state.withLock { state in
                let floor = state.reportedThrough
                if state.processed >= target {
                    let outcome = state.outcome(floor: floor, target: target).map { _ in state.processed }
                    state.complete(target)
                    return outcome
                }
                if state.closed { return .failure(TelemetryFlowError(.closed, "the log was closed before the flush completed")) }
                state.waiters.append((target, floor, continuation))
                return nil
            }
            if let immediate { continuation.resume(with: immediate) }
        }
    }

    /// Everything up to `sequence` is committed or dropped: resumes the flushes it completes and the consumers.
    func publish(_ sequence: UInt64) {
        let ready: [(CheckedContinuation<UInt64, any Error>, Result<UInt64, TelemetryFlowError>)] = state.withLock { state in
            guard sequence > state.processed else { return [] }
            state.processed = sequence
            var ready: [(CheckedContinuation<UInt64, any Error>, Result<UInt64, TelemetryFlowError>)] = []
            var done: [UInt64] = []
            var waiting = state.waiters
            let snapshot = state
            waiting.removeAll { waiter in
                guard waiter.target <= sequence else { return false }
                ready.append((waiter.continuation, snapshot.outcome(floor: waiter.floor, target: waiter.target).map { _ in sequence }))
                done.append(waiter.target)
                return true
            }
            state.waiters = waiting
            for target in done { state.complete(target) }
            return ready
        }
        for (continuation, result) in ready { continuation.resume(with: result) }
        commits.publish(sequence)
    }

    /// Fails every waiting flush and consumer, and every later one, with `closed`.
    func close() {
        let waiters = state.withLock { state in
            state.closed = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: TelemetryFlowError(.closed, "the log was closed before the flush completed"))
        }
        commits.close()
    }

    private struct FlushState {
        var processed: UInt64 = 0
        var closed = false
        /// The highest target of a flush that completed (acknowledged, or reported a drop).
        var reportedThrough: UInt64 = 0
        /// Sequences the writer handed out and then dropped, with why; kept until no flush can cover them.
        var drops: [(range: ClosedRange<UInt64>, error: TelemetryFlowError)] = []
        var waiters: [(target: UInt64, floor: UInt64, continuation: CheckedContinuation<UInt64, any Error>)] = []

        /// The outcome of a flush of `(floor, target]`: the target, or the error of the drops inside it.
        func outcome(floor: UInt64, target: UInt64) -> Result<UInt64, TelemetryFlowError> {
            let inside = drops.filter { $0.range.upperBound > floor && $0.range.lowerBound <= target }
            guard let first = inside.first else { return .success(target) }
            let count = inside.reduce(UInt64(0)) { $0 + min($1.range.upperBound, target) - max($1.range.lowerBound, floor + 1) + 1 }
            let low = max(first.range.lowerBound, floor + 1)
            let high = min(inside.last!.range.upperBound, target)
            return .failure(TelemetryFlowError(
                first.error.code,
                "\(count) events appended before this flush were not stored (sequences \(low)…\(high)): \(first.error.message)",
                underlying: first.error.underlying))
        }

        mutating func complete(_ target: UInt64) {
            reportedThrough = max(reportedThrough, target)
            let floor = waiters.map(\.floor).min().map { min($0, reportedThrough) } ?? reportedThrough
            drops.removeAll { $0.range.upperBound <= floor }
        }
    }

}
