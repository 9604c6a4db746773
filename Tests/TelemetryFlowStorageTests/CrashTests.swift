import Foundation
import Testing
@testable import TelemetryFlowCore
@testable import TelemetryFlowStorage

/// A child process appends as fast as it can and prints each sequence `flush()` acknowledged; the test kills it
/// with SIGKILL at random moments, reopens the log and checks every acknowledged event.
@Suite(.serialized) struct CrashTests {
    @Test func sigkillNeverLosesAnAcknowledgedEvent() async throws {
        let dir = TemporaryDirectory()
        let tflow = try tflowExecutable()
        let kills = 24
        var acknowledged: UInt64 = 0
        // Each child appends after the last sequence its open found and acknowledges a prefix of that range.
        // Sequences a killed child had queued but not committed are never reused, so the ranges may have gaps
        // between them; within each range every acknowledged sequence must be present.
        var acknowledgedRanges: [ClosedRange<UInt64>] = []
        var generator = SystemRandomNumberGenerator()
        let modes = ["always", "interval(20)", "never"]
        var segmentsSeen = 0
        for round in 0..<kills {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tflow)
            process.arguments = [
                "stress", "--dir", dir.log, "--durability", modes[round % modes.count], "--segment-size", "1048576",
                "--flush-every", String(Int.random(in: 50...2000, using: &generator)),
            ]
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            let lines = LineCollector(output.fileHandleForReading)
            let errorLines = LineCollector(errors.fileHandleForReading)
            // The kill clock starts once the child has opened the log (recovery time varies with the machine).
            let started = try await runBlocking { lines.waitForLines(1, timeoutSeconds: 60) }
            try await Task.sleep(for: .milliseconds(Int.random(in: 150...700, using: &generator)))
            kill(process.processIdentifier, SIGKILL)
            let (printed, stderr) = try await runBlocking {
                process.waitUntilExit()
                return (lines.finish(), errorLines.finish())
            }
            #expect(started, "round \(round): the child opened the log within 60 s (stderr: \(stderr.suffix(5)))")
            #expect(process.terminationReason == .uncaughtSignal, "round \(round): the child was killed, not finished (stderr: \(stderr.suffix(5)))")
            let acked = printed.compactMap { $0.hasPrefix("acked ") ? UInt64($0.dropFirst(6)) : nil }
            let opened = try #require(printed.first.flatMap { $0.hasPrefix("opened last=") ? UInt64($0.dropFirst(12)) : nil },
                "round \(round): child did not start: \(printed.prefix(3)) stderr: \(stderr.suffix(5))")
            #expect(opened >= acknowledged, "round \(round): the reopened log ends after every acknowledged event")
            guard let last = acked.last else { continue }
            let range = (opened + 1)...last
            acknowledgedRanges.append(range)
            acknowledged = last

            // Reopen and verify this child's acknowledged range in full.
            let path = dir.log
            let (events, stats) = try await runBlocking {
                let log = try EventLog(smallConfiguration(path))
                defer { log.close() }
                return (try readAll(log, after: opened), log.statistics)
            }
            segmentsSeen = max(segmentsSeen, stats.segmentCount)
            let sequences = events.map(\.sequence)
            #expect(stats.corrupted == 0, "round \(round): a kill -9 never damages committed records")
            #expect(sequences == sequences.sorted(), "round \(round): events are in order")
            let present = sequences.prefix { $0 <= last }
            #expect(present.count == range.count && present.first == range.lowerBound && present.last == range.upperBound,
                "round \(round): every acknowledged sequence \(range) is present (found \(present.count))")
            for event in events.prefix(200) + events.suffix(200) { _ = try event.decode() }
        }
        #expect(acknowledgedRanges.count >= 20, "most children acknowledged something before being killed")
        #expect(acknowledged > 10_000, "the children acknowledged a real workload (through sequence \(acknowledged))")
        #expect(segmentsSeen >= 3, "the workload spanned several segments (\(segmentsSeen))")

        // A final full pass: every acknowledged event is present, intact and in order (checked off the
        // cooperative pool: millions of events).
        let path = dir.log
        let ranges = acknowledgedRanges
        let through = acknowledged
        let check = try await runBlocking { () throws -> (inOrder: Bool, missing: [ClosedRange<UInt64>], wrong: [String]) in
            let log = try EventLog(smallConfiguration(path))
            defer { log.close() }
            let all = try readAll(log)
            let sequences = all.map(\.sequence)
            let stored = Set(sequences)
            var wrong: [String] = []
            for event in all where event.sequence <= through && wrong.count < 10 {
                switch try event.decode() {
                case .measurement(let m) where m.name == "stress.ops": break
                case .log(let record, _) where record.body?.description.hasPrefix("stress record") == true: break
                default: wrong.append("\(event.sequence): unexpected \(event.type)")
                }
            }
            return (sequences == sequences.sorted(), ranges.filter { !$0.allSatisfy { stored.contains($0) } }, wrong)
        }
        #expect(check.inOrder, "events are in order")
        #expect(check.missing.isEmpty, "every acknowledged sequence survived all the kills; missing from \(check.missing)")
        #expect(check.wrong.isEmpty, "every acknowledged event decodes to what the child appended: \(check.wrong)")
        let acknowledgedCount = ranges.reduce(0) { $0 + $1.count }
        print("crash test: \(kills) SIGKILLs, \(acknowledgedCount) acknowledged events, \(segmentsSeen) segments, 0 lost")
    }
}
