import CSupport
import TelemetryFlowCore

/// Computes the page checksums of sealed segments and refreshes `meta.backup`, on a thread of its own at nice +10.
///
/// Checksumming a 64 MiB segment reads it back from the page cache (about 250 ms of CPU per GiB here, most of it
/// the copy); on the writer thread that stalled appends for 16 ms at every roll. Here it waits for a pause in
/// appends (50 ms without one), at most 10 s, so that a burst of appends does not share its cores with it. The writer hands each sealed
/// segment here and stores the checksums this thread computes (``WriterOperation/storeChecksums(_:_:)``); a
/// segment sealed by a process that stopped before its checksums were stored is validated page by page before its
/// first read instead (``Segment/Check/structure``), so the gap costs time, never safety.
/// `@unchecked Sendable`: `pending`, `stopping`, `current`, `hurry` and `thread` are read and written only with
/// `monitor` held; the closures it was given are `@Sendable`.
final class SegmentSealer: @unchecked Sendable {
    // @unchecked: `pending`, `stopping` and `thread` are guarded by `monitor`.
    enum Task: Equatable {
        case checksum(id: UInt64, path: String)
        case backup
    }

    private let monitor = Monitor(conditions: 1)
    private var pending: [Task] = []
    private var stopping = false
    /// The checksum this thread has taken and not stored yet (guarded by `monitor`).
    private var current: (id: UInt64, path: String)?
    /// Do the pending tasks now, without waiting for a pause (set by ``finish()``).
    private var hurry = false
    private var thread: NamedThread?
    private let store: @Sendable (UInt64, PageChecksums) -> Void
    private let backup: @Sendable () -> Void
    private let activity: @Sendable () -> UInt64
    /// A checksum waits for a lull in appends (no new event for `quietNanos`), at most `deferNanos`.
    static let quietNanos: UInt64 = 50_000_000
    static let deferNanos: UInt64 = 10_000_000_000

    /// - Parameters:
    ///   - store: hands computed checksums to the writer.
    ///   - backup: writes `meta.backup`.
    ///   - activity: the last appended sequence, to see when appends pause.
    init(
        store: @escaping @Sendable (UInt64, PageChecksums) -> Void, backup: @escaping @Sendable () -> Void,
        activity: @escaping @Sendable () -> UInt64
    ) {
        self.store = store
        self.backup = backup
        self.activity = activity
        let sealer = self
        thread = NamedThread(name: "tflow-sealer") { sealer.run() }
    }

    func request(_ task: Task) {
        monitor.lock()
        if !stopping && !pending.contains(task) { pending.append(task) }
        monitor.unlock()
        monitor.signal(0)
    }

    /// Computes the pending checksums on the caller's thread and hands them to the writer (which must still be
    /// running). Called when the log closes, so that a log closed right after a burst has its checksums; it does not
    /// wait for this thread (at nice +10 it may not run for a while on busy cores): a checksum it is computing now
    /// is computed here as well.
    func finish() {
        monitor.lock()
        hurry = true
        let checksums = pending.compactMap { task -> (UInt64, String)? in
            if case .checksum(let id, let path) = task { return (id, path) } else { return nil }
        }
        pending.removeAll { if case .checksum = $0 { return true } else { return false } }
        // The one this thread holds too: computing it twice is harmless, storing it late is not possible.
        let all = (current.map { [($0.id, $0.path)] } ?? []) + checksums
        monitor.unlock()
        for (id, path) in all {
            if let sums = try? PageChecksums.compute(path: path) { store(id, sums) }
        }
    }

    /// Drops what is still pending (the next open validates those segments instead) and ends the thread.
    func stop() {
        monitor.lock()
        stopping = true
        pending = []
        let running = thread
        thread = nil
        monitor.unlock()
        monitor.signal(0)
        running?.join()
    }

    /// Waits until appends pause or the deferral runs out; false when the sealer is stopping.
    private func waitForLull() -> Bool {
        let deadline = monotonicNanos() + Self.deferNanos
        var last = activity()
        var quietSince = monotonicNanos()
        while true {
            let now = monotonicNanos()
            if now >= deadline || now - quietSince >= Self.quietNanos { return true }
            monitor.lock()
            if stopping {
                monitor.unlock()
                return false
            }
            if hurry {
                monitor.unlock()
                return true
            }
            monitor.wait(0, until: now + 10_000_000)
            monitor.unlock()
            let current = activity()
            if current != last {
                last = current
                quietSince = monotonicNanos()
            }
        }
    }

    private func run() {
        _ = tf_lower_thread_priority(10)
        while true {
            monitor.lock()
            while pending.isEmpty && !stopping { monitor.wait(0) }
            if stopping {
                monitor.unlock()
                return
            }
            // A backup goes first: it is one small file, and it should not wait behind a checksum that waits for a
            // pause in appends (up to `deferNanos`), which left `meta.backup` as old as the last pause while a
            // service appended without one.
            let task = pending.remove(at: pending.firstIndex(of: .backup) ?? pending.startIndex)
            if case .checksum(let id, let path) = task { current = (id, path) }
            monitor.unlock()
            defer {
                monitor.lock()
                current = nil
                monitor.unlock()
            }
            switch task {
            case .checksum(let id, let path):
                // Reading a segment back costs CPU that producers and the writer need while they are busy; until
                // the checksums are stored a reader validates the segment page by page instead, so waiting for a
                // pause costs no safety.
                guard waitForLull() else { return }
                // A segment deleted meanwhile needs none.
                if let sums = try? PageChecksums.compute(path: path) { store(id, sums) }
            case .backup:
                backup()
            }
        }
    }
}
