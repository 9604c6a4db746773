import Foundation
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

/// Each write, sync, truncate, rename/link/unlink, mapping and open-for-writing call the log makes is made to fail
/// in turn with ENOSPC and with EIO — through an LD_PRELOAD interposer of our own (`Tests/Support/faultfs.c`,
/// compiled here) that fails the n-th call of a kind on files under the log directory, as SQLite's anomaly tests
/// do. A counting run first learns how many calls of each kind a workload makes; then the calls at spread-out
/// positions fail, once or for good. Whatever happens, no acknowledged event may be missing, an error must be a
/// typed one, and the next open (without faults) must recover and take appends.
@Suite struct IOFaultTests {
    static let library: String? = {
        let root = String(#filePath).components(separatedBy: "/Tests/").first!
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("tflow-faultfs-\(getpid()).so").path
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-shared", "-fPIC", "-O1", "-o", output, root + "/Tests/Support/faultfs.c", "-ldl"]
        guard (try? cc.run()) != nil else { return nil }
        cc.waitUntilExit()
        return cc.terminationStatus == 0 ? output : nil
    }()

    static let kinds = ["write", "sync", "truncate", "rename", "map", "open"]

    func stress(_ dir: String, durability: String, fault: [String: String]) async throws -> ChildRun {
        var environment = fault
        guard let library = Self.library else { throw TelemetryFlowError(.unsupported, "the faultfs interposer did not compile") }
        environment["LD_PRELOAD"] = library
        environment["FAULTFS_DIR"] = dir
        return try await runTflow(["stress", "--dir", dir + "/log", "--durability", durability, "--segment-size", "1048576",
                                   "--count", "12000", "--flush-every", "400", "--block-timeout-ms", "100", "--continue-on-error"],
                                  environment: environment, timeoutSeconds: 90)
    }

    struct Result: Sendable { var failures: [String]; var runs: Int; var typedErrors: Int; var failedFlushes: Int }

    func run(kind: String, nth: Int, errno code: Int32, persist: Bool, durability: String, root: String) async throws -> Result {
        let dir = root + "/\(kind)-\(nth)-\(code)-\(persist)-\(durability)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let what = "\(kind) call \(nth) failing with \(code == ENOSPC ? "ENOSPC" : "EIO")\(persist ? " for good" : " once") (\(durability))"
        var failures: [String] = []
        let run = try await stress(dir, durability: durability, fault: [
            "FAULTFS_KIND": kind, "FAULTFS_NTH": String(nth), "FAULTFS_ERRNO": String(code), "FAULTFS_PERSIST": persist ? "1" : "0",
        ])
        if run.signal != nil || run.hung { failures.append("\(what): the child died or hung: \(run.describe)") }
        if run.status != 0 && !run.stderr.contains("Error: TelemetryFlowError.") {
            failures.append("\(what): the child failed without a typed error: \(run.describe)")
        }
        let check = try await runTflow(["verify", "--dir", dir + "/log", "--append", "10", "--segment-size", "1048576"])
        if check.status != 0 || check.json?["readBack"] as? Bool != true {
            failures.append("\(what): the next open did not recover: \(check.describe)")
        }
        let stored = Set(check.sequences)
        let missing = acknowledgedButMissing(run.stdout, stored: stored)
        if !missing.isEmpty { failures.append("\(what): acknowledged events are missing: \(missing.prefix(5))") }
        let failedFlushes = run.stdout.filter { $0.hasPrefix("flush-failed") }
        for line in failedFlushes where !(line.contains(" diskFull ") || line.contains(" io ") || line.contains(" storage ")) {
            failures.append("\(what): a flush failed with an unexpected code: \(line)")
        }
        return Result(failures: failures, runs: 1, typedErrors: run.status != 0 ? 1 : 0, failedFlushes: failedFlushes.count)
    }

    @Test(.enabled(if: IOFaultTests.library != nil)) func everyFileSystemCallFailingInTurnNeverFalselyAcknowledges() async throws {
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let root = dir.path
        // How many calls of each kind the workload makes.
        var counts: [String: Int] = [:]
        for kind in Self.kinds {
            let probe = root + "/count-\(kind)"
            try FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
            let run = try await stress(probe, durability: "always", fault: ["FAULTFS_KIND": kind, "FAULTFS_NTH": "0", "FAULTFS_COUNT_FILE": probe + ".count"])
            #expect(run.status == 0, "\(run.describe)")
            counts[kind] = Int(String(decoding: FileManager.default.contents(atPath: probe + ".count") ?? Data(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        #expect(counts["write", default: 0] > 50 && counts["sync", default: 0] > 10, "the workload writes and syncs: \(counts)")
        var plans: [(String, Int, Int32, Bool, String)] = []
        for kind in Self.kinds {
            let n = counts[kind, default: 0]
            guard n > 0 else { continue }
            let positions = Set([1, 2, 3, n / 4, n / 2, (3 * n) / 4, n - 1, n].filter { $0 >= 1 && $0 <= n })
            for nth in positions.sorted() {
                for code in [ENOSPC, EIO] { plans.append((kind, nth, code, false, "always")) }
            }
            plans.append((kind, max(1, n / 2), EIO, true, "always"))
            plans.append((kind, max(1, n / 3), ENOSPC, false, "interval(50)"))
        }
        var results: [Result] = []
        try await withThrowingTaskGroup(of: Result.self) { group in
            var next = 0
            func add() {
                let (kind, nth, code, persist, durability) = plans[next]
                group.addTask { try await self.run(kind: kind, nth: nth, errno: code, persist: persist, durability: durability, root: root) }
                next += 1
            }
            while next < min(2, plans.count) { add() }
            while let result = try await group.next() {
                results.append(result)
                if next < plans.count { add() }
            }
        }
        let failures = results.flatMap(\.failures)
        for failure in failures.prefix(20) { Issue.record(Comment(rawValue: failure)) }
        #expect(failures.isEmpty, "\(failures.count) failures in \(plans.count) runs")
        print("I/O faults: \(plans.count) runs over \(counts) calls: \(results.reduce(0) { $0 + $1.typedErrors }) ended in a typed error, \(results.reduce(0) { $0 + $1.failedFlushes }) flushes reported a failure, 0 false acknowledgements, every next open recovered")
    }
}
