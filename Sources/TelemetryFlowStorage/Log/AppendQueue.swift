import Glibc
import Synchronization
import TelemetryFlowCore

/// A fixed block of memory holding encoded records back to back: the queue fills one while the writer commits
/// the other.
final class RecordBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    /// Bytes handed out to producers. The queue's lock guards it while this is the queue's buffer; the writer
    /// owns it once taken.
    var count = 0
    /// Bytes producers have finished copying in: the buffer is complete when it equals `count`.
    let copied = Atomic<Int>(0)

    init(capacity: Int) {
        self.capacity = capacity
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Makes the buffer empty again (writer side, before handing it back).
    func reset() {
        count = 0
        copied.store(0, ordering: .relaxed)
    }

    /// Waits until every producer that reserved space has copied its record (a few nanoseconds, unless a
    /// producer was descheduled in the middle of its copy).
    func waitUntilComplete() {
        var spins = 0
        while copied.load(ordering: .acquiring) != count {
            spins += 1
            if spins > 64 { sched_yield() }
        }
    }
}

/// The bounded multi-producer queue between callers and the writer thread.
///
/// Producers encode their record on their own stack, then, holding the lock only to reserve space and take the
/// next sequence number, copy it into the shared buffer after releasing the lock — so producers on several
/// threads copy in parallel and rarely meet on the lock. The writer swaps the whole buffer for an empty one (and
/// waits for copies still in flight), so memory stays bounded by twice ``LogConfiguration/queueCapacityBytes``
/// whatever the backlog on disk.
final class AppendQueue: @unchecked Sendable {
    private static let writerCondition = 0
    private static let spaceCondition = 1

    private let monitor = Monitor(conditions: 2)
    private let capacity: Int
    private let maxRecord: Int
    private let policy: QueuePolicy
    private let blockNanos: UInt64

    // Guarded by `monitor`.
    private var buffer: RecordBuffer
    private var count = 0
    private var nextSequence: UInt64
    private var operations: [WriterOperation] = []
    private var writerWaiting = false
    /// The writer holds a few records and waits briefly for more (see ``take(into:takeRecords:until:)``).
    private var writerLingering = false
    /// A flush is waiting: the writer takes what is queued without lingering.
    private var hurried = false
    private var stopping = false
    /// The writer lingers while fewer bytes than this are queued.
    private let batchBytes: Int
    /// How long the writer lingers at most.
    static let lingerNanos: UInt64 = 1_000_000

    /// The bytes one record buffer needs: a full queue plus one record that may overshoot it.
    static func bufferCapacity(_ configuration: LogConfiguration) -> Int {
        configuration.queueCapacityBytes + configuration.effectiveMaxRecordBytes
    }

    init(configuration: LogConfiguration, nextSequence: UInt64) {
        capacity = configuration.queueCapacityBytes
        maxRecord = configuration.effectiveMaxRecordBytes
        policy = configuration.queuePolicy
        blockNanos = UInt64(configuration.blockTimeoutMilliseconds) * 1_000_000
        batchBytes = max(configuration.queueCapacityBytes / 8, 1)
        buffer = RecordBuffer(capacity: Self.bufferCapacity(configuration))
        self.nextSequence = nextSequence
    }

    /// The sequence the next appended event will get, minus one: everything up to it has been queued.
    var lastQueuedSequence: UInt64 {
        monitor.lock()
        defer { monitor.unlock() }
        return nextSequence - 1
    }

    /// Copies one encoded record into the queue.
    ///
    /// A full queue drops the record with ``DropReason/queueFull``; the caller tells whether the quota was the
    /// cause.
    func append(_ record: UnsafeRawBufferPointer) -> AppendOutcome {
        if record.count > maxRecord { return .dropped(.tooLarge) }
        monitor.lock()
        var deadline: UInt64 = 0
        while true {
            if stopping {
                monitor.unlock()
                return .dropped(.closed)
            }
            if buffer.count + record.count <= capacity || count == 0 {
                // Not retained: both record buffers live as long as the queue, and the writer does not reuse
                // this one before its `copied` count shows this copy finished.
                let target = Unmanaged.passUnretained(buffer)
                let (base, filled) = target._withUnsafeGuaranteedRef { buffer in
                    let at = buffer.count
                    buffer.count += record.count
                    return (buffer.base + at, buffer.count)
                }
                count += 1
                let sequence = nextSequence
                nextSequence += 1
                let wake = writerWaiting && (!writerLingering || filled >= batchBytes)
                monitor.unlock()
                if let source = record.baseAddress { base.copyMemory(from: source, byteCount: record.count) }
                _ = target._withUnsafeGuaranteedRef { $0.copied.wrappingAdd(record.count, ordering: .releasing) }
                if wake { monitor.signal(Self.writerCondition) }
                return .appended(sequence: sequence)
            }
            if policy == .dropNewest {
                monitor.unlock()
                return .dropped(.queueFull)
            }
            let now = monotonicNanos()
            if deadline == 0 { deadline = now + blockNanos }
            if now >= deadline || !monitor.wait(Self.spaceCondition, until: deadline) && monotonicNanos() >= deadline {
                monitor.unlock()
                return .dropped(.queueFull)
            }
        }
    }

    /// Queues an operation for the writer thread.
    func submit(_ operation: WriterOperation) -> Bool {
        monitor.lock()
        guard !stopping else {
            monitor.unlock()
            return false
        }
        operations.append(operation)
        monitor.unlock()
        monitor.signal(Self.writerCondition)
        return true
    }

    struct Work {
        var firstSequence: UInt64
        var count: Int
        var operations: [WriterOperation]
        var stopping: Bool
    }

    /// Asks the writer to take what is queued now rather than linger (a flush is waiting for it).
    func hurry() {
        monitor.lock()
        hurried = true
        let wake = writerWaiting
        monitor.unlock()
        if wake { monitor.signal(Self.writerCondition) }
    }

    /// Writer side: waits until there are records or operations (or `deadline`), then swaps the record buffer
    /// with `spare` (which must be empty) when `takeRecords` is true; the records are complete on return.
    ///
    /// Group commit: when only a few records are queued (less than an eighth of the queue), the writer waits up
    /// to ``lingerNanos`` for more, so that one transaction carries many records instead of one commit per
    /// wake-up; producers do not wake it while it lingers until the batch is big enough, and a flush
    /// (``hurry()``), an operation, or closing ends the wait at once.
    func take(into spare: inout RecordBuffer, takeRecords: Bool, until deadline: UInt64) -> Work {
        monitor.lock()
        var lingerUntil: UInt64 = 0
        while operations.isEmpty && !stopping {
            if takeRecords && count > 0 {
                if hurried || buffer.count >= batchBytes { break }
                let now = monotonicNanos()
                if lingerUntil == 0 { lingerUntil = min(now + Self.lingerNanos, deadline) }
                if now >= lingerUntil { break }
                writerWaiting = true
                writerLingering = true
                _ = monitor.wait(Self.writerCondition, until: lingerUntil)
                writerWaiting = false
                writerLingering = false
                continue
            }
            writerWaiting = true
            let signalled = monitor.wait(Self.writerCondition, until: deadline)
            writerWaiting = false
            if !signalled && monotonicNanos() >= deadline { break }
        }
        var work = Work(firstSequence: nextSequence - UInt64(count), count: 0, operations: [], stopping: stopping)
        if takeRecords && count > 0 {
            swap(&buffer, &spare)
            work.count = count
            count = 0
            hurried = false
        }
        swap(&work.operations, &operations)
        let freed = work.count > 0
        monitor.unlock()
        if freed {
            monitor.broadcast(Self.spaceCondition)
            spare.waitUntilComplete()
        }
        return work
    }

    /// Stops accepting records and operations; the writer drains what is queued.
    func stop() {
        monitor.lock()
        stopping = true
        monitor.unlock()
        monitor.broadcast(Self.writerCondition)
        monitor.broadcast(Self.spaceCondition)
    }
}

/// Work other than records that only the writer thread may do (every LMDB write happens there).
/// Extra metadata writes committed with a cursor change.
typealias MetadataWrite = @Sendable (MetadataStore, OpaquePointer) throws(TelemetryFlowError) -> Void

enum WriterOperation: Sendable {
    /// Set (or with nil delete) cursors, then call `done` once the change is committed.
    /// `extra` runs inside the same metadata transaction (dead letters, projection checkpoints), so a cursor
    /// move and what it stands for commit together.
    case setCursors([String: UInt64?], extra: MetadataWrite?, done: @Sendable (TelemetryFlowError?) -> Void)
    /// Remember damaged sequences found by a reader.
    case quarantine([UInt64: String])
    /// Wake the writer to re-check retention and quota now.
    case collect
}
