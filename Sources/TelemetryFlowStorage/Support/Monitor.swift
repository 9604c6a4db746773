import Glibc
internal import CSupport

/// A pthread mutex with condition variables on the monotonic clock.
///
/// The append queue needs what `Synchronization.Mutex` does not offer: producers and the writer thread
/// sleeping until the other side makes progress, with bounded waits.
///
/// `@unchecked Sendable`: the mutex and conditions live in their own allocations (stable addresses, as pthreads
/// need), are created in `init` and destroyed in `deinit`, when no thread can hold them.
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

    /// Waits on `condition` (the mutex must be held) until signalled.
    func wait(_ condition: Int) { pthread_cond_wait(conditions + condition, mutex) }

    /// Waits on `condition` (the mutex must be held) until signalled or `deadline` (monotonic nanoseconds).
    /// - Returns: false when the deadline passed.
    @discardableResult
    func wait(_ condition: Int, until deadline: UInt64) -> Bool {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(conditions + condition, mutex, &ts) != ETIMEDOUT
    }
}
