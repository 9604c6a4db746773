import Foundation
import Synchronization
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

@Suite struct EventLogTests {
    @Test(arguments: [Durability.always, .interval(milliseconds: 50), .never])
    func appendFlushReadAndReopen(durability: Durability) async throws {
        let dir = TemporaryDirectory()
        let configuration = smallConfiguration(dir.log, durability: durability)
        do {
            let log = try EventLog(configuration)
            #expect(log.recoveryReport.created)
            for n in 0..<12000 { #expect(log.append(spanEvent(n), timestampUnixNano: UInt64(n)).sequence == UInt64(n + 1)) }
            #expect(try await log.flush() == 12000)
            try await log.setCursor("exporter", to: 1234)
            log.close()
        }
        let log = try EventLog(configuration)
        defer { log.close() }
        #expect(!log.recoveryReport.created)
        #expect(log.cursor("exporter") == 1234)
        let events = try readAll(log)
        #expect(events.map(\.sequence) == Array(1...12000))
        for (n, event) in events.enumerated() { #expect(try event.decode() == spanEvent(n)) }
        let stats = log.statistics
        #expect(stats.committed == 12000)
        #expect(stats.segmentCount > 1, "12000 × ~200 B spans several 1 MiB segments")
        #expect(log.append(counterEvent(1), timestampUnixNano: 1).sequence == 12001, "sequences continue after reopen")
    }

    /// The instruments' path leaves a measurement's time to the writer: it is stored stamped with its commit's
    /// time (between the append and the flush that returned), with no flag left in the envelope, and decodes as
    /// the measurement appended.
    @Test func aMeasurementFromTheInstrumentsPathIsStampedWithItsCommitTime() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log))
        defer { log.close() }
        let scope = InstrumentationScope(name: "lib", version: "1")
        let prefix = EventCodec.measurementPrefix(name: "requests", unit: "{request}", scope: scope)
        let before = wallClockNanos()
        let outcome = prefix.withUnsafeBytes {
            log.appendMeasurement(kind: .counter, prefix: $0, attributes: ["route": "/cart"], value: .int(3))
        }
        #expect(outcome.sequence == 1)
        try await log.flush()
        let after = wallClockNanos()
        let events = try readAll(log)
        #expect(events.count == 1)
        let stored = try #require(events.first)
        #expect(stored.timestampUnixNano >= before && stored.timestampUnixNano <= after)
        let envelope = try stored.record.withUnsafeBytes { bytes throws(TelemetryFlowError) in try EventCodec.envelope(of: bytes, sequence: 1) }
        #expect(envelope.flags == 0)
        let expected = MetricMeasurement(kind: .counter, name: "requests", unit: "{request}", scope: scope, attributes: ["route": "/cart"], value: .int(3))
        #expect(try stored.decode() == .measurement(expected))
    }

    /// A read of some types passes the others over by their type byte: it returns the asked-for records in order,
    /// its end sequence covers what it passed over, and passed-over records count towards `maxCount`.
    @Test func aReadOfSomeTypesPassesTheOthersOver() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log))
        defer { log.close() }
        for n in 0..<3000 { log.append(n % 3 == 0 ? spanEvent(n) : counterEvent(n), timestampUnixNano: UInt64(n)) }
        try await log.flush()
        var spans: [UInt64] = []
        var counters: [UInt64] = []
        var position: UInt64 = 0
        var batches = 0
        while true {
            let batch = try log.read(after: position, maxCount: 500, types: [.spanEnded])
            if batch.endSequence == position { break }
            #expect(batch.count + batch.passedOver <= 500)
            #expect(batch.allSatisfy { $0.type == .spanEnded })
            spans += batch.map(\.sequence)
            position = batch.endSequence
            batches += 1
        }
        #expect(spans == stride(from: 1, through: 3000, by: 3).map(UInt64.init))
        #expect(position == 3000 && batches == 6, "500 records examined per batch")
        position = 0
        while true {
            let batch = try log.read(after: position, maxCount: 4096, types: .measurements)
            if batch.endSequence == position { break }
            counters += batch.map(\.sequence)
            for event in batch { #expect(try event.decode() == counterEvent(Int(event.sequence) - 1)) }
            position = batch.endSequence
        }
        #expect(counters.count == 2000 && !counters.contains { $0 % 3 == 1 })
        let none = try log.read(after: 0, maxCount: 4096, types: [.logRecord])
        #expect(none.isEmpty && none.endSequence == 3000 && none.passedOver == 3000)
    }

    /// Under `interval` the writer hands the periodic syncs, sealed segments included, to the background syncer; under
    /// `never` nothing is synced before closing; under `always` every commit syncs, so there is no syncer.
    @Test func intervalSyncsSealedSegmentsOffTheWriterThread() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log, durability: .interval(milliseconds: 20)))
        defer { log.close() }
        for n in 0..<30000 { log.append(spanEvent(n), timestampUnixNano: UInt64(n)) }
        try await log.flush()
        let sealed = log.statistics.segmentCount - 1
        #expect(sealed >= 2, "30000 × ~200 B spans several 1 MiB segments")
        let syncer = try #require(log.engine.syncer)
        // Every sealed segment, plus at least one periodic sync of the active segment and the metadata.
        let deadline = Date().addingTimeInterval(10)
        while syncer.completed.load(ordering: .relaxed) < UInt64(sealed + 2) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(syncer.completed.load(ordering: .relaxed) >= UInt64(sealed + 2))
        #expect(log.statistics.lastError == nil)
        for durability in [Durability.never, .always] {
            let other = TemporaryDirectory()
            let log = try EventLog(smallConfiguration(other.log, durability: durability))
            #expect(log.engine.syncer == nil)
            log.close()
        }
    }

    /// `interval` syncs once per period: a segment sealed in between waits for the next periodic sync (or the
    /// close) instead of adding a sync of its own each time the writer rolls.
    @Test func intervalSyncsSealedSegmentsAtTheNextPeriodNotWhenTheyAreSealed() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log, durability: .interval(milliseconds: 600_000)))
        for n in 0..<30000 { log.append(spanEvent(n), timestampUnixNano: UInt64(n)) }
        try await log.flush()
        let sealed = log.statistics.segmentCount - 1
        #expect(sealed >= 2, "30000 × ~200 B spans several 1 MiB segments")
        let syncer = try #require(log.engine.syncer)
        try await Task.sleep(for: .milliseconds(200))
        #expect(syncer.completed.load(ordering: .relaxed) == 0, "no period has ended, so nothing was synced yet")
        log.close()
        #expect(syncer.completed.load(ordering: .relaxed) == UInt64(sealed), "closing syncs every sealed segment")
        #expect(log.statistics.lastError == nil)
    }

    /// The log's threads carry their names, so `top -H`, `perf` and /proc tell them apart from the caller's, and
    /// the syncer runs 10 nice steps below the writer.
    @Test func writerAndSyncerThreadsAreNamedAndTheSyncerYieldsToTheWriter() throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log, durability: .interval(milliseconds: 20)))
        defer { log.close() }
        /// The nice values of this process's threads by name (fields 2 and 19 of each task's stat).
        func threads() throws -> [String: Set<Int>] {
            var nice: [String: Set<Int>] = [:]
            for task in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") {
                guard let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                    let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                guard fields.count > 16, let value = Int(fields[16]) else { continue }
                nice[String(stat[stat.index(after: open)..<close]), default: []].insert(value)
            }
            return nice
        }
        func settled(_ nice: [String: Set<Int>]) -> Bool {
            guard let writer = nice["tflow-writer"]?.first else { return false }
            return nice["tflow-sync"] == [min(19, writer + 10)]
        }
        var nice = try threads()
        let deadline = Date().addingTimeInterval(10)
        while !settled(nice) && Date() < deadline {
            usleep(10_000)
            nice = try threads()
        }
        #expect(settled(nice), "tflow-writer and tflow-sync exist, the syncer 10 nice steps below: \(nice)")
    }

    @Test func syncingAFileThatWasDeletedIsNotAnError() throws {
        let dir = TemporaryDirectory()
        try PosixFile.makeDirectories(dir.path)
        #expect(try PosixFile.syncData(dir.path + "/gone") == false)
        try PosixFile.writeAtomically(dir.path + "/here", [1, 2, 3])
        #expect(try PosixFile.syncData(dir.path + "/here"))
    }

    @Test func cursorsReadAfterTheirPositionAndRewind() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log))
        defer { log.close() }
        for n in 0..<100 { log.append(counterEvent(n), timestampUnixNano: UInt64(n) * 10) }
        try await log.flush()
        #expect(try await log.registerCursor("a") == 0)
        #expect(try await log.registerCursor("b", startingAt: .end) == 100)
        let batch = try log.read(after: 40, maxCount: 10)
        #expect(batch.map(\.sequence) == Array(41...50))
        #expect(batch.endSequence == 50)
        try await log.setCursor("a", to: batch.endSequence)
        #expect(log.cursor("a") == 50)
        #expect(try await log.rewindCursor("a", toTime: 205) == 21)
        let pastEnd = await #expect(throws: TelemetryFlowError.self) { try await log.setCursor("a", to: 1000) }
        #expect(pastEnd?.code == .invalidArgument)
        try await log.removeCursor("b")
        #expect(log.cursors == ["a": 21])
    }

    @Test func invalidConfigurationAndForeignDirectoriesGetClearErrors() throws {
        let dir = TemporaryDirectory()
        var bad = smallConfiguration(dir.log)
        bad.quotaBytes = 1 << 20
        let quotaError = try #require(throws: TelemetryFlowError.self) { try EventLog(bad) }
        #expect(quotaError.code == .invalidConfiguration)
        #expect(quotaError.message.contains("quotaBytes"))
        for queue in [32 << 10, (1 << 30) + 1] {
            var badQueue = smallConfiguration(dir.log)
            badQueue.queueCapacityBytes = queue
            let queueError = try #require(throws: TelemetryFlowError.self) { try EventLog(badQueue) }
            #expect(queueError.code == .invalidConfiguration && queueError.message.contains("queueCapacityBytes"))
        }
        let durability = #expect(throws: TelemetryFlowError.self) { try Durability(parsing: "sometimes") }
        #expect(durability?.code == .invalidConfiguration)
        #expect(try Durability(parsing: "interval(250)") == .interval(milliseconds: 250))

        try FileManager.default.createDirectory(atPath: dir.path + "/other", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir.path + "/other/notes.txt", contents: Data("hello".utf8))
        let foreign = try #require(throws: TelemetryFlowError.self) { try EventLog(smallConfiguration(dir.path + "/other")) }
        #expect(foreign.code == .notALog)
        #expect(foreign.message.contains(dir.path + "/other"))

        try FileManager.default.createDirectory(atPath: dir.path + "/garbage", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir.path + "/garbage/meta.mdb", contents: Data(repeating: 0x5A, count: 10000))
        let garbage = try #require(throws: TelemetryFlowError.self) { try EventLog(smallConfiguration(dir.path + "/garbage")) }
        #expect(garbage.code == .notALog)
    }

    @Test func newerLayoutVersionIsRefusedWithThePath() throws {
        let dir = TemporaryDirectory()
        EventLogTests.open(dir.log).close()
        let meta = try MetadataStore(path: dir.log + "/meta.mdb", noSync: false)
        try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
            try meta.put(txn, meta.info, Array("layout_version".utf8), MetadataStore.u64(99))
        }
        meta.env.close()
        let error = try #require(throws: TelemetryFlowError.self) { try EventLog(smallConfiguration(dir.log)) }
        #expect(error.code == .unsupportedFormatVersion)
        #expect(error.message.contains(dir.log))
        #expect(error.message.contains("99"))
    }

    @Test func secondWriterIsRefused() throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log))
        let error = try #require(throws: TelemetryFlowError.self) { try EventLog(smallConfiguration(dir.log)) }
        #expect(error.code == .logLocked)
        log.close()
        EventLogTests.open(dir.log).close()
    }

    @Test func oversizedEventsAreDroppedAndCounted() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log))
        defer { log.close() }
        let huge = TelemetryEvent.custom(CustomSignalRecord(signal: try SignalType("blob"), name: "big", body: Array(repeating: 1, count: 300 << 10)))
        #expect(log.append(huge, timestampUnixNano: 1) == .dropped(.tooLarge))
        #expect(log.append(counterEvent(1), timestampUnixNano: 1).sequence == 1)
        try await log.flush()
        #expect(log.statistics.dropped[.tooLarge] == 1)
        #expect(log.statistics.committed == 1)
    }

    @Test func concurrentProducersAndAConsumerLoseAndDuplicateNothing() async throws {
        let dir = TemporaryDirectory()
        let log = try EventLog(smallConfiguration(dir.log))
        defer { log.close() }
        let producers = 4
        let perProducer = 20_000
        try await log.setCursor("consumer", to: 0)
        let consumer = Task.detached { () throws -> [(UInt64, Int64)] in
            var seen: [(UInt64, Int64)] = []
            var position: UInt64 = 0
            while seen.count < producers * perProducer {
                let batch = try log.read(after: position, maxCount: 2000)
                for event in batch {
                    guard case .measurement(let m) = try event.decode(), case .int(let v) = m.value else { continue }
                    seen.append((event.sequence, v))
                }
                if batch.endSequence != position {
                    position = batch.endSequence
                    try await log.setCursor("consumer", to: position)
                } else {
                    try await Task.sleep(for: .milliseconds(2))
                }
            }
            return seen
        }
        await withTaskGroup(of: Void.self) { group in
            for p in 0..<producers {
                group.addTask {
                    for i in 0..<perProducer { log.append(counterEvent(p * perProducer + i), timestampUnixNano: 1) }
                }
            }
        }
        try await log.flush()
        let seen = try await consumer.value
        #expect(seen.map(\.0) == Array(1...UInt64(producers * perProducer)), "every sequence once, in order")
        let values = Set(seen.map(\.1))
        let expected = Set((0..<Int64(producers * perProducer)))
        #expect(values.count == expected.count && values.subtracting(expected).isEmpty, "every producer's every event is stored; extra: \(values.subtracting(expected).sorted().prefix(5)) missing: \(expected.subtracting(values).sorted().prefix(5))")
        #expect(log.cursor("consumer") == UInt64(producers * perProducer))
        // Everything consumed: segments behind the cursor are gone, only the active one remains.
        try await log.setCursor("consumer", to: UInt64(producers * perProducer))
        #expect(log.statistics.segmentCount == 1)
    }

    /// The queue reserves room without a lock and voids reservations that run past a buffer's end: with the
    /// smallest queue, eight producers and records from 40 bytes to 3 KB, buffers overflow and swap thousands of
    /// times. Every sequence an append returned must hold exactly that producer's event, with no gaps.
    @Test func sequencesReturnedByConcurrentAppendsMatchTheStoredEvents() async throws {
        let dir = TemporaryDirectory()
        let log = try Self.smallQueueLog(dir)
        defer { log.close() }
        let producers = 8
        let perProducer = 4_000
        func event(_ producer: Int, _ i: Int) -> TelemetryEvent {
            let padding = String(repeating: "x", count: (producer * 7919 + i * 104_729) % 3000)
            return .measurement(MetricMeasurement(
                kind: .counter, name: "p\(producer)", attributes: ["pad": .string(padding)], value: .int(Int64(i))))
        }
        let returned = await withTaskGroup(of: [(UInt64, Int, Int)].self) { group in
            for p in 0..<producers {
                group.addTask {
                    (0..<perProducer).map { i in (log.append(event(p, i), timestampUnixNano: 1).sequence ?? 0, p, i) }
                }
            }
            var all: [(UInt64, Int, Int)] = []
            for await part in group { all += part }
            return all
        }
        try await log.flush()
        #expect(log.statistics.droppedTotal == 0)
        #expect(returned.map(\.0).sorted() == Array(1...UInt64(producers * perProducer)), "sequences are 1...n, each once")
        let stored = try readAll(log)
        #expect(stored.count == producers * perProducer)
        var bySequence: [UInt64: TelemetryEvent] = [:]
        for event in stored { bySequence[event.sequence] = try event.decode() }
        var mismatches = 0
        for (sequence, p, i) in returned where bySequence[sequence] != event(p, i) { mismatches += 1 }
        #expect(mismatches == 0, "events stored under a sequence another append was given")
    }

    /// Each of the first 15 threads to record publishes its copies on a line of its own, without a locked
    /// instruction; later threads share the last line with an atomic add. 40 threads of their own (not the
    /// cooperative pool's two), started together on the smallest queue so that buffers swap while they copy:
    /// every event is stored once, whichever line counted its copy.
    @Test func threadsBeyondTheQueuesOwnLinesShareOneAndNoEventIsLost() async throws {
        let dir = TemporaryDirectory()
        let log = try Self.smallQueueLog(dir)
        defer { log.close() }
        let threads = 40
        let perThread = 2_000
        let start = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for t in 0..<threads {
            done.enter()
            Thread {
                start.wait()
                for i in 0..<perThread { log.append(counterEvent(t * perThread + i), timestampUnixNano: 1) }
                done.leave()
            }.start()
        }
        for _ in 0..<threads { start.signal() }
        done.wait()
        try await log.flush()
        #expect(log.statistics.droppedTotal == 0)
        let values = try readAll(log).compactMap { event -> Int64? in
            guard case .measurement(let m) = try event.decode(), case .int(let v) = m.value else { return nil }
            return v
        }
        #expect(values.count == threads * perThread)
        #expect(Set(values) == Set(0..<Int64(threads * perThread)), "every thread's every event, once")
    }

    /// A log on the smallest queue (64 KiB), whose producers wait up to a minute for room instead of dropping.
    static func smallQueueLog(_ dir: TemporaryDirectory) throws -> EventLog {
        var configuration = smallConfiguration(dir.log)
        configuration.queueCapacityBytes = 64 << 10
        configuration.blockTimeoutMilliseconds = 60_000
        return try EventLog(configuration)
    }

    static func open(_ path: String) -> EventLog { try! EventLog(smallConfiguration(path)) }

    @Test func pluginDropReasonsAreCountedBesideTheLogsOwnAndPersisted() async throws {
        let dir = TemporaryDirectory()
        var configuration = LogConfiguration(directory: dir.path)
        configuration.durability = .never
        let log = try EventLog(configuration)
        let redacted = try DropReason("redaction.policy_drop")
        log.countDrop(redacted, count: 3)
        log.countDrop(try DropReason("queue_full"))
        #expect(try DropReason("queue_full") == .queueFull, "a built-in name gives the built-in reason")
        #expect(log.statistics.dropped[redacted] == 3 && log.statistics.dropped[.queueFull] == 1)
        for bad in ["", "Upper", "has space", String(repeating: "x", count: 65)] {
            do {
                _ = try DropReason(bad)
                Issue.record("drop reason \"\(bad)\" was accepted")
            } catch let error as TelemetryFlowError {
                #expect(error.code == .invalidArgument)
            }
        }
        log.close()
        let reopened = try EventLog(configuration)
        defer { reopened.close() }
        #expect(reopened.statistics.dropped[redacted] == 3 && reopened.statistics.dropped[.queueFull] == 1, "persisted: \(reopened.statistics.dropped)")
    }
}

@Suite struct AppendQueueTests {
    /// A producer passes the closed check just before the queue closes and reserves just after: its reservation
    /// is void. The writer's drain must take the records reserved before the close and not wait for a copy that
    /// never comes.
    @Test func aReservationMadeAfterTheCloseIsVoidAndTheDrainDoesNotWaitForIt() throws {
        var configuration = LogConfiguration(directory: "/unused")
        configuration.queueCapacityBytes = 64 << 10
        let queue = AppendQueue(configuration: configuration, nextSequence: 1)
        let record = [UInt8](repeating: 7, count: 16 << 10)
        for _ in 0..<2 { #expect(record.withUnsafeBytes { queue.append($0) }.sequence != nil) }
        queue.stop()
        #expect(record.withUnsafeBytes { queue.append($0) } == .dropped(.closed))
        // The producer that was past the closed check when the queue closed:
        #expect(record.withUnsafeBytes { queue.reserveAndCopy($0) } == .dropped(.closed))

        final class Drain: @unchecked Sendable {
            let done = DispatchSemaphore(value: 0)
            var counts: [Int] = []
        }
        let drain = Drain()
        Thread.detachNewThread {
            var spare = queue.writerBuffer
            for _ in 0..<2 {
                spare.reset()
                drain.counts.append(queue.take(into: &spare, takeRecords: true, until: monotonicNanos()).count)
            }
            drain.done.signal()
        }
        let finished = drain.done.wait(timeout: .now() + 30) == .success
        #expect(finished, "the drain finished instead of waiting for the void reservation's copy")
        if finished { #expect(drain.counts == [2, 0], "the two records reserved before the close, then nothing") }
    }

    /// A producer finds the queue full, but before it waits the writer swaps buffers twice, so the buffer it
    /// saw full is current again — and empty. It must append at once, not sleep until its block timeout
    /// waiting for a swap that no other producer would cause.
    @Test func aProducerThatSawTheQueueFullDoesNotWaitForASwapThatAlreadyHappened() throws {
        var configuration = LogConfiguration(directory: "/unused")
        configuration.queueCapacityBytes = 64 << 10
        configuration.blockTimeoutMilliseconds = 2_000
        let queue = AppendQueue(configuration: configuration, nextSequence: 1)
        let record = [UInt8](repeating: 7, count: 16 << 10)
        func append() -> AppendOutcome { record.withUnsafeBytes { queue.append($0) } }
        for _ in 0..<4 { #expect(append().sequence != nil) }  // 64 KiB: the first buffer is full

        // The hook runs on this thread, inside the append below: it plays the writer (and another producer).
        final class Writer: @unchecked Sendable {
            var spare: RecordBuffer
            var counts: [Int] = []
            init(_ spare: RecordBuffer) { self.spare = spare }
        }
        let writer = Writer(queue.writerBuffer)
        queue.beforeSpaceWait = {
            queue.beforeSpaceWait = nil
            func swap() {
                writer.counts.append(queue.take(into: &writer.spare, takeRecords: true, until: monotonicNanos()).count)
                writer.spare.reset()
            }
            swap()  // the writer takes the full first buffer
            writer.counts.append(Int(record.withUnsafeBytes { queue.append($0) }.sequence ?? 0))  // one record in the second
            swap()  // and takes the second: the first, empty, is current again
        }
        #expect(append().sequence == 6)
        #expect(writer.counts == [4, 5, 1], "two swaps happened while the producer was on its way to wait")
        #expect(queue.spaceWaitCount == 0, "the producer found room at once instead of sleeping")
    }
}
