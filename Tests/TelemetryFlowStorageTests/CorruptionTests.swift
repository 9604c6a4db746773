import Foundation
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

@Suite struct CorruptionTests {
    /// Byte offsets of `marker` in `data`.
    func offsets(of marker: [UInt8], in data: Data) -> [Int] {
        let bytes = [UInt8](data)
        var found: [Int] = []
        var i = 0
        while i + marker.count <= bytes.count {
            if bytes[i] == marker[0] && Array(bytes[i..<(i + marker.count)]) == marker { found.append(i); i += marker.count } else { i += 1 }
        }
        return found
    }

    /// Writes `count` span events tagged `-MARKnnnn-` into one segment, closes the log, then flips a byte of
    /// each record in `damaging` at `flip.offset` into its marker.
    func writeMarkedLog(
        _ configuration: LogConfiguration, count: Int, damaging: [Int], flip: (offset: Int, mask: UInt8), in dir: TemporaryDirectory
    ) async throws {
        let log = try EventLog(configuration)
        for n in 0..<count { log.append(spanEvent(n, marker: "-MARK\(String(format: "%04d", n))-"), timestampUnixNano: UInt64(n)) }
        try await log.flush()
        log.close()
        let segment = dir.log + "/" + dir.files().first { $0.hasPrefix("segment-") && $0.hasSuffix(".mdb") }!
        var data = try Data(contentsOf: URL(fileURLWithPath: segment))
        for n in damaging {
            // LMDB's copy-on-write can leave stale copies of a page: damage every copy of the record.
            let places = offsets(of: Array("-MARK\(String(format: "%04d", n))-".utf8), in: data)
            try #require(!places.isEmpty)
            for at in places { data[at + flip.offset] ^= flip.mask }
        }
        try data.write(to: URL(fileURLWithPath: segment))
    }

    @Test func flippedBytesAreSkippedCountedAndTheLogKeepsWorking() async throws {
        let dir = TemporaryDirectory()
        let configuration = smallConfiguration(dir.log)
        let damaged = [10, 150, 299]
        try await writeMarkedLog(configuration, count: 300, damaging: damaged, flip: (2, 0xFF), in: dir)

        let log = try EventLog(configuration)
        defer { log.close() }
        #expect(log.recoveryReport.corruptedRecords == 3, "validating the active segment found the damaged records")
        let events = try readAll(log).filter { $0.type != .lifecycle }
        #expect(events.count == 297)
        // A read of the damaged records' own type skips them too.
        let spans = try log.read(after: 0, maxCount: 8192, types: [.spanEnded])
        #expect(spans.count == 297)
        #expect(Set(spans.map(\.sequence)).isDisjoint(with: damaged.map { UInt64($0 + 1) }))
        #expect(Set(events.map(\.sequence)).isDisjoint(with: damaged.map { UInt64($0 + 1) }))
        #expect(log.statistics.corrupted == 3, "each damaged record is counted once, however often it is read")
        // The open announced the loss in a data_lost lifecycle event (sequence 301), then the log takes appends.
        #expect(log.append(counterEvent(1), timestampUnixNano: 1).sequence == 302)
        try await log.flush()
        let after = try readAll(log, after: 300)
        #expect(after.count == 2)
        guard case .lifecycle(let notice) = try after[0].decode() else { Issue.record("no lifecycle event"); return }
        #expect(notice.kind == .dataLost && notice.attributes["telemetryflow.lost.count"] == .int(3))
        #expect(notice.attributes["telemetryflow.lost.ranges"] == .string("11,151,300"))
    }

    @Test func damageInASealedSegmentIsFoundByItsPageChecksumsWhenFirstRead() async throws {
        let dir = TemporaryDirectory()
        let configuration = smallConfiguration(dir.log)
        let count = 12000
        do {
            let log = try EventLog(configuration)
            for n in 0..<count { log.append(spanEvent(n, marker: "-MARK\(String(format: "%05d", n))-"), timestampUnixNano: UInt64(n)) }
            try await log.flush()
            #expect(log.statistics.segmentCount >= 2)
            log.close()
        }
        // Flip one byte of record 5 (sequence 6) in the first, sealed, segment.
        let segment = dir.log + "/" + dir.files().first { $0.hasPrefix("segment-") && $0.hasSuffix(".mdb") }!
        var data = try Data(contentsOf: URL(fileURLWithPath: segment))
        let places = offsets(of: Array("-MARK00005-".utf8), in: data)
        try #require(!places.isEmpty)
        for at in places { data[at + 3] ^= 0x01 }
        try data.write(to: URL(fileURLWithPath: segment))

        let log = try EventLog(configuration)
        defer { log.close() }
        #expect(log.recoveryReport.corruptedRecords == 0, "sealed segments are not read at open")
        let batch = try log.read(after: 0, maxCount: 1000)
        #expect(batch.count == 1000)
        #expect(!batch.contains { $0.sequence == 6 })
        #expect(batch.endSequence == 1001, "a consumer advances past the damaged record")
        let all = try readAll(log).filter { $0.type != .lifecycle }
        #expect(all.count == count - 1, "every other record of the damaged segment is read back")
        #expect(log.statistics.corrupted == 1)
        #expect(log.statistics.lostRanges == [6...6])
        // The first read announced the loss, naming the segment, in an event appended after the others.
        try await log.flush()
        let notice = try #require(try readAll(log, after: UInt64(count)).compactMap { event -> LifecycleEvent? in
            if case .lifecycle(let l) = try event.decode() { return l } else { return nil }
        }.first)
        #expect(notice.kind == .dataLost && notice.attributes["telemetryflow.lost.segment"] == .string("segment-0000000000000001.mdb"))
        #expect(notice.attributes["telemetryflow.lost.reason"].map { "\($0)".contains("failed verification") } == true)
    }

    @Test func truncatedSegmentIsSalvagedAndTheLogStillOpensAndAppends() async throws {
        let dir = TemporaryDirectory()
        let configuration = smallConfiguration(dir.log)
        var lastSealed: UInt64 = 0
        do {
            let log = try EventLog(configuration)
            for n in 0..<20000 { log.append(spanEvent(n), timestampUnixNano: UInt64(n)) }
            try await log.flush()
            #expect(log.statistics.segmentCount >= 2)
            // The segment list the readers use, under its lock: the writer's own list belongs to the writer thread.
            lastSealed = try #require(log.engine.segmentList.withLock { $0 }.dropLast().last?.lastSequence)
            log.close()
        }
        let segments = dir.files().filter { $0.hasPrefix("segment-") && $0.hasSuffix(".mdb") }
        // Cut the newest segment in half, as a disk or copy failure would.
        let victim = dir.log + "/" + segments.last!
        let size = try #require(FileManager.default.attributesOfItem(atPath: victim)[.size] as? Int)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: victim))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()

        let log = try EventLog(configuration)
        defer { log.close() }
        let report = log.recoveryReport
        #expect(report.salvagedSegments.count == 1, "\(report)")
        #expect(report.corruptedRecords > 0, "the records past the cut are counted")
        let events = try readAll(log).filter { $0.type != .lifecycle }
        #expect(events.map(\.sequence).prefix(Int(lastSealed)) == ArraySlice(1...lastSealed), "sealed segments are intact")
        #expect(UInt64(events.count) + report.corruptedRecords == 20000, "every record is either kept or counted")
        #expect(dir.files(in: "log/quarantine").count == 1, "the damaged file is kept for inspection")
        let next = try #require(log.append(counterEvent(0), timestampUnixNano: 0).sequence)
        #expect(next > 20000 - report.corruptedRecords)
        try await log.flush()
        #expect(try readAll(log, after: next - 1).count == 1)
    }

    @Test func garbageSegmentFileDoesNotCrashTheOpen() async throws {
        let dir = TemporaryDirectory()
        let configuration = smallConfiguration(dir.log)
        do {
            let log = try EventLog(configuration)
            for n in 0..<100 { log.append(counterEvent(n), timestampUnixNano: 1) }
            try await log.flush()
            log.close()
        }
        let segment = dir.log + "/" + dir.files().first { $0.hasPrefix("segment-") && $0.hasSuffix(".mdb") }!
        var data = try Data(contentsOf: URL(fileURLWithPath: segment))
        for i in stride(from: 0, to: 8192, by: 1) { data[i] = UInt8(truncatingIfNeeded: i &* 131) }
        try data.write(to: URL(fileURLWithPath: segment))
        let log = try EventLog(configuration)
        defer { log.close() }
        #expect(log.recoveryReport.salvagedSegments.count == 1)
        let kept = try readAll(log).filter { $0.type != .lifecycle }.count
        #expect(kept + Int(log.recoveryReport.corruptedRecords) == 100, "every record is either kept or counted: kept \(kept), \(log.recoveryReport)")
        #expect(log.append(counterEvent(1), timestampUnixNano: 1).sequence != nil)
        try await log.flush()
    }
}
