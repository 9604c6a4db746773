import Foundation
import Testing
import TelemetryFlow
import TelemetryFlowCore
import TelemetryFlowStorage

@Suite(.serialized) struct CrashRecoveryTests {
    /// A child records counters and collects delta metrics; it is killed with SIGKILL at random moments and
    /// restarted. Summing every collected delta must give exactly the measurements in the log: none counted
    /// twice, none lost.
    @Test func metricsAggregationSurvivesSigkillWithoutDoubleCounting() async throws {
        let dir = LogDirectory()
        let common = ["metrics-stress", "--dir", dir.path + "/log", "--durability", "never", "--segment-size", "4194304"]
        do {
            // A cursor that never moves keeps every segment, so the check below sees every measurement.
            let log = try makeLog(dir.path + "/log")
            _ = try await log.registerCursor("test.hold", startingAt: .beginning)
            log.close()
        }
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        for _ in 0..<8 {
            let run = try await runChild(common, killAfter: .milliseconds(Int.random(in: 100...600, using: &generator)))
            #expect(run.first.hasPrefix("opened"), "child started: \(run.first) \(run.output.prefix(300))")
            if run.killed { kills += 1 }
        }
        let final = try await runChild(common + ["--count", "1000"], killAfter: nil)
        #expect(!final.killed && final.output.contains("done 1000"), "\(final.output.prefix(300))")

        // Read and fold the whole log off the cooperative pool (hundreds of thousands of events).
        let path = dir.path + "/log"
        let (recorded, collected, collections, trace, kindsOK) = try await runBlocking {
            let log = try makeLog(path)
            defer { log.close() }
            var kindsOK = true
            var recorded: [Int64: Int64] = [:]
            var collected: [Int64: Int64] = [:]
            var collections = 0
            var trace: [String] = []
            var measurementSequences: [UInt64] = []
            var intervals: [(through: UInt64, sum: Int64, at: UInt64)] = []
            var position: UInt64 = 0
            while true {
                let batch = try log.read(after: position, maxCount: 8192)
                for event in batch {
                    switch try event.decode() {
                    case .measurement(let m):
                        if case .int(let k)? = m.attributes["k"] { recorded[k, default: 0] += 1 }
                        measurementSequences.append(event.sequence)
                    case .metricsCollected(let c):
                        collections += 1
                        let sum = c.metrics.flatMap(\.points).reduce(Int64(0)) { if case .number(.int(let v)) = $1.value { return $0 + v }; return $0 }
                        intervals.append((c.foldedThrough, sum, event.sequence))
                        for metric in c.metrics {
                            if metric.kind != .sum(monotonic: true, temporality: .delta) { kindsOK = false }
                            for point in metric.points {
                                guard case .int(let k)? = point.attributes["k"], case .number(.int(let v)) = point.value else { continue }
                                collected[k, default: 0] += v
                            }
                        }
                    default: break
                    }
                }
                if batch.endSequence == position { break }
                position = batch.endSequence
            }
            // Measurements in (previous, through], by binary search in the ascending sequences (a filter per interval
            // was quadratic: seconds of a cooperative thread that other suites' exporters were waiting for).
            func countUpTo(_ sequence: UInt64) -> Int {
                var low = 0
                var high = measurementSequences.count
                while low < high {
                    let middle = (low + high) / 2
                    if measurementSequences[middle] <= sequence { low = middle + 1 } else { high = middle }
                }
                return low
            }
            var previous: UInt64 = 0
            for interval in intervals {
                let expected = max(0, countUpTo(interval.through) - countUpTo(previous))
                if expected != Int(interval.sum) { trace.append("E#\(interval.at) (\(previous), \(interval.through)]: collected \(interval.sum), measurements \(expected)") }
                previous = max(previous, interval.through)
            }
            return (recorded, collected, collections, trace, kindsOK)
        }
        #expect(kindsOK, "every collected metric is a monotonic delta sum")
        let total = recorded.values.reduce(0, +)
        #expect(kills >= 6 && collections >= 10 && total > 1000, "kills \(kills), collections \(collections), measurements \(total)")
        #expect(collected == recorded, "every measurement counted exactly once across \(kills) kills\n\(trace.joined(separator: "\n"))")
        print("metrics crash test: \(kills) SIGKILLs, \(total) measurements, \(collections) collections, sums equal: \(collected == recorded)")
    }

    /// The exporting process is killed with SIGKILL while it sends a backlog and restarted until it finishes:
    /// every event arrives; duplicates (at-least-once) are counted and reported.
    @Test func exportSurvivesSigkillAndEverythingArrives() async throws {
        let receiver = try Receiver()
        let dir = LogDirectory()
        let total = 60_000
        do {
            let log = try makeLog(dir.path + "/log")
            for n in 0..<total { _ = log.append(.spanEnded(sampleSpan(n), scope: testScope), timestampUnixNano: UInt64(n)) }
            _ = try await log.flush()
            log.close()
        }
        let common = ["export-stress", "--dir", dir.path + "/log", "--durability", "never", "--segment-size", "4194304",
                      "--endpoint", receiver.endpoint("http/protobuf"), "--batch", "200"]
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        for _ in 0..<4 {
            let run = try await runChild(common, killAfter: .milliseconds(Int.random(in: 100...400, using: &generator)))
            #expect(run.first.hasPrefix("opened"), "\(run.first) \(run.output.prefix(300))")
            if run.killed { kills += 1 }
        }
        let final = try await runChild(common, killAfter: nil)
        #expect(final.output.contains("done true"), "\(final.output.prefix(300))")
        let stats = try await receiver.stats()
        #expect(stats["unique"] == total, "every span arrived: \(stats)")
        print("export crash test: \(kills) SIGKILLs while exporting \(total) spans; \(stats["unique"]!) unique arrived, \(stats["duplicates"]!) duplicates")
    }
}
