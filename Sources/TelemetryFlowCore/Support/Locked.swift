#if canImport(Glibc)
package import Glibc
#endif

/// A value behind a pthread mutex: the lock for small shared state throughout the package.
///
/// It replaces `Synchronization.Mutex`, whose futex-based lock ThreadSanitizer cannot see on Linux (every access
/// under it is reported as a race, which would drown real ones in `make test-sanitizers`); a pthread mutex is
/// intercepted by the sanitizers and costs the same uncontended.
///
/// `@unchecked Sendable`: `value` is read and written only inside ``withLock(_:)``, with `mutex` held; `mutex` lives in
/// its own allocation (pthread mutexes must not move), created in `init` and destroyed in `deinit`, when no
/// thread can hold it.
package final class Locked<Value>: @unchecked Sendable {
    // Inlinable (with its state usable from inline code) so that other modules specialize `withLock` instead of
    // calling it generically: unspecialized, each call looked up generic metadata (13 % of a span's recording).
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    @inlinable @inline(__always)
    package func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
