import Glibc

/// Monotonic clock in nanoseconds.
package func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Wall clock in unix nanoseconds.
package func wallClockNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The wall clock at the kernel's tick (CLOCK_REALTIME_COARSE, unix nanoseconds): a quarter of the cost of
/// ``wallClockNanos()``, to the resolution of a tick (1–4 ms). For metric measurements, whose own time only
/// matters as a series' start.
package func coarseWallClockNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME_COARSE, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
