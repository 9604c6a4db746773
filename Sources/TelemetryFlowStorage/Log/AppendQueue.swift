import CSupport
import Glibc
import Synchronization
import TelemetryFlowCore

/// Atomic 64-bit words, each alone on its 64-byte cache line, so that a word every producer writes does not
/// slow down reads of its neighbours.
/// `@unchecked Sendable`: the words are only ever accessed as `Atomic<UInt64>`s through the pointers this class
/// hands out; the allocation is made in `init`, never moves, and is freed in `deinit`, after every user is gone.
final class PaddedAtomics: @unchecked Sendable {
    private let allocation: UnsafeMutableRawPointer
    private let raw: UnsafeMutableRawPointer
    private let count: Int

    init(_ count: Int) {
        self.count = count
        // Plain malloc, rounded up to the line by hand (an over-aligned allocation goes through memalign,
        // which fragments the heap).
        allocation = .allocate(byteCount: 64 * count + 64, alignment: 16)
        raw = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: allocation) + 63) & ~63)!
        for i in 0..<count { (raw + 64 * i).bindMemory(to: Atomic<UInt64>.self, capacity: 1).initialize(to: Atomic(0)) }
    }

    deinit {
        for i in 0..<count { _ = self[i].deinitialize(count: 1) }
        allocation.deallocate()
    }

    @inline(__always)
    subscript(index: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (raw + 64 &* index).assumingMemoryBound(to: Atomic<UInt64>.self)
    }
}

/// Waiting for another thread that is about to store something: spin a little, then nap 20 µs at a time.
///
/// The awaited thread may have been preempted mid-way (three busy threads on two cores) and be queued behind a
/// busy thread on the other core. Napping leaves this core idle, so the scheduler moves the awaited thread onto
/// it at once; yielding (`sched_yield`) kept the core busy and the wait lasted the other thread's whole time
/// slice — tens of thousands of yields per million events, measured.
struct BriefWait {
    private var spins = 0

    @inline(__always)
    mutating func pause() {
        spins += 1
        if spins > 64 { usleep(20) }
    }
}

/// A fixed block of memory holding encoded records back to back: producers fill one while the writer commits
/// the other.
/// `@unchecked Sendable`: producers write only the byte ranges their atomic reservation on the queue's tail gave
/// them (and publish completion through `copied`); the writer reads the buffer, and sets `count`, only after it
/// swapped the buffer out and `copied` reached the reserved bytes, so no byte is written and read at once.
final class RecordBuffer: @unchecked Sendable {
    static let stripes = 16

    let base: UnsafeMutableRawPointer
    let capacity: Int
    /// Bytes of complete records (writer side, once the buffer is taken).
    var count = 0
    /// Bytes producers finished copying in, spread over cache lines by producer thread: each of the first 15
    /// producer threads adds to a line of its own, later ones share the last, and the writer sums them.
    let copied: PaddedAtomics

    init(capacity: Int) {
        self.capacity = capacity
        // The small block first: below the large one on the heap, it does not keep the large one's memory
        // from being returned once freed.
        copied = PaddedAtomics(RecordBuffer.stripes)
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// Makes the buffer empty again (writer side, before it is handed back to producers).
    func reset() {
        count = 0
        for stripe in 0..<Self.stripes { copied[stripe].pointee.store(0, ordering: .relaxed) }
    }

    /// Records that `bytes` more bytes are copied in (producer side, after the copy).
    @inline(__always)
    func finishedCopying(_ bytes: Int) {
        let slot = Int(truncatingIfNeeded: tf_thread_slot())
        guard slot < Self.stripes - 1 else {
            // Threads beyond the first 15 to record share the last line, with an atomic add.
            copied[Self.stripes - 1].pointee.wrappingAdd(UInt64(bytes), ordering: .releasing)
            return
        }
        // The line is this thread's alone (slots are never given twice), and the writer only resets it once every
        // copy into the buffer is counted: a load and a releasing store suffice. A locked add (a full barrier on
        // x86) waited for the copy's stores to drain — about 7 ns per append here, measured.
        let line = copied[slot]
        line.pointee.store(line.pointee.load(ordering: .relaxed) &+ UInt64(bytes), ordering: .releasing)
    }

    /// Waits until the producers have copied `bytes` bytes in (a few nanoseconds, unless a producer was
    /// descheduled in the middle of its copy).
    func waitUntilCopied(_ bytes: Int) {
        var wait = BriefWait()
        while true {
            var total: UInt64 = 0
            for stripe in 0..<Self.stripes { total &+= copied[stripe].pointee.load(ordering: .acquiring) }
            if total == UInt64(bytes) { return }
            wait.pause()
        }
    }
}

/// The bounded multi-producer queue between callers and the writer thread.
///
/// A producer reserves room for its record and takes its sequence number with one atomic add on a shared
/// word (`tail`: which of the two buffers is current, how many records and bytes it holds, and whether the
/// queue is closed), copies the record in, and marks its bytes copied on a cache line of its own. No lock is
/// taken on the way, so producer threads never wait for one another. The writer swaps the two buffers by
/// exchanging `tail` (under the queue's lock, which also guards its operations and the sleeping and waking),
/// then waits for copies still in flight. Memory stays bounded by twice ``LogConfiguration/queueCapacityBytes``
/// whatever the backlog on disk.
///
/// A reservation that runs past the buffer's capacity is void: its producer waits for the next buffer (or
/// drops the record, per ``QueuePolicy``) and tries again. Since offsets and record counts grow together, the
/// valid reservations are a prefix; the first void one records where that prefix ends (the buffer's seal), and
/// the next buffer's sequences continue from there, so sequences have no gaps.
/// `@unchecked Sendable`: the tail and writer-state words are atomics; `operations`, `hurried`, `stopping`,
/// `spaceWaiters` and the other `var`s are read and written only with `monitor` held; the record buffers follow
/// ``RecordBuffer``'s rule.
final class AppendQueue: @unchecked Sendable {
    private static let writerCondition = 0
    private static let spaceCondition = 1

    // `tail`: bits 0–33 bytes, 34–61 records, 62 the current buffer, 63 closed.
    private static let bytesMask: UInt64 = (1 << 34) - 1
    private static let recordShift: UInt64 = 34
    private static let recordsMask: UInt64 = (1 << 28) - 1
    private static let bufferBit: UInt64 = 1 << 62
    private static let closedBit: UInt64 = 1 << 63
    /// The largest queue the layout of `tail` allows room for (with overshooting reservations on top).
    static let maxCapacityBytes = 1 << 30

    // Lines of `hot`: the tail, each buffer's first sequence (0 while the writer is still computing it),
    // each buffer's seal (closed bit | valid records << 34 | valid bytes, 0 until a reservation overshoots),
    // and the writer's state for producers (bit 0 waiting, bit 1 lingering).
    private let hot = PaddedAtomics(6)
    private var tail: UnsafeMutablePointer<Atomic<UInt64>> { hot[0] }
    private func firstSequence(_ buffer: Int) -> UnsafeMutablePointer<Atomic<UInt64>> { hot[1 + buffer] }
    private func seal(_ buffer: Int) -> UnsafeMutablePointer<Atomic<UInt64>> { hot[3 + buffer] }
    private var writerState: UnsafeMutablePointer<Atomic<UInt64>> { hot[5] }
    private static let writerWaitingFlag: UInt64 = 1
    private static let writerLingeringFlag: UInt64 = 2

    private let buffers: [RecordBuffer]
    // The same two buffers, for producers to reach without reference counting (`buffers` keeps them alive).
    private let firstBuffer: Unmanaged<RecordBuffer>
    private let secondBuffer: Unmanaged<RecordBuffer>
    private let monitor = Monitor(conditions: 2)
    private let capacity: Int
    private let maxRecord: Int
    private let policy: QueuePolicy
    private let blockNanos: UInt64

    // Guarded by `monitor`.
    private var operations: [WriterOperation] = []
    /// A flush is waiting: the writer takes what is queued without lingering.
    private var hurried = false
    private var stopping = false
    /// The tail as it was when the queue closed (0 while open): what was reserved before the close.
    private var tailAtClose: UInt64 = 0
    /// The writer has taken the buffer that was current when the queue closed.
    private var closedBufferTaken = false
    /// Producers waiting for room.
    private var spaceWaiters = 0
    private var spaceWaits = 0
    /// Tests only: runs on a producer that found the queue full, before it takes the lock to wait.
    var beforeSpaceWait: (@Sendable () -> Void)?
    /// The writer lingers while fewer bytes than this are queued.
    private let batchBytes: Int
    /// How long the writer lingers at most.
    static let lingerNanos: UInt64 = 1_000_000

    /// The bytes one record buffer needs: a full queue plus one record that may overshoot it.
    static func bufferCapacity(_ configuration: LogConfiguration) -> Int {
        configuration.queueCapacityBytes + configuration.effectiveMaxRecordBytes
    }

    init(configuration: LogConfiguration, nextSequence: UInt64) {
        precondition(configuration.queueCapacityBytes <= Self.maxCapacityBytes, "queueCapacityBytes is validated")
        capacity = configuration.queueCapacityBytes
        maxRecord = configuration.effectiveMaxRecordBytes
        policy = configuration.queuePolicy
        blockNanos = UInt64(configuration.blockTimeoutMilliseconds) * 1_000_000
        batchBytes = max(configuration.queueCapacityBytes / 8, 1)
        buffers = [RecordBuffer(capacity: Self.bufferCapacity(configuration)), RecordBuffer(capacity: Self.bufferCapacity(configuration))]
        firstBuffer = .passUnretained(buffers[0])
        secondBuffer = .passUnretained(buffers[1])
        firstSequence(0).pointee.store(nextSequence, ordering: .relaxed)
    }

    /// The buffer the writer starts with (the one producers do not fill first).
    var writerBuffer: RecordBuffer { buffers[1] }

    @inline(__always) private static func bytes(_ tail: UInt64) -> Int { Int(tail & bytesMask) }
    @inline(__always) private static func records(_ tail: UInt64) -> Int { Int((tail >> recordShift) & recordsMask) }
    @inline(__always) private static func buffer(_ tail: UInt64) -> Int { tail & bufferBit == 0 ? 0 : 1 }

    /// The value of `word` once it is non-zero: another thread is about to store it (a few nanoseconds, unless
    /// that thread was descheduled in between).
    @inline(__always)
    private static func awaitNonZero(_ word: UnsafeMutablePointer<Atomic<UInt64>>) -> UInt64 {
        var value = word.pointee.load(ordering: .acquiring)
        var wait = BriefWait()
        while value == 0 {
            wait.pause()
            value = word.pointee.load(ordering: .acquiring)
        }
        return value
    }

    /// The first sequence of `buffer`, waiting the moment the writer may still be computing it.
    @inline(__always)
    private func knownFirstSequence(_ buffer: Int) -> UInt64 { Self.awaitNonZero(firstSequence(buffer)) }

    /// How many records and bytes of the buffer `tail` describes are valid reservations.
    ///
    /// Once the queue is closed, reservations made after the close are void (their producers copy nothing): the
    /// buffer that was current then holds what was reserved before, and a buffer made current later holds none.
    /// Called under the lock.
    private func validExtent(_ tail: UInt64) -> (records: Int, bytes: Int) {
        var tail = tail
        if tail & Self.closedBit != 0 {
            guard !closedBufferTaken && Self.buffer(tailAtClose) == Self.buffer(tail) else { return (0, 0) }
            tail = tailAtClose
        }
        guard Self.bytes(tail) > capacity else { return (Self.records(tail), Self.bytes(tail)) }
        // A reservation overshot; the producer that crossed the end records the valid prefix right after.
        let sealed = Self.awaitNonZero(seal(Self.buffer(tail)))
        return (Self.records(sealed), Self.bytes(sealed))
    }

    /// How many times a producer slept waiting for room in the queue.
    var spaceWaitCount: Int {
        monitor.lock()
        defer { monitor.unlock() }
        return spaceWaits
    }

    /// The sequence the next appended event will get, minus one: everything up to it has been queued.
    var lastQueuedSequence: UInt64 {
        // Under the lock no swap happens between reading the tail and its buffer's first sequence.
        monitor.lock()
        defer { monitor.unlock() }
        let current = tail.pointee.load(ordering: .acquiring)
        return knownFirstSequence(Self.buffer(current)) + UInt64(validExtent(current).records) - 1
    }

    /// Copies one encoded record into the queue.
    ///
    /// A full queue drops the record with ``DropReason/queueFull``; the caller tells whether the quota was the
    /// cause.
    func append(_ record: UnsafeRawBufferPointer) -> AppendOutcome {
        let size = record.count
        if size > maxRecord { return .dropped(.tooLarge) }
        var deadline: UInt64 = 0
        while true {
            let seen = tail.pointee.load(ordering: .relaxed)
            if seen & Self.closedBit != 0 { return .dropped(.closed) }
            if Self.bytes(seen) + size <= capacity, let outcome = reserveAndCopy(record) { return outcome }
            // Full: wait for the writer to swap buffers (or drop, per policy).
            if policy == .dropNewest { return .dropped(.queueFull) }
            let now = monotonicNanos()
            if deadline == 0 { deadline = now + blockNanos }
            if now >= deadline { return .dropped(.queueFull) }
            beforeSpaceWait?()
            // Wait while the current buffer has no room for the record — not "while the buffer seen full is
            // current": by now the writer may have swapped twice, making that same buffer current again, empty,
            // and with no producer left to fill it, no swap would come to wake this one.
            monitor.lock()
            while Self.bytes(tail.pointee.load(ordering: .acquiring)) + size > capacity
                && tail.pointee.load(ordering: .relaxed) & Self.closedBit == 0 && monotonicNanos() < deadline
            {
                spaceWaiters += 1
                spaceWaits += 1
                monitor.wait(Self.spaceCondition, until: deadline)
                spaceWaiters -= 1
            }
            monitor.unlock()
        }
    }

    /// Reserves room for `record` with one atomic add on the tail and copies it in: the outcome, or nil when the
    /// reservation ran past the buffer's end (void; the caller waits for room).
    ///
    /// A reservation made once the queue is closed is void too: ``stop()`` recorded how far the valid ones go.
    @inline(__always)
    func reserveAndCopy(_ record: UnsafeRawBufferPointer) -> AppendOutcome? {
        let size = record.count
        let old = tail.pointee.wrappingAdd(1 << Self.recordShift | UInt64(size), ordering: .sequentiallyConsistent).oldValue
        if old & Self.closedBit != 0 { return .dropped(.closed) }
        let at = Self.bytes(old)
        let index = Self.buffer(old)
        guard at + size <= capacity else {
            // Void: past the end. The reservation that crossed it seals the valid prefix.
            if at <= capacity {
                // The top bit marks the seal as set whatever it holds (0 means not sealed yet).
                seal(index).pointee.store(
                    Self.closedBit | UInt64(Self.records(old)) << Self.recordShift | UInt64(at), ordering: .releasing)
            }
            return nil
        }
        let target = index == 0 ? firstBuffer : secondBuffer
        let sequence = knownFirstSequence(index) + UInt64(Self.records(old))
        target._withUnsafeGuaranteedRef { buffer in
            if let source = record.baseAddress { (buffer.base + at).copyMemory(from: source, byteCount: size) }
            buffer.finishedCopying(size)
        }
        var writer = writerState.pointee.load(ordering: .sequentiallyConsistent)
        while writer & Self.writerWaitingFlag != 0 && (writer & Self.writerLingeringFlag == 0 || at + size >= batchBytes) {
            // One producer wakes the writer: the one that clears its state. The others, until the writer is awake
            // and takes the buffer, would each take the lock to signal a thread already signalled (measured: a
            // few hundred signals per wake-up, 8 % of a counter add).
            let (cleared, now) = writerState.pointee.compareExchange(expected: writer, desired: 0, ordering: .sequentiallyConsistent)
            if cleared {
                monitor.lock()
                monitor.signal(Self.writerCondition)
                monitor.unlock()
                break
            }
            writer = now
        }
        return .appended(sequence: sequence)
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
        /// The first taken record's sequence (meaningful when `count` > 0).
        var firstSequence: UInt64
        var count: Int
        var operations: [WriterOperation]
        var stopping: Bool
    }

    /// Asks the writer to take what is queued now rather than linger (a flush is waiting for it).
    func hurry() {
        monitor.lock()
        hurried = true
        let wake = writerState.pointee.load(ordering: .relaxed) & Self.writerWaitingFlag != 0
        monitor.unlock()
        if wake { monitor.signal(Self.writerCondition) }
    }

    /// Writer side: waits until there are records or operations (or `deadline`), then swaps the record buffer
    /// with `spare` (which must be the empty, reset buffer) when `takeRecords` is true; the records are
    /// complete on return.
    ///
    /// Group commit: when only a few records are queued (less than an eighth of the queue), the writer waits up
    /// to ``lingerNanos`` for more, so that one transaction carries many records instead of one commit per
    /// wake-up; producers do not wake it while it lingers until the batch is big enough, and a flush
    /// (``hurry()``), an operation, or closing ends the wait at once.
    func take(into spare: inout RecordBuffer, takeRecords: Bool, until deadline: UInt64) -> Work {
        monitor.lock()
        var lingerUntil: UInt64 = 0
        while operations.isEmpty && !stopping {
            let queued = tail.pointee.load(ordering: .sequentiallyConsistent)
            if takeRecords && Self.records(queued) > 0 {
                if hurried || Self.bytes(queued) >= batchBytes { break }
                let now = monotonicNanos()
                if lingerUntil == 0 { lingerUntil = min(now + Self.lingerNanos, deadline) }
                if now >= lingerUntil { break }
                writerState.pointee.store(Self.writerWaitingFlag | Self.writerLingeringFlag, ordering: .sequentiallyConsistent)
                // A producer that reserved before the flag was visible did not see it: look again.
                let again = tail.pointee.load(ordering: .sequentiallyConsistent)
                if Self.bytes(again) < batchBytes { _ = monitor.wait(Self.writerCondition, until: lingerUntil) }
                writerState.pointee.store(0, ordering: .relaxed)
                continue
            }
            writerState.pointee.store(Self.writerWaitingFlag, ordering: .sequentiallyConsistent)
            if takeRecords && Self.records(tail.pointee.load(ordering: .sequentiallyConsistent)) > 0 {
                writerState.pointee.store(0, ordering: .relaxed)
                continue
            }
            let signalled = monitor.wait(Self.writerCondition, until: deadline)
            writerState.pointee.store(0, ordering: .relaxed)
            if !signalled && monotonicNanos() >= deadline { break }
        }
        let current = tail.pointee.load(ordering: .relaxed)
        let index = Self.buffer(current)
        var work = Work(firstSequence: 0, count: 0, operations: [], stopping: stopping)
        var swapped = false
        if takeRecords && Self.records(current) > 0 {
            let next = 1 - index
            precondition(spare === buffers[next], "the writer hands back the buffer it was given")
            firstSequence(next).pointee.store(0, ordering: .relaxed)
            seal(next).pointee.store(0, ordering: .relaxed)
            // From here producers fill the other buffer (closed stays closed).
            let old = tail.pointee.exchange(
                (next == 1 ? Self.bufferBit : 0) | (current & Self.closedBit), ordering: .sequentiallyConsistent)
            let valid = validExtent(old)
            if old & Self.closedBit != 0 { closedBufferTaken = true }
            let first = knownFirstSequence(index)
            firstSequence(next).pointee.store(first + UInt64(valid.records), ordering: .releasing)
            work.firstSequence = first
            work.count = valid.records
            spare = buffers[index]
            spare.count = valid.bytes
            hurried = false
            swapped = true
        }
        swap(&work.operations, &operations)
        let wakeProducers = swapped && spaceWaiters > 0
        monitor.unlock()
        if swapped {
            if wakeProducers { monitor.broadcast(Self.spaceCondition) }
            spare.waitUntilCopied(spare.count)
        }
        return work
    }

    /// Stops accepting records and operations; the writer drains what is queued.
    func stop() {
        monitor.lock()
        stopping = true
        let old = tail.pointee.bitwiseOr(Self.closedBit, ordering: .sequentiallyConsistent).oldValue
        // What was reserved before this moment is valid; a producer that reserves after it sees the closed bit
        // and copies nothing. (Under the lock, so the writer never sees the bit without this.)
        if old & Self.closedBit == 0 { tailAtClose = old }
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
    /// Record sequence ranges a reader found lost or damaged and, with `damagedSegment`, mark that segment as
    /// read through the page walker from now on.
    case recordLost([(ClosedRange<UInt64>, String)], damagedSegment: UInt64?)
    /// Store the page checksums the sealer computed for a sealed segment.
    case storeChecksums(UInt64, PageChecksums)
    /// A counter changed off the writer thread (a plugin's drop): wakes an idle writer to persist the counters.
    case countersChanged
}
