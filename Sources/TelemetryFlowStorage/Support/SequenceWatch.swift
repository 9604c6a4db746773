import Synchronization
import TelemetryFlowCore

/// A rising number that tasks can wait on: the log publishes its committed sequence through one, so consumers
/// (export workers, projections) sleep until new events are committed instead of polling; the export pipeline
/// publishes cursor progress and its shutdown through others.
///
/// ``publish(_:)`` with nobody waiting costs one uncontended lock (the log's writer calls it after every group
/// commit). A waiter is resumed exactly once: by the publish that passes its value, by ``close()``, or by its
/// task's cancellation.
package final class SequenceWatch: Sendable {
    private struct Waiter {
        let id: UInt64
        let after: UInt64
        let continuation: CheckedContinuation<UInt64, any Error>
    }

    private struct State {
        var published: UInt64
        var closed = false
        var nextID: UInt64 = 0
        var waiters: [Waiter] = []
    }

    private let state: Locked<State>

    package init(published: UInt64 = 0, closedMessage: String = "the log was closed") {
        self.closedError = TelemetryFlowError(.closed, closedMessage)
        state = Locked(State(published: published))
    }

    /// The value now.
    package var value: UInt64 { state.withLock { $0.published } }

    /// Raises the value to `sequence` (a lower one is ignored) and resumes the waiters it passes.
    package func publish(_ sequence: UInt64) {
        let ready = state.withLock { s -> [Waiter] in
            guard sequence > s.published else { return [] }
            s.published = sequence
            guard !s.waiters.isEmpty else { return [] }
            var ready: [Waiter] = []
            s.waiters.removeAll { waiter in
                guard waiter.after < sequence else { return false }
                ready.append(waiter)
                return true
            }
            return ready
        }
        for waiter in ready { waiter.continuation.resume(returning: sequence) }
    }

    /// Raises the value by one (atomically, whoever else raises it) and resumes every waiter: a "something
    /// changed" signal for waiters that check their own condition.
    package func bump() {
        let (value, ready) = state.withLock { s -> (UInt64, [Waiter]) in
            s.published += 1
            defer { s.waiters = [] }
            return (s.published, s.waiters)
        }
        for waiter in ready { waiter.continuation.resume(returning: value) }
    }

    /// Fails every waiter, and every later wait, with ``TelemetryFlowError/Code/closed``.
    package func close() {
        let waiters = state.withLock { s -> [Waiter] in
            s.closed = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.continuation.resume(throwing: closedError) }
    }

    private let closedError: TelemetryFlowError

    /// Returns the value once it is above `sequence` (at once when it already is).
    ///
    /// - Throws: `CancellationError` when the task is cancelled; ``TelemetryFlowError/Code/closed`` after ``close()``.
    package func wait(after sequence: UInt64) async throws -> UInt64 {
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UInt64, any Error>) in
                let immediate = state.withLock { s -> Result<UInt64, any Error>? in
                    if s.published > sequence { return .success(s.published) }
                    if s.closed { return .failure(closedError) }
                    // Checked under the lock: a cancellation after this finds the waiter in the list.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    s.waiters.append(Waiter(id: id, after: sequence, continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> Waiter? in
                guard let index = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}
