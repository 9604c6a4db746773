import Foundation
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

/// One test per failure found when the log was tried from the outside (the durability issue's findings), each in a
/// child process so that a crash, an abort or a hang shows as a failure instead of taking the test runner down.
@Suite struct DurabilityFindingsTests {
    /// A log of `count` acknowledged events over 1 MiB segments, written by a child; returns its path.
    func log(_ dir: TemporaryDirectory, count: Int = 15_000) async throws -> String {
        let path = dir.log
        let run = try await runTflow(["stress", "--dir", path, "--durability", "never", "--segment-size", "1048576",
                                      "--count", String(count), "--flush-every", "500"])
        #expect(run.acked.last == UInt64(count), "\(run.describe)")
        return path
    }

    func segments(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("segment-") && $0.hasSuffix(".mdb") }.sorted()
    }

    func verify(_ path: String, append: Int = 10) async throws -> ChildRun {
        let run = try await runTflow(["verify", "--dir", path, "--append", String(append), "--segment-size", "1048576"], timeoutSeconds: 60)
        #expect(run.signal == nil && !run.hung && run.status == 0, "\(run.describe)")
        return run
    }

    func number(_ run: ChildRun, _ key: String) -> UInt64 { (run.json?[key] as? NSNumber)?.uint64Value ?? 0 }

    func modify(_ path: String, _ change: (inout [UInt8]) -> Void) throws {
        var bytes = try PosixFile.readAll(path)
        change(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Pages of `file` whose header says they are of `flag` (0x01 branch, 0x02 leaf).
    func pages(of file: String, flag: UInt16) throws -> [Int] {
        let bytes = try PosixFile.readAll(file)
        return bytes.withUnsafeBytes { raw in
            let walker = LMDBPageWalker(raw)
            return (2..<walker.pageCount).filter { walker.u64($0 * 4096) == UInt64($0) && walker.u16($0 * 4096 + 10) & flag != 0 }
        }
    }

    @Test func aZeroedLeafPageInASealedSegmentIsCountedNotAnAbort() async throws {
        let dir = TemporaryDirectory()
        let path = try await log(dir)
        let first = path + "/" + segments(path)[0]
        let leaf = try #require(try pages(of: first, flag: 0x02).dropFirst(3).first)
        try modify(first) { bytes in for i in (leaf * 4096)..<((leaf + 1) * 4096) { bytes[i] = 0 } }
        let run = try await verify(path)
        let read = number(run, "events")
        #expect(read > 14_000 && read < 15_000, "all but the zeroed page's records are read: \(read)")
        #expect(read + number(run, "corrupted") == 15_000, "and those are counted: \(run.json ?? [:])")
    }

    @Test func flippedBytesInABranchPageLoseNothing() async throws {
        let dir = TemporaryDirectory()
        let path = try await log(dir)
        let first = path + "/" + segments(path)[0]
        let branch = try #require(try pages(of: first, flag: 0x01).first, "the sealed segment has a branch page")
        try modify(first) { bytes in for i in stride(from: branch * 4096 + 20, to: branch * 4096 + 200, by: 7) { bytes[i] ^= 0x5A } }
        let run = try await verify(path)
        #expect(number(run, "events") == 15_000, "every record is still read (the walker scans the leaves): \(run.json ?? [:])")
        #expect(number(run, "corrupted") == 0)
    }

    @Test func aFlippedByteInTheMetadataRebuildsItInsteadOfCrashingEveryOpen() async throws {
        let dir = TemporaryDirectory()
        let path = try await log(dir)
        // Damage every leaf page of meta.mdb (the counters, segment records and cursors live there).
        for leaf in try pages(of: path + "/meta.mdb", flag: 0x02) {
            try modify(path + "/meta.mdb") { bytes in bytes[leaf * 4096 + 4000] ^= 0xFF; bytes[leaf * 4096 + 30] ^= 0x33 }
        }
        let run = try await verify(path)
        #expect((run.json?["metadataRebuilt"] as? String)?.isEmpty == false, "\(run.describe)")
        #expect(number(run, "events") == 15_000)
        let again = try await verify(path, append: 0)
        #expect(number(again, "events") == 15_010 && (again.json?["metadataRebuilt"] as? String) == "", "the rebuilt file is sound")
    }

    @Test func aDamagedSegmentRecordInTheMetadataDoesNotSpinTheReader() async throws {
        let dir = TemporaryDirectory()
        let path = try await log(dir)
        // The record of segment 1: key 1 (u64 big-endian), then its value, whose first field is first sequence 1.
        try modify(path + "/meta.mdb") { bytes in
            let pattern: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
            var i = 0
            while i + 32 < bytes.count {
                if Array(bytes[i..<(i + 16)]) == pattern { bytes[i + 8 + 8 + 2] ^= 0x40 }  // its last sequence
                i += 1
            }
        }
        let run = try await verify(path)
        #expect(number(run, "events") == 15_000, "\(run.describe)")
    }

    @Test(arguments: ["deleted", "zeroed", "emptied"])
    func losingTheNewestSegmentIsACountedGap(_ how: String) async throws {
        let dir = TemporaryDirectory()
        let path = try await log(dir)
        let newest = path + "/" + segments(path).last!
        // How many records the newest segment holds, from the others.
        let holds = try VerificationProbe.validate(path: newest).records
        switch how {
        case "deleted": try FileManager.default.removeItem(atPath: newest)
        case "zeroed": try modify(newest) { bytes in for i in bytes.indices { bytes[i] = 0 } }
        default: #expect(truncate(newest, 0) == 0)
        }
        let run = try await verify(path)
        #expect(number(run, "events") == UInt64(15_000 - holds), "\(run.json ?? [:])")
        #expect(number(run, "corrupted") == UInt64(holds), "the \(holds) lost events are counted, not silent: \(run.json ?? [:])")
        #expect(number(run, "lossEvents") == 1, "and announced in a data_lost lifecycle event")
        #expect(((run.json?["appended"] as? [NSNumber])?.first?.uint64Value ?? 0) > 15_000, "no sequence is reused")
    }

    @Test func aZeroLengthSealedSegmentOpensTheFirstTime() async throws {
        let dir = TemporaryDirectory()
        let path = try await log(dir)
        let first = path + "/" + segments(path)[0]
        let holds = try VerificationProbe.validate(path: first).records
        #expect(truncate(first, 0) == 0)
        let run = try await verify(path)
        #expect(number(run, "corrupted") == UInt64(holds), "\(run.json ?? [:])")
        #expect(number(run, "events") == UInt64(15_000 - holds))
    }

    @Test func damageInTheActiveSegmentDoesNotHideLaterAppends() async throws {
        let dir = TemporaryDirectory()
        let path = try await log(dir)
        let active = path + "/" + segments(path).last!
        let branch = try pages(of: active, flag: 0x01).first ?? 2
        try modify(active) { bytes in for i in stride(from: branch * 4096 + 16, to: branch * 4096 + 400, by: 5) { bytes[i] ^= 0xA5 } }
        let run = try await verify(path, append: 100)
        #expect(run.json?["readBack"] as? Bool == true, "appends after the damage are read back: \(run.describe)")
        #expect(number(run, "events") == 15_000, "the walker found every record under the damaged branch page")
        let again = try await verify(path, append: 0)
        #expect(number(again, "events") == 15_100)
    }

    @Test func anOlderMetadataFileAdoptsNewerSegmentsInsteadOfDeletingThem() async throws {
        let dir = TemporaryDirectory()
        let path = try await log(dir, count: 4000)
        let old = dir.path + "/old-meta.mdb"
        try FileManager.default.copyItem(atPath: path + "/meta.mdb", toPath: old)
        let more = try await runTflow(["stress", "--dir", path, "--durability", "never", "--segment-size", "1048576",
                                       "--count", "26000", "--flush-every", "500"])
        let acked = try #require(more.acked.last)
        try FileManager.default.removeItem(atPath: path + "/meta.mdb")
        try FileManager.default.copyItem(atPath: old, toPath: path + "/meta.mdb")
        let run = try await verify(path)
        #expect(number(run, "events") == acked, "nothing is deleted as an orphan: \(run.json ?? [:])")
        let adopted = (run.json?["adopted"] as? [String]) ?? []
        #expect(adopted.count >= 1, "the newer segments were adopted")
        #expect(((run.json?["appended"] as? [NSNumber])?.first?.uint64Value ?? 0) > acked, "sequences do not restart")
    }

    @Test func aMissingMetadataFileIsRebuiltFromTheSegments() async throws {
        let dir = TemporaryDirectory()
        let path = try await log(dir)
        try FileManager.default.removeItem(atPath: path + "/meta.mdb")
        try FileManager.default.removeItem(atPath: path + "/meta.backup")
        let run = try await verify(path)
        #expect(number(run, "events") == 15_000 && number(run, "corrupted") == 0, "\(run.json ?? [:])")
        #expect((run.json?["metadataRebuilt"] as? String)?.contains("cursors lost") == true)
    }

    @Test func tflowArgumentsAreValidatedWithClearMessages() async throws {
        let dir = TemporaryDirectory()
        for (arguments, message) in [
            (["stress", "--dir", dir.log, "--flush-every", "0"], "--flush-every must be 1 or more"),
            (["stress", "--dir", dir.log, "--flush-every=-1"], "--flush-every must be 1 or more"),
            (["stress", "--dir", dir.log, "--count", "-5"], "--count must be 0"),
            (["stress", "--dir", dir.log, "--segment-size", "1000"], "segmentSize is 1000 bytes"),
            (["inspect", "--dir", dir.path + "/missing"], "no log at \(dir.path)/missing"),
            (["verify", "--dir", dir.path + "/missing"], "no log at \(dir.path)/missing"),
        ] {
            let run = try await runTflow(arguments, timeoutSeconds: 20)
            #expect(run.status != 0 && !run.hung && run.signal == nil, "\(arguments): \(run.describe)")
            #expect(run.stderr.contains(message), "\(arguments) says \"\(message)\": \(run.stderr.prefix(300))")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/missing"), "inspect does not create a log")
        #expect(!FileManager.default.fileExists(atPath: dir.log), "invalid arguments create nothing")
    }
}
