import Foundation
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

/// SplitMix64: a fixed seed gives the same damage cases on every machine.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Copies of a real multi-segment log damaged at random — flipped bytes and zeroed pages in every file (meta,
/// branch, leaf and overflow pages), truncation at page boundaries, deleted, empty and garbage files, a directory
/// where a file belongs, stale metadata — each opened, read to the end and appended to by a child `tflow verify`
/// under a timeout, twice. No case may end in a signal or a hang; every record with an undamaged copy on disk must
/// be read back; what is lost is counted; the second open reads what the first did plus what it appended.
///
/// `TFLOW_DAMAGE_CASES` (default 300) and `TFLOW_DAMAGE_SEED` (default 20261201) choose the cases; `make fuzz`
/// runs thousands. `TFLOW_DAMAGE_ONLY=N` runs case N alone and keeps its damaged copy (the path is printed), to
/// reproduce a failure.
@Suite struct DamageSuiteTests {
    struct Template: Sendable {
        var path: String
        var stale: String
        var sequences: Set<UInt64>
        var count: UInt64
        var cursor: UInt64
        /// Per segment file: the page sets holding a copy of each record, and each page's kind.
        var locations: [String: [UInt64: [[Int]]]]
        var pageKinds: [String: [String: [Int]]]
        var files: [String]
    }

    static func makeTemplate(_ dir: TemporaryDirectory) async throws -> Template {
        let path = dir.path + "/template"
        var configuration = smallConfiguration(path)
        configuration.segmentSize = 1 << 20
        let log = try EventLog(configuration)
        var n = 0
        func appendSome(_ count: Int) {
            for _ in 0..<count {
                if n % 97 == 0 {
                    // Large records live on overflow pages.
                    let body = String(repeating: "overflow \(n) ", count: 300)
                    log.append(.log(LogRecordData(timeUnixNano: UInt64(n), severity: .warn, body: .string(body)), scope: InstrumentationScope(name: "t")), timestampUnixNano: UInt64(n))
                } else {
                    log.append(spanEvent(n), timestampUnixNano: UInt64(n))
                }
                n += 1
            }
        }
        appendSome(6000)
        try await log.flush()
        try await log.setCursor("c", to: 4000)
        // Let the writer persist its counters, then keep a copy of the metadata as it was then.
        try await Task.sleep(for: .milliseconds(1100))
        _ = try await log.registerCursor("probe")
        try await log.removeCursor("probe")
        let stale = dir.path + "/stale"
        try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: path + "/meta.mdb", toPath: stale + "/meta.mdb")
        try FileManager.default.copyItem(atPath: path + "/meta.backup", toPath: stale + "/meta.backup")
        appendSome(7000)
        try await log.flush()
        let all = try readAll(log)
        log.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".mdb") || $0 == "meta.backup" }.sorted()
        var locations: [String: [UInt64: [[Int]]]] = [:]
        var kinds: [String: [String: [Int]]] = [:]
        for file in files where file.hasSuffix(".mdb") {
            let bytes = try PosixFile.readAll(path + "/" + file)
            bytes.withUnsafeBytes { raw in
                let walker = LMDBPageWalker(raw)
                if file.hasPrefix("segment-") {
                    var map: [UInt64: [[Int]]] = [:]
                    for location in walker.recordLocations() { map[location.sequence, default: []].append(location.pages) }
                    locations[file] = map
                }
                var k: [String: [Int]] = ["meta": [0, 1]]
                for page in 2..<walker.pageCount {
                    let flags = walker.u16(page * walker.pageSize + 10)
                    let kind = flags & 0x01 != 0 ? "branch" : flags & 0x02 != 0 ? "leaf" : flags & 0x04 != 0 ? "overflow" : "other"
                    k[kind, default: []].append(page)
                }
                kinds[file] = k
            }
        }
        let sequences = Set(all.map(\.sequence))
        return Template(path: path, stale: stale, sequences: sequences, count: UInt64(sequences.count), cursor: 4000,
                        locations: locations, pageKinds: kinds, files: files)
    }

    /// One damage applied to a copy; returns the damaged pages of a segment file (nil: the whole file).
    struct Damage: CustomStringConvertible {
        var description: String
        var file: String
        var pages: Set<Int>?
        var removesMetadata: Bool = false
        var staleBackup: Bool = false
    }

    static func damage(_ copy: String, _ template: Template, _ rng: inout SeededGenerator) throws -> Damage {
        let present = template.files.filter { PosixFile.isRegularFile(copy + "/" + $0) }
        let file = present.isEmpty ? "meta.mdb" : present[Int.random(in: 0..<present.count, using: &rng)]
        let path = copy + "/" + file
        let size = Int(PosixFile.size(path) ?? 0)
        let pageSize = 4096
        let pageCount = max(1, size / pageSize)
        func pick(_ kind: String) -> Int {
            let candidates = template.pageKinds[file]?[kind] ?? []
            return candidates.isEmpty ? Int.random(in: 0..<pageCount, using: &rng) : candidates[Int.random(in: 0..<candidates.count, using: &rng)]
        }
        var bytes = (try? PosixFile.readAll(path)) ?? []
        func write() throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
        let kinds = ["meta", "branch", "leaf", "leaf", "overflow", "other"]
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<30:
            let kind = kinds[Int.random(in: 0..<kinds.count, using: &rng)]
            let page = file == "meta.backup" ? 0 : pick(kind)
            let flips = Int.random(in: 1...8, using: &rng)
            var touched: Set<Int> = []
            for _ in 0..<flips {
                let at = min(bytes.count - 1, page * pageSize + Int.random(in: 0..<pageSize, using: &rng))
                guard at >= 0 else { break }
                bytes[at] ^= UInt8.random(in: 1...255, using: &rng)
                touched.insert(at / pageSize)
            }
            try write()
            return Damage(description: "\(flips) bytes flipped in \(kind) page \(page) of \(file)", file: file, pages: touched)
        case 30..<45:
            let kind = kinds[Int.random(in: 0..<kinds.count, using: &rng)]
            let page = pick(kind)
            let start = min(bytes.count, page * pageSize)
            for i in start..<min(bytes.count, start + pageSize) { bytes[i] = 0 }
            try write()
            return Damage(description: "\(kind) page \(page) of \(file) zeroed", file: file, pages: [page])
        case 45..<57:
            let cut = Int.random(in: 0..<pageCount, using: &rng)
            #expect(truncate(path, off_t(cut * pageSize)) == 0)
            return Damage(description: "\(file) truncated at page \(cut)", file: file, pages: Set(cut..<(pageCount + 1)), removesMetadata: file == "meta.mdb")
        case 57..<65:
            PosixFile.removeTree(path)
            return Damage(description: "\(file) deleted", file: file, pages: nil, removesMetadata: file == "meta.mdb")
        case 65..<72:
            #expect(truncate(path, 0) == 0)
            return Damage(description: "\(file) emptied", file: file, pages: nil, removesMetadata: file == "meta.mdb")
        case 72..<80:
            for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
            try write()
            return Damage(description: "\(file) replaced by garbage", file: file, pages: nil, removesMetadata: file == "meta.mdb")
        case 80..<86:
            PosixFile.removeTree(path)
            try FileManager.default.createDirectory(atPath: path + "/inside", withIntermediateDirectories: true)
            return Damage(description: "a directory where \(file) belongs", file: file, pages: nil, removesMetadata: file == "meta.mdb")
        case 86..<93:
            PosixFile.removeTree(copy + "/meta.mdb")
            try FileManager.default.copyItem(atPath: template.stale + "/meta.mdb", toPath: copy + "/meta.mdb")
            if Bool.random(using: &rng) {
                PosixFile.removeTree(copy + "/meta.backup")
                try FileManager.default.copyItem(atPath: template.stale + "/meta.backup", toPath: copy + "/meta.backup")
                return Damage(description: "meta.mdb and meta.backup replaced by older copies", file: "meta.mdb", pages: [], staleBackup: true)
            }
            return Damage(description: "meta.mdb replaced by an older copy", file: "meta.mdb", pages: [])
        default:
            let flips = Int.random(in: 1...32, using: &rng)
            var touched: Set<Int> = []
            for _ in 0..<flips where !bytes.isEmpty {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[at] ^= UInt8.random(in: 1...255, using: &rng)
                touched.insert(at / pageSize)
            }
            try write()
            return Damage(description: "\(flips) bytes flipped anywhere in \(file)", file: file, pages: touched)
        }
    }

    struct Outcome: Sendable {
        var failures: [String]
        var readBack: Int
        var expected: Int
        var lost: UInt64
    }

    static func runCase(_ index: Int, seed: UInt64, template: Template, root: String) async throws -> Outcome {
        var rng = SeededGenerator(state: seed &+ UInt64(index) &* 0x1000_0001)
        let copy = root + "/case-\(index)"
        try copyTree(template.path, copy)
        let keep = ProcessInfo.processInfo.environment["TFLOW_DAMAGE_ONLY"] != nil
        if keep {
            try copyTree(template.path, root + "/template")
            try copyTree(template.stale, root + "/stale")
        }
        defer { if !keep { try? FileManager.default.removeItem(atPath: copy) } }
        var damages: [Damage] = []
        let count = [1, 1, 1, 1, 2, 2, 3][Int.random(in: 0..<7, using: &rng)]
        for _ in 0..<count { damages.append(try damage(copy, template, &rng)) }
        let what = "case \(index) (\(damages.map(\.description).joined(separator: "; ")))"
        var failures: [String] = []
        func check(_ condition: Bool, _ message: @autoclosure () -> String) { if !condition { failures.append("\(what): \(message())") } }

        // Records with an intact copy on disk must come back.
        var expected = template.sequences
        for (file, map) in template.locations {
            let hits = damages.filter { $0.file == file }
            guard !hits.isEmpty else { continue }
            if hits.contains(where: { $0.pages == nil }) {
                expected.subtract(map.keys)
                continue
            }
            let bad = hits.reduce(into: Set<Int>()) { $0.formUnion($1.pages ?? []) }
            for (sequence, copies) in map where !copies.contains(where: { Set($0).isDisjoint(with: bad) }) { expected.remove(sequence) }
        }
        let first = try await runTflow(["verify", "--dir", copy, "--append", "50", "--segment-size", "1048576"], timeoutSeconds: 60)
        check(!first.hung, "the first open hung: \(first.describe)")
        check(first.signal == nil, "the first open died of signal \(first.signal ?? 0): \(first.describe)")
        check(first.status == 0, "the first open failed: \(first.describe)")
        guard let json = first.json else {
            check(false, "no summary: \(first.describe)")
            return Outcome(failures: failures, readBack: 0, expected: expected.count, lost: 0)
        }
        let read = Set(first.sequences)
        let missing = expected.subtracting(read)
        check(missing.isEmpty, "\(missing.count) records with an undamaged copy were not read back (first \(missing.sorted().prefix(5)))")
        let appended = (json["appended"] as? [NSNumber]).map { Array($0[0].uint64Value...$0[1].uint64Value) } ?? []
        check(appended.count == 50 && json["readBack"] as? Bool == true, "the 50 appended events were not all stored and read back: \(json["flushError"] ?? "")")
        // Sequences are never reused while any copy of the metadata survives (when both are gone and the newest
        // records too, nothing on disk remembers them).
        let metadataLost = damages.contains { $0.file == "meta.mdb" } && damages.contains { $0.file == "meta.backup" || $0.staleBackup }
        if !metadataLost {
            check(appended.first.map { $0 > template.count } ?? false, "appended sequences reuse old ones: \(appended.prefix(1))")
        }
        check(read.isSubset(of: template.sequences), "\(read.subtracting(template.sequences).count) sequences read that were never written")
        let corrupted = (json["corrupted"] as? NSNumber)?.uint64Value ?? 0
        let lost = template.count - UInt64(read.count)
        let unknowable = damages.contains { $0.removesMetadata } && !FileManager.default.fileExists(atPath: template.path + "/meta.backup")
        if !unknowable && !damages.contains(where: { $0.file == "meta.mdb" || $0.file == "meta.backup" }) {
            check(corrupted >= lost, "\(lost) records are gone but only \(corrupted) were counted")
        }
        if let cursors = json["cursors"] as? [String: NSNumber], let c = cursors["c"] {
            check(c.uint64Value <= template.cursor, "the cursor moved ahead to \(c) (was \(template.cursor)): that would skip events")
        }
        let second = try await runTflow(["verify", "--dir", copy, "--segment-size", "1048576"], timeoutSeconds: 60)
        check(second.signal == nil && !second.hung && second.status == 0, "the second open failed: \(second.describe)")
        check(second.sequences == first.sequences + appended, "the second open read \(second.sequences.count) events, the first \(first.sequences.count) + \(appended.count) appended")
        check((second.json?["corrupted"] as? NSNumber)?.uint64Value == corrupted, "the second open counts a different loss: \(second.json?["corrupted"] ?? "-") vs \(corrupted)")
        return Outcome(failures: failures, readBack: read.count, expected: expected.count, lost: corrupted)
    }

    @Test func damagedCopiesNeverCrashHangOrLoseSilently() async throws {
        let env = ProcessInfo.processInfo.environment
        let cases = Int(env["TFLOW_DAMAGE_CASES"] ?? "") ?? 300
        let seed = UInt64(env["TFLOW_DAMAGE_SEED"] ?? "") ?? 20_261_201
        let dir = TemporaryDirectory()
        let template = try await Self.makeTemplate(dir)
        #expect(template.locations.count >= 3, "the template spans several segments: \(template.files)")
        #expect(template.pageKinds.values.contains { ($0["branch"] ?? []).count > 0 }, "and has branch pages")
        #expect(template.pageKinds.values.contains { ($0["overflow"] ?? []).count > 0 }, "and overflow pages")
        let started = Date()
        let root = dir.path
        var outcomes: [Outcome] = []
        if let only = Int(env["TFLOW_DAMAGE_ONLY"] ?? "") {
            let kept = NSTemporaryDirectory() + "tflow-damage-case-\(only)"
            try? FileManager.default.removeItem(atPath: kept)
            try FileManager.default.createDirectory(atPath: kept, withIntermediateDirectories: true)
            let outcome = try await Self.runCase(only, seed: seed, template: template, root: kept)
            for failure in outcome.failures { Issue.record(Comment(rawValue: failure)) }
            print("damage case \(only) (seed \(seed)): copy kept in \(kept)/case-\(only), the template and its stale metadata beside it; \(outcome.readBack) read back of \(outcome.expected) expected")
            return
        }
        try await withThrowingTaskGroup(of: Outcome.self) { group in
            var next = 0
            for _ in 0..<2 where next < cases {
                let i = next
                group.addTask { try await Self.runCase(i, seed: seed, template: template, root: root) }
                next += 1
            }
            while let outcome = try await group.next() {
                outcomes.append(outcome)
                if next < cases {
                    let i = next
                    group.addTask { try await Self.runCase(i, seed: seed, template: template, root: root) }
                    next += 1
                }
            }
        }
        let failures = outcomes.flatMap(\.failures)
        for failure in failures.prefix(20) { Issue.record(Comment(rawValue: failure)) }
        #expect(failures.isEmpty, "\(failures.count) failures in \(cases) cases")
        let readBack = outcomes.reduce(0) { $0 + $1.readBack }
        let lost = outcomes.reduce(UInt64(0)) { $0 + $1.lost }
        print("damage suite: \(cases) cases (seed \(seed)) in \(Int(Date().timeIntervalSince(started))) s: 0 signals, 0 hangs, \(failures.count) failures; \(readBack) records read back, \(lost) counted lost")
    }
}
