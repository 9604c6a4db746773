import Foundation
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

/// A small tmpfs mounted for the test (as root; skipped with a message elsewhere).
final class SmallFileSystem {
    let path: String

    init?(megabytes: Int) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tflow-tmpfs-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path]
        mount.standardError = FileHandle.nullDevice
        guard (try? mount.run()) != nil else { return nil }
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            return nil
        }
        self.path = path
    }

    deinit {
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = ["-l", path]
        try? umount.run()
        umount.waitUntilExit()
        try? FileManager.default.removeItem(atPath: path)
    }

    static let available: Bool = {
        guard getuid() == 0, SmallFileSystem(megabytes: 1) != nil else {
            print("FullDiskTests skipped: mounting a tmpfs needs root (and CAP_SYS_ADMIN)")
            return false
        }
        return true
    }()
}

/// The log fills a small file system while a child appends and flushes: every acknowledged event must be on disk,
/// the failures are reported as `diskFull`, and acknowledgements resume once space is freed.
@Suite(.enabled(if: SmallFileSystem.available)) struct FullDiskTests {
    @Test(arguments: ["always", "never"])
    func aFullDiskNeverGetsAFalseAcknowledgementAndWritingResumes(durability: String) async throws {
        let fs = try #require(SmallFileSystem(megabytes: 24))
        let filler = fs.path + "/filler"
        try Data(repeating: 0xAB, count: 8 << 20).write(to: URL(fileURLWithPath: filler))
        let log = fs.path + "/log"
        let executable = try tflowExecutable()
        let (lines, freedAt, stderr) = try await runBlocking { () throws -> ([String], Int, String) in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["stress", "--dir", log, "--durability", durability, "--segment-size", "1048576",
                                 "--flush-every", "300", "--continue-on-error"]
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            let collector = LineCollector(output.fileHandleForReading)
            let errorCollector = LineCollector(errors.fileHandleForReading)
            defer { kill(process.processIdentifier, SIGKILL) }
            func count(_ prefix: String, from start: Int = 0) -> Int {
                collector.snapshot().dropFirst(start).filter { $0.hasPrefix(prefix) }.count
            }
            let deadline = Date(timeIntervalSinceNow: 90)
            while count("flush-failed") < 3 && Date() < deadline && process.isRunning { usleep(20_000) }
            // Space returns.
            let freedAt = collector.snapshot().count
            try? FileManager.default.removeItem(atPath: filler)
            while count("acked", from: freedAt) < 3 && Date() < deadline && process.isRunning { usleep(20_000) }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return (collector.finish(), freedAt, errorCollector.finish().joined(separator: "\n"))
        }
        let failed = lines.filter { $0.hasPrefix("flush-failed") }
        #expect(failed.count >= 3, "the disk filled and flushes failed: \(lines.suffix(5)) \(stderr.suffix(400))")
        #expect(failed.allSatisfy { $0.split(separator: " ").dropFirst(2).first == "diskFull" }, "reported as a full disk: \(failed.prefix(2))")
        let acked = lines.compactMap { $0.hasPrefix("acked ") ? UInt64($0.dropFirst(6)) : nil }
        let resumed = lines.dropFirst(freedAt).filter { $0.hasPrefix("acked") }.count
        #expect(resumed >= 3, "acknowledgements resumed once space was freed: \(lines.suffix(5))")
        let last = try #require(acked.last)

        // What is on the file system, read elsewhere (the tmpfs may be full again).
        let dir = TemporaryDirectory()
        try copyTree(log, dir.log)
        let check = try await runTflow(["verify", "--dir", dir.log, "--append", "10", "--segment-size", "1048576"])
        #expect(check.status == 0, "\(check.describe)")
        let stored = Set(check.sequences)
        // Each successful flush acknowledged everything after the previous flush's target: all of it is stored.
        let missing = acknowledgedButMissing(lines, stored: stored)
        #expect(missing.isEmpty, "acknowledged events are missing: \(missing.prefix(10)) (last acked \(last))")
        #expect(((check.json?["dropped"] as? NSNumber)?.intValue ?? 0) > 0, "the drops are counted: \(check.describe)")
        #expect(check.json?["readBack"] as? Bool == true, "the log takes appends after the disk recovered")
        print("full disk (\(durability)): \(failed.count) flushes failed with diskFull, \(acked.count) acknowledged through \(last), \(stored.count) stored, 0 acknowledged missing")
    }
}
