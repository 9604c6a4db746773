import Glibc

/// Monotonic clock in nanoseconds.
package func monotonicNanos() -> UInt64 {
    nanos(CLOCK_MONOTONIC)
}

/// Wall clock in unix nanoseconds.
package func wallClockNanos() -> UInt64 {
    nanos(CLOCK_REALTIME)
}

/// The wall clock at the kernel's tick (CLOCK_REALTIME_COARSE, unix nanoseconds): a quarter of the cost of
/// ``wallClockNanos()``, to the resolution of a tick (1–4 ms). For metric measurements, whose own time only
/// matters as a series' start.
package func coarseWallClockNanos() -> UInt64 {
    nanos(CLOCK_REALTIME_COARSE)
}

@inline(__always)
private func nanos(_ clock: clockid_t) -> UInt64 {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
