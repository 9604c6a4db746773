import Foundation
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

/// Kills `tflow` with SIGKILL at every named step of opening, salvaging, rebuilding the metadata, rolling and
/// sealing (`TFLOW_CRASH_POINT`, see `CrashPoint`), alone and one after another on the same directory, and at
/// random moments during recovery; then checks from the outside, with another child, what survived.
@Suite struct RecoveryFaultTests {
    static let openPoints = [
        "open.locked", "metadata.rebuilt", "metadata.renamed", "open.metadata", "salvage.written", "salvage.recorded",
        "salvage.linked", "salvage.renamed", "open.segments", "backup.written",
    ]
    static let rollPoints = ["roll.begin", "roll.checksummed", "roll.recorded", "roll.created", "backup.written"]

    /// Appends `count` events in a child, flushing every 500; returns the highest acknowledged sequence.
    func record(_ path: String, count: Int, durability: String = "never") async throws -> UInt64 {
        let run = try await runTflow(["stress", "--dir", path, "--durability", durability, "--segment-size", "1048576",
                                      "--count", String(count), "--flush-every", "500"])
        #expect(run.status == 0, "\(run.describe)")
        return try #require(run.acked.last)
    }

    func verify(_ path: String, crashAt point: String? = nil, append: Int = 0) async throws -> ChildRun {
        try await runTflow(["verify", "--dir", path, "--append", String(append), "--segment-size", "1048576"],
                           environment: point.map { ["TFLOW_CRASH_POINT": $0] } ?? [:], timeoutSeconds: 120)
    }

    func segments(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("segment-") && $0.hasSuffix(".mdb") }.sorted()
    }

    enum Scenario: String, CaseIterable {
        case intact, damagedActiveSegment, garbageMetadata, missingMetadataAndBackup, staleMetadata
    }

    /// A log of 20,000 acknowledged events over several 1 MiB segments, then damaged as `scenario` says.
    func template(_ scenario: Scenario, in dir: TemporaryDirectory) async throws -> (path: String, acked: UInt64) {
        let path = dir.path + "/template"
        var acked = try await record(path, count: 14_000)
        let stale = dir.path + "/stale-meta"
        try FileManager.default.copyItem(atPath: path + "/meta.mdb", toPath: stale)
        acked = try await record(path, count: 16_000)
        let files = segments(path)
        #expect(files.count >= 3, "several segments: \(files)")
        switch scenario {
        case .intact: break
        case .damagedActiveSegment:
            let active = path + "/" + files.last!
            let size = try #require(PosixFile.size(active))
            #expect(truncate(active, off_t(size / 2 / 4096 * 4096)) == 0)
        case .garbageMetadata:
            var garbage = [UInt8](repeating: 0, count: Int(PosixFile.size(path + "/meta.mdb") ?? 65536))
            for i in garbage.indices { garbage[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
            try Data(garbage).write(to: URL(fileURLWithPath: path + "/meta.mdb"))
        case .missingMetadataAndBackup:
            try FileManager.default.removeItem(atPath: path + "/meta.mdb")
            try FileManager.default.removeItem(atPath: path + "/meta.backup")
        case .staleMetadata:
            try FileManager.default.removeItem(atPath: path + "/meta.mdb")
            try FileManager.default.copyItem(atPath: stale, toPath: path + "/meta.mdb")
        }
        return (path, acked)
    }

    /// What an uninterrupted open reads back from `template`.
    func reference(_ template: String, in dir: TemporaryDirectory) async throws -> ChildRun {
        let copy = dir.path + "/reference-\(UUID().uuidString)"
        try copyTree(template, copy)
        let run = try await verify(copy)
        #expect(run.status == 0 && run.json != nil, "reference open: \(run.describe)")
        return run
    }

    func expectSameOutcome(_ run: ChildRun, as reference: ChildRun, acked: UInt64, _ what: String) {
        #expect(run.status == 0 && run.json != nil, "\(what): \(run.describe)")
        let sequences = run.sequences
        #expect(sequences == reference.sequences, "\(what): read back \(sequences.count) events, the uninterrupted open \(reference.sequences.count); \(String(describing: run.json?["ranges"]).prefix(300))")
        #expect((run.json?["corrupted"] as? NSNumber)?.uint64Value == (reference.json?["corrupted"] as? NSNumber)?.uint64Value,
                "\(what): counts the same loss as the uninterrupted open (\(run.json?["corrupted"] ?? "-") vs \(reference.json?["corrupted"] ?? "-"))")
        if let appended = run.json?["appended"] as? [NSNumber], let first = appended.first?.uint64Value {
            #expect(first > acked, "\(what): appends get sequences after every acknowledged one (\(first) > \(acked))")
            #expect(run.json?["readBack"] as? Bool == true, "\(what): appended events are read back")
        }
    }

    @Test(arguments: Scenario.allCases)
    func aKillAtEveryStepOfAnOpenLosesNothingAndTheNextOpenFinishesTheJob(_ scenario: Scenario) async throws {
        let dir = TemporaryDirectory()
        let (template, acked) = try await template(scenario, in: dir)
        let reference = try await reference(template, in: dir)
        if scenario == .intact || scenario == .garbageMetadata || scenario == .missingMetadataAndBackup || scenario == .staleMetadata {
            // Nothing of the segments is damaged: every acknowledged event is read back.
            #expect(reference.sequences == Array(1...acked), "\(scenario): every acknowledged event is read (\(reference.sequences.count) of \(acked), ranges \(String(describing: reference.json?["ranges"]).prefix(300)))")
        } else {
            #expect((reference.json?["corrupted"] as? NSNumber)?.intValue ?? 0 > 0, "the loss in the damaged segment is counted")
        }
        var reached: Set<String> = []
        // Each step alone, on a fresh copy.
        for point in Self.openPoints {
            let copy = dir.path + "/alone-\(point)"
            try copyTree(template, copy)
            let killed = try await verify(copy, crashAt: point)
            #expect(!killed.hung, "\(scenario) \(point): \(killed.describe)")
            if killed.signal == SIGKILL { reached.insert(point) } else {
                #expect(killed.status == 0, "\(scenario) \(point) not reached, and the open succeeded: \(killed.describe)")
            }
            let after = try await verify(copy, append: 10)
            expectSameOutcome(after, as: reference, acked: acked, "\(scenario), killed at \(point)")
            let again = try await verify(copy)
            let expected = reference.sequences + ((after.json?["appended"] as? [NSNumber]).map { a in Array(a[0].uint64Value...a[1].uint64Value) } ?? [])
            #expect(again.sequences == expected, "\(scenario) \(point): a second open reads what the first did, plus what it appended (\(again.sequences.count) vs \(expected.count))")
            if scenario == .intact {
                #expect(!FileManager.default.fileExists(atPath: copy + "/quarantine"), "an intact segment is never salvaged or quarantined")
            }
            if scenario == .damagedActiveSegment {
                let kept = (try? FileManager.default.contentsOfDirectory(atPath: copy + "/quarantine")) ?? []
                #expect(kept.count == 1, "\(point): the damaged original is kept once: \(kept)")
            }
        }
        // Every step, one after another, on the same copy.
        let chained = dir.path + "/chained"
        try copyTree(template, chained)
        for point in Self.openPoints { _ = try await verify(chained, crashAt: point) }
        let after = try await verify(chained, append: 10)
        expectSameOutcome(after, as: reference, acked: acked, "\(scenario), killed at every step in turn")
        switch scenario {
        case .intact: #expect(reached.isSuperset(of: ["open.locked", "open.metadata", "open.segments"]), "\(reached)")
        case .damagedActiveSegment: #expect(reached.isSuperset(of: ["salvage.written", "salvage.recorded", "salvage.linked", "salvage.renamed"]), "\(reached)")
        case .garbageMetadata, .missingMetadataAndBackup, .staleMetadata:
            if scenario != .staleMetadata { #expect(reached.isSuperset(of: ["metadata.rebuilt", "metadata.renamed"]), "\(reached)") }
            #expect(reached.contains("backup.written"), "\(reached)")
        }
        print("recovery faults \(scenario): \(Self.openPoints.count) steps killed alone and in turn (\(reached.count) reached), read back \(reference.sequences.count) of \(acked) acknowledged, 0 lost beyond the damage")
    }

    @Test func aKillAtEveryStepOfARollLosesNothingAndNeverReusesASequence() async throws {
        let dir = TemporaryDirectory()
        for point in Self.rollPoints {
            let path = dir.path + "/" + point
            _ = try await record(path, count: 3000)
            // The child rolls several times; kill it at the second roll. It is asked for many more events than two
            // rolls take: the sealer writes the backup off the writer thread and coalesces requests. The backup does
            // not wait behind a segment's checksum (which waits for a pause in appends, and the child never pauses):
            // when it did, a run that ended within that wait wrote one backup, at close, and was never killed.
            let killed = try await runTflow(["stress", "--dir", path, "--durability", "always", "--segment-size", "1048576",
                                             "--count", "200000", "--flush-every", "200"], environment: ["TFLOW_CRASH_POINT": point + ":2"])
            #expect(killed.signal == SIGKILL, "\(point) was reached: \(killed.describe)")
            let acked = try #require(killed.acked.last, "\(point): the child acknowledged events before the roll")
            let opened = try await runTflow(["stress", "--dir", path, "--durability", "always", "--segment-size", "1048576",
                                             "--count", "1000", "--flush-every", "500"])
            let openedLast = opened.stdout.first.flatMap { $0.hasPrefix("opened last=") ? UInt64($0.dropFirst(12)) : nil }
            #expect(openedLast.map { $0 >= acked } == true, "\(point): the next writer starts after every acknowledged sequence (\(opened.describe))")
            let final = try await verify(path)
            let sequences = final.sequences
            #expect(Set(1...acked).isSubset(of: Set(sequences)), "\(point): every acknowledged event survived the kill")
            #expect(sequences == sequences.sorted() && Set(sequences).count == sequences.count, "\(point): no sequence is stored twice")
            #expect((final.json?["corrupted"] as? NSNumber)?.intValue == 0, "\(point): a kill damages nothing: \(final.describe)")
        }
    }

    @Test func repeatedKillsDuringTheSalvageOfADamagedActiveSegment() async throws {
        let dir = TemporaryDirectory()
        let (template, acked) = try await template(.damagedActiveSegment, in: dir)
        let reference = try await reference(template, in: dir)
        let copy = dir.path + "/killed"
        try copyTree(template, copy)
        var generator = SystemRandomNumberGenerator()
        var killed = 0
        for _ in 0..<15 {
            let cut = try await runTflow(["verify", "--dir", copy, "--segment-size", "1048576"], killAfterMilliseconds: Int.random(in: 5...80, using: &generator))
            if cut.signal == SIGKILL { killed += 1 }
        }
        let after = try await verify(copy, append: 10)
        expectSameOutcome(after, as: reference, acked: acked, "after \(killed) random kills during recovery")
        let kept = (try? FileManager.default.contentsOfDirectory(atPath: copy + "/quarantine")) ?? []
        #expect(kept.count == 1, "one quarantined original, not one per kill: \(kept)")
    }

    /// The reproduction of the first finding: a leftover `recovering` marker naming segment 1 of a large `always`
    /// log, and `tflow inspect` killed again and again while it opens. Nothing may be lost or salvaged.
    @Test func aStaleRecoveringMarkerAndKilledInspectsLoseNothing() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/log"
        let acked = try await record(path, count: 200_000, durability: "always")
        try Data("1".utf8).write(to: URL(fileURLWithPath: path + "/recovering"))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<6 {
            _ = try await runTflow(["inspect", "--dir", path, "--show", "0"], killAfterMilliseconds: Int.random(in: 20...150, using: &generator))
        }
        let final = try await verify(path, append: 10)
        #expect(final.sequences.prefix(Int(acked)) == ArraySlice(1...acked), "all \(acked) acknowledged events are present")
        #expect((final.json?["corrupted"] as? NSNumber)?.intValue == 0, "\(final.describe)")
        #expect(!FileManager.default.fileExists(atPath: path + "/quarantine"), "no intact segment was quarantined")
        #expect(((final.json?["appended"] as? [NSNumber])?.first?.uint64Value ?? 0) > acked, "no sequence is reused")
    }
}
