import CLMDB
import Glibc
import Synchronization
import TelemetryFlowCore

/// The shared state behind ``EventLog``: the queue, the segment list, cursors, counters and the writer thread.
/// (The public class wraps it so that the writer thread, which holds the engine, does not keep the log alive.)
///
/// `@unchecked Sendable`: shared state is behind `Locked` or atomics; `writer` (the ``WriterState``) is read and
/// written only by the writer thread, and by `init` and `close()` when that thread is not running (before
/// `start()`, after it was joined); `recoveryReport` is written only in `init`.
final class LogEngine: @unchecked Sendable {
    let configuration: LogConfiguration
    let directory: String
    let meta: MetadataStore
    let fileLock: Locked<FileLock?>
    let queue: AppendQueue
    var recoveryReport = RecoveryReport()

    /// The segments readers may open, oldest first. Replaced (never mutated in place) by the writer.
    let segmentList: Locked<[Segment]>
    let cursorState: Locked<[String: UInt64]>
    /// Sequence ranges found lost or damaged (each counted once).
    let lost: Locked<LostRanges>
    /// Flush waiters, the processed sequence, drops not yet reported, and the commit watch consumers sleep on.
    let flushes = FlushTracker()
    let closed = Atomic<Bool>(false)
    /// Committed, corrupted and dropped totals, bytes on disk, the last error.
    let counters: LogCounters
    private let thread = Locked<NamedThread?>(nil)
    /// Syncs files off the writer thread under ``Durability/interval(milliseconds:)``; nil in the other modes.
    let syncer: BackgroundSyncer?
    /// Checksums sealed segments and refreshes the metadata backup off the writer thread (set in `start()`).
    private(set) var sealer: SegmentSealer?
    /// How many times `meta.backup` was written by this process; its lock keeps the writer and the sealer from
    /// writing the backup at the same time.
    let backupsWritten = Locked<UInt64>(0)

    /// Writer-thread state: touched only by the writer thread after `start()`.
    var writer: WriterState

    /// Called by the writer when it drops sequences it had handed out, before it publishes them as processed.
    func recordDrop(_ range: ClosedRange<UInt64>, reason: DropReason, cause: TelemetryFlowError?) {
        let error: TelemetryFlowError
        if let cause {
            let errno = (cause.underlying as? CResultCode)?.code
            let code: TelemetryFlowError.Code = isDiskFull(cause) ? .diskFull : (cause.code == .io || errno == EIO ? .io : .storage)
            error = TelemetryFlowError(code, "writing failed (\(reason)): \(cause.message)", underlying: cause.underlying)
        } else {
            error = TelemetryFlowError(.quotaExceeded, "the disk quota of \(configuration.quotaBytes) bytes is full (\(reason))")
        }
        flushes.recordDrop(range, error)
    }

    var processedSequence: UInt64 { flushes.processed }

    var firstRetainedSequence: UInt64? {
        let segments = segmentList.withLock { $0 }
        guard let first = segments.first else { return nil }
        return first.firstSequence
    }

    init(configuration: LogConfiguration) throws {
        self.configuration = configuration
        directory = configuration.directory.hasSuffix("/") && configuration.directory.count > 1
            ? String(configuration.directory.dropLast()) : configuration.directory
        try PosixFile.makeDirectories(directory)
        let recovered = try LogRecovery.open(directory: directory, configuration: configuration)
        meta = recovered.meta
        fileLock = Locked(recovered.lock)
        recoveryReport = recovered.report
        segmentList = Locked(recovered.segments.map(\.segment))
        cursorState = Locked(recovered.cursors)
        lost = Locked(recovered.lost)
        counters = LogCounters(persisted: recovered.counters)
        queue = AppendQueue(configuration: configuration, nextSequence: recovered.nextSequence)
        flushes.publish(recovered.nextSequence - 1)
        writer = WriterState(
            segments: recovered.segments, committed: recovered.nextSequence - 1,
            spare: queue.writerBuffer, now: monotonicNanos())
        writer.stored = recovered.counters["stored_through"] ?? 0
        counters.diskBytes.store(writer.totalBytes, ordering: .relaxed)
        if case .interval = configuration.durability { syncer = BackgroundSyncer() } else { syncer = nil }
    }

    func start() {
        let engine = self
        sealer = SegmentSealer(
            store: { id, sums in _ = engine.queue.submit(.storeChecksums(id, sums)) },
            backup: { engine.writeBackup() },
            activity: { engine.queue.lastQueuedSequence })
        thread.withLock { $0 = NamedThread(name: "tflow-writer") { engine.writerMain() } }
    }

    // MARK: Producer side

    /// Encodes `event` on the caller's stack and queues the record.
    func append(_ event: borrowing TelemetryEvent, timestampUnixNano: UInt64) -> AppendOutcome {
        // The writer thread computes the checksum as it commits the record.
        EventCodec.withUnsealedRecord(event, timestampUnixNano: timestampUnixNano) { append($0) }
    }

    @inline(__always)
    func append(_ record: UnsafeRawBufferPointer) -> AppendOutcome {
        var outcome = queue.append(record)
        if case .dropped(var reason) = outcome {
            // A queue that stayed full while the writer was held by the byte quota is the quota's doing.
            if reason == .queueFull && counters.stalledByQuota.load(ordering: .relaxed) { reason = .quotaBlockTimeout }
            counters.countDrop(reason, 1)
            outcome = .dropped(reason)
        }
        return outcome
    }

    func flush() async throws -> UInt64 {
        let target = queue.lastQueuedSequence
        queue.hurry()
        return try await flushes.wait(through: target)
    }

    /// Called by the writer once everything up to `sequence` is committed or dropped.
    func publishProcessed(_ sequence: UInt64) { flushes.publish(sequence) }

    // MARK: Cursors

    func setCursors(_ changes: [String: UInt64?], validate: Bool, extra: MetadataWrite? = nil) async throws {
        if validate {
            for (name, position) in changes {
                guard !name.isEmpty, name.utf8.count <= 200 else {
                    throw TelemetryFlowError(.invalidArgument, "cursor name \"\(name)\" must be 1–200 bytes")
                }
                guard let position else { continue }
                let last = queue.lastQueuedSequence
                guard position <= last else {
                    throw TelemetryFlowError(
                        .invalidArgument, "cursor \(name) cannot move to \(position): the last appended sequence is \(last)")
                }
                if let first = firstRetainedSequence, position + 1 < first {
                    throw TelemetryFlowError(
                        .invalidArgument,
                        "cursor \(name) cannot move to \(position): the log retains sequences from \(first) on")
                }
            }
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let submitted = queue.submit(.setCursors(changes, extra: extra, done: { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }))
            if !submitted { continuation.resume(throwing: TelemetryFlowError(.closed, "the log is closed")) }
        }
    }

    func position(beforeTimestamp timestamp: UInt64) throws -> UInt64 {
        // Segments are in sequence order and timestamps are nearly monotonic: scan batches from the start.
        var position = (firstRetainedSequence ?? 1) - 1
        while true {
            let batch = try read(after: position, maxCount: 4096, maxBytes: 16 << 20, types: nil)
            if batch.isEmpty { return position }
            for event in batch where event.timestampUnixNano >= timestamp { return event.sequence - 1 }
            position = batch.endSequence
        }
    }

    // MARK: Status

    func statistics() -> LogStatistics {
        let segments = segmentList.withLock { $0 }
        return LogStatistics(
            appended: queue.lastQueuedSequence,
            committed: counters.committed.load(ordering: .relaxed),
            dropped: counters.drops.withLock { $0.byReason },
            corrupted: counters.corrupted.load(ordering: .relaxed),
            firstSequence: segments.isEmpty ? nil : segments[0].firstSequence,
            lastSequence: processedSequence,
            segmentCount: segments.count,
            diskBytes: counters.diskBytes.load(ordering: .relaxed),
            cursors: cursorState.withLock { $0 },
            droppedPerCursor: counters.droppedPerCursor.withLock { $0 },
            lostRanges: lost.withLock { $0.ranges },
            lastError: counters.lastError.withLock { $0 } ?? syncer?.lastFailure.withLock { $0 })
    }

    // MARK: Closing

    func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Checksums of segments sealed since the last pause are computed now, while the writer can store them.
        sealer?.finish()
        queue.stop()
        let writerThread = thread.withLock { t -> NamedThread? in
            defer { t = nil }
            return t
        }
        writerThread?.join()
        sealer?.stop()
        // The sealer's closures hold the engine: dropping the sealer breaks that cycle, so a closed log is freed
        // (AddressSanitizer's leak check found every closed engine, with its queue buffers, still allocated).
        sealer = nil
        syncer?.stop()
        // Release the files so the log can be reopened, here or by another process. Readers still inside a
        // segment keep its environment open until they finish.
        writer.segments = []
        segmentList.withLock { $0 = [] }
        meta.env.close()
        fileLock.withLock { $0 = nil }
        flushes.close()
    }
}
