import Glibc
internal import CSupport

/// A pthread mutex with condition variables on the monotonic clock.
///
/// The append queue needs what `Synchronization.Mutex` does not offer: producers and the writer thread
/// sleeping until the other side makes progress, with bounded waits.
final class Monitor: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let conditions: UnsafeMutablePointer<pthread_cond_t>
    let conditionCount: Int

    init(conditions count: Int) {
        mutex = .allocate(capacity: 1)
        // Adaptive: a thread that finds the lock taken spins briefly before sleeping. Producers hold it for a
        // few tens of nanoseconds, far less than a sleep and wake-up costs.
        var mutexAttributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&mutexAttributes)
        pthread_mutexattr_settype(&mutexAttributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        pthread_mutex_init(mutex, &mutexAttributes)
        pthread_mutexattr_destroy(&mutexAttributes)
        conditions = .allocate(capacity: count)
        conditionCount = count
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        for i in 0..<count { pthread_cond_init(conditions + i, &attr) }
        pthread_condattr_destroy(&attr)
    }

    deinit {
        for i in 0..<conditionCount { pthread_cond_destroy(conditions + i) }
        pthread_mutex_destroy(mutex)
        conditions.deallocate()
        mutex.deallocate()
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }

    func signal(_ condition: Int) { pthread_cond_signal(conditions + condition) }
    func broadcast(_ condition: Int) { pthread_cond_broadcast(conditions + condition) }

    /// Waits on `condition` (the mutex must be held) until signalled or `deadline` (monotonic nanoseconds).
    /// - Returns: false when the deadline passed.
    @discardableResult
    func wait(_ condition: Int, until deadline: UInt64) -> Bool {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(conditions + condition, mutex, &ts) != ETIMEDOUT
    }
}

/// Monotonic clock in nanoseconds.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Wall clock in unix nanoseconds.
public func wallClockNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Starts a joinable pthread running `body`, named `name` (at most 15 bytes are kept) so that `top -H`,
/// `perf` and /proc show which thread is the log's.
final class WriterThread: @unchecked Sendable {
    private var thread = pthread_t()

    init(name: String, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(name: name, body)).toOpaque()
        pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            _ = tf_set_thread_name(box.name)
            box.body()
            return nil
        }, box)
    }

    func join() { pthread_join(thread, nil) }

    private final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, _ body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
}
