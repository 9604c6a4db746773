/// A few threads of our own for blocking work — bulk log reads, `fsync` — so that it never occupies the
/// cooperative thread pool that every task of the process shares (CONVENTIONS.md, habit 5).
///
/// The threads start on first use and then sleep on a condition variable while there is nothing to do.
package final class BlockingPool: @unchecked Sendable {
    /// The pool the export pipeline and the local exporters use: two threads named `tflow-io`.
    package static let shared = BlockingPool(threads: 2, name: "tflow-io")

    // `jobs`, `head` and `threads` are read and written only with `monitor` held.
    private let monitor = Monitor(conditions: 1)
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    private var threads: [NamedThread] = []
    private let threadCount: Int
    private let name: String

    package init(threads: Int, name: String) {
        threadCount = max(1, threads)
        self.name = name
    }

    /// Runs `body` on one of the pool's threads and returns its result to the calling task.
    package func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            enqueue { continuation.resume(with: Result { try body() }) }
        }
    }

    private func enqueue(_ job: @escaping @Sendable () -> Void) {
        monitor.lock()
        if threads.isEmpty {
            for _ in 0..<threadCount { threads.append(NamedThread(name: name) { [self] in work() }) }
        }
        jobs.append(job)
        monitor.signal(0)
        monitor.unlock()
    }

    private func work() {
        while true {
            monitor.lock()
            while head == jobs.count { monitor.wait(0) }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            monitor.unlock()
            job()
        }
    }
}
