// How the recording benchmarks measure a call: shared, as this very file, by `tflow-client-bench` and the peer
// benchmark (`Benchmarks/Peers`, through a symbolic link), so that both figures come from the same code.
import Foundation
import Synchronization

func monotonic() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The calling thread's own CPU time: what a call costs its caller, preemption excluded.
func threadCPU() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Runs `body` `perThread` times on each of `threads` threads (named `bench-recorder`, for `perf`); returns the
/// median and p99 of the time per call over blocks of 64 calls (one clock read per block), the wall time, and the
/// recording threads' CPU time per call. With `pause`, each thread calls it after every burst of 4,096 calls
/// (`BENCH_BURST` changes the burst): the pauses are neither timed nor counted as CPU.
func measure(
    threads: Int, perThread: Int, pause: (@Sendable () -> Void)? = nil, _ body: @escaping @Sendable () -> Void
) -> (median: Double, p99: Double, seconds: Double, cpu: Double) {
    let block = 64
    let burst = Int(ProcessInfo.processInfo.environment["BENCH_BURST"] ?? "") ?? 4096
    let samples = Mutex<[Double]>([])
    let cpu = Mutex<UInt64>(0)
    let start = monotonic()
    let done = DispatchGroup()
    for _ in 0..<threads {
        done.enter()
        let thread = Thread {
            Thread.current.name = "bench-recorder"
            var mine: [Double] = []
            mine.reserveCapacity(perThread / block + 1)
            var n = 0
            var used: UInt64 = 0
            var cpu0 = threadCPU()
            while n < perThread {
                let t0 = monotonic()
                for _ in 0..<block { body() }
                mine.append(Double(monotonic() - t0) / Double(block))
                n += block
                if let pause, n % burst == 0 {
                    used += threadCPU() - cpu0
                    pause()
                    cpu0 = threadCPU()
                }
            }
            used += threadCPU() - cpu0
            cpu.withLock { $0 += used }
            samples.withLock { $0 += mine }
            done.leave()
        }
        thread.start()
    }
    done.wait()
    let seconds = Double(monotonic() - start) / 1e9
    let sorted = samples.withLock { $0 }.sorted()
    let cpuPerCall = Double(cpu.withLock { $0 }) / Double(threads * perThread)
    return (sorted[sorted.count / 2], sorted[min(sorted.count - 1, sorted.count * 99 / 100)], seconds, cpuPerCall)
}
