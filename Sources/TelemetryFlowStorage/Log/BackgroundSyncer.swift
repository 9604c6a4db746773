import CSupport
import Synchronization
import TelemetryFlowCore

/// Flushes log files to disk on a thread of its own, for ``Durability/interval(milliseconds:)``.
///
/// Under `interval` the writer thread commits without syncing; every interval it asks this thread to sync the
/// active segment, the metadata file and the segments it sealed since the previous interval. The writer
/// therefore never waits for the disk: a sync of a whole 64 MiB segment takes tens of milliseconds, long
/// enough to fill the append queue. Each file is synced through a descriptor of its own (`fdatasync`), which
/// covers every write made to it before the call; a file deleted in the meantime is skipped. The thread runs at
/// nice +10 relative to the process.
/// `@unchecked Sendable`: `pending`, `stopping` and `thread` are read and written only with `monitor` held;
/// the counters are atomic or behind `Locked`.
final class BackgroundSyncer: @unchecked Sendable {
    private let monitor = Monitor(conditions: 1)
    // Guarded by `monitor`.
    private var pending: [String] = []
    private var stopping = false
    private var thread: NamedThread?
    /// Files synced since the log was opened.
    let completed = Atomic<UInt64>(0)
    /// The last sync that failed, cleared by the next one that succeeds.
    let lastFailure = Locked<String?>(nil)

    init() {
        let syncer = self
        thread = NamedThread(name: "tflow-sync") { syncer.run() }
    }

    /// Asks for `paths` to be synced (once each, however often they are asked for before the thread gets to them).
    func request(_ paths: [String]) {
        monitor.lock()
        for path in paths where !pending.contains(path) { pending.append(path) }
        monitor.unlock()
        monitor.signal(0)
    }

    /// Syncs what is still pending, then ends the thread. Calling it twice is harmless.
    func stop() {
        monitor.lock()
        stopping = true
        let running = thread
        thread = nil
        monitor.unlock()
        monitor.signal(0)
        running?.join()
    }

    private func run() {
        // Writing a file's dirty pages back costs CPU too (about 1.5 µs per 4 KiB page here, in this thread's
        // fdatasync); at nice +10 it yields to the writer and the producers when the cores are busy, instead of
        // taking a third of a core from them while it runs.
        _ = tf_lower_thread_priority(10)
        while true {
            monitor.lock()
            while pending.isEmpty && !stopping { monitor.wait(0) }
            let batch = pending
            pending = []
            let done = stopping && batch.isEmpty
            monitor.unlock()
            if done { return }
            for path in batch {
                do throws(TelemetryFlowError) {
                    if try PosixFile.syncData(path) { completed.add(1, ordering: .relaxed) }
                    lastFailure.withLock { $0 = nil }
                } catch {
                    lastFailure.withLock { $0 = error.description }
                }
            }
        }
    }
}
