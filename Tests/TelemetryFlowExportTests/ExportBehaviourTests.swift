import Foundation
import Synchronization
import Testing
import TelemetryFlow
import TelemetryFlowCore
import TelemetryFlowOTLP
import TelemetryFlowStorage
import TelemetryFlowTesting
import TelemetryFlowTransport

final class LogDirectory {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("tflow-export-\(UUID())").path
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Sends one span batch through `protocolName` while the receiver answers with `script`, on a manual clock, and
/// returns the worker's status once the batch was handled (or the time ran out), the receiver's stats, and every
/// deadline the worker slept for on the clock (jitter is off, so they are exact).
func runScripted(_ protocolName: String, _ script: [[String: Any]], timeout: Duration = .seconds(5), until: Duration = .seconds(60))
    async throws -> (status: ExporterStatus, stats: [String: Int], log: EventLog, dir: LogDirectory, sleeps: [Duration]) {
    let receiver = try sharedReceiver()
    try await receiver.reset()
    try await receiver.script(script)
    let dir = LogDirectory()
    let log = try makeLog(dir.path)
    for n in 0..<5 { _ = log.append(.spanEnded(sampleSpan(n), scope: testScope), timestampUnixNano: UInt64(n)) }
    let last = try await log.flush()
    var configuration = exporterConfiguration("matrix", protocolName, receiver)
    configuration.otlp!.timeout = timeout
    configuration.policy.jitter = 0
    let clock = ManualClock()
    let pipeline = try await ExportPipeline(log: log, exporters: [configuration], registry: .standard(), resource: testResource, clock: clock)
    pipeline.start()
    _ = await clock.advance(until: { pipeline.status[0].cursor >= last }, timeout: until)
    let sleeps = clock.sleepHistory
    await pipeline.stop()
    return (pipeline.status[0], try await receiver.stats(), log, dir, sleeps)
}

private let shared = Locked<Receiver?>(nil)

/// One receiver for the scripted runs (starting one costs about a second): each run resets it first.
func sharedReceiver() throws -> Receiver {
    try shared.withLock { receiver in
        if let receiver { return receiver }
        let started = try Receiver()
        receiver = started
        return started
    }
}

@Suite(.serialized) struct StatusMatrixTests {
    /// Every HTTP status: 429/502/503/504 are retried (the batch arrives after the failure), every other error is
    /// permanent (the batch goes to the dead-letter store, the cursor moves on).
    @Test(arguments: [400, 401, 403, 404, 408, 409, 413, 429, 500, 501, 502, 503, 504, 505])
    func httpStatuses(status: Int) async throws {
        let run = try await runScripted("http/protobuf", [["http_status": status, "message": "scripted \(status)"]])
        defer { run.log.close() }
        let retryable = [429, 502, 503, 504].contains(status)
        #expect(run.status.cursor == 5, "the batch was handled: \(run.status)")
        if retryable {
            #expect(run.status.retries == 1 && run.status.deadLetteredBatches == 0)
            #expect(run.sleeps == [.milliseconds(20), .milliseconds(70)], "the 20 ms batch delay, then the 50 ms backoff")
            #expect(run.stats["spans"] == 5, "the retry delivered the batch")
        } else {
            #expect(run.status.retries == 0 && run.status.deadLetteredBatches == 1)
            #expect(run.stats["spans"] == 0)
            let letters = try run.log.deadLetters(exporter: "matrix")
            #expect(letters.count == 1 && letters[0].batch.count == 5)
            #expect(letters[0].reason.contains("HTTP \(status)") && letters[0].reason.contains("scripted \(status)"))
        }
    }

    /// Every gRPC code: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS are retried;
    /// RESOURCE_EXHAUSTED only with RetryInfo; the rest are permanent.
    @Test(arguments: 1...16)
    func grpcCodes(code: Int) async throws {
        let run = try await runScripted("grpc", [["grpc_code": code, "message": "scripted \(code)"]])
        defer { run.log.close() }
        let retryable = [1, 4, 10, 11, 14, 15].contains(code)
        #expect(run.status.cursor == 5)
        #expect(run.status.retries == (retryable ? 1 : 0), "code \(code): \(run.status)")
        #expect(run.status.deadLetteredBatches == (retryable ? 0 : 1))
        #expect(run.stats["spans"] == (retryable ? 5 : 0))
    }

    @Test func resourceExhaustedWithRetryInfoIsRetriedAfterTheGivenDelay() async throws {
        let run = try await runScripted("grpc", [["grpc_code": 8, "retry_info_ms": 1500, "message": "slow down"]])
        defer { run.log.close() }
        #expect(run.status.retries == 1 && run.status.deadLetteredBatches == 0 && run.stats["spans"] == 5)
        #expect(run.sleeps == [.milliseconds(20), .milliseconds(1520)], "RetryInfo's 1.5 s replaced the 50 ms backoff")
    }

    @Test func retryAfterSecondsIsHonoured() async throws {
        let run = try await runScripted("http/protobuf", [["http_status": 503, "retry_after": "2"]])
        defer { run.log.close() }
        #expect(run.status.retries == 1 && run.stats["spans"] == 5)
        #expect(run.sleeps == [.milliseconds(20), .milliseconds(2020)], "Retry-After: 2 replaced the 50 ms backoff")
    }

    @Test func retryAfterHTTPDateIsParsedAndHonoured() async throws {
        // Parsing is checked against fixed dates; the live run uses a date 2 s ahead.
        #expect(OTLPResponseRules.httpDate("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(OTLPResponseRules.httpDate("Sunday, 06-Nov-94 08:49:37 GMT") == 784_111_777)
        #expect(OTLPResponseRules.httpDate("Sun Nov  6 08:49:37 1994") == 784_111_777)
        #expect(OTLPResponseRules.retryAfter("Sun, 06 Nov 1994 08:49:47 GMT", nowUnixSeconds: 784_111_777) == .seconds(10))
        #expect(OTLPResponseRules.retryAfter("yesterday", nowUnixSeconds: 0) == nil)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let date = formatter.string(from: Date().addingTimeInterval(3))
        let run = try await runScripted("http/json", [["http_status": 429, "retry_after": date]])
        defer { run.log.close() }
        #expect(run.status.retries == 1 && run.stats["spans"] == 5)
        let waited = (run.sleeps.last ?? .zero) - .milliseconds(20)
        #expect(run.sleeps.count == 2 && waited >= .seconds(1) && waited <= .seconds(3), "an HTTP-date 3 s ahead was honoured: \(run.sleeps)")
    }

    @Test(arguments: ["grpc", "http/protobuf", "http/json"])
    func partialSuccessIsRecordedAndNeverRetried(protocolName: String) async throws {
        let run = try await runScripted(protocolName, [["partial": 2, "message": "two spans too old"]])
        defer { run.log.close() }
        #expect(run.status.rejectedItems == 2 && run.status.retries == 0 && run.status.deadLetteredBatches == 0)
        #expect(run.status.cursor == 5 && run.stats["requests"] == 1)
        #expect(run.status.lastError?.contains("two spans too old") == true)
    }

    @Test(arguments: ["grpc", "http/protobuf"])
    func aSlowReceiverHitsTheTimeoutAndIsRetried(protocolName: String) async throws {
        // The late answer is an error, so that it records nothing when it lands in a later run on the shared receiver.
        let late: [String: Any] = protocolName == "grpc" ? ["delay_ms": 1200, "grpc_code": 14] : ["delay_ms": 1200, "http_status": 503]
        let run = try await runScripted(protocolName, [late], timeout: .milliseconds(300))
        defer { run.log.close() }
        #expect(run.status.retries >= 1, "the slow answer timed out and was retried: \(run.status)")
        #expect(run.status.cursor == 5 && run.status.deadLetteredBatches == 0)
        #expect((run.stats["unique"] ?? 0) == 5)
    }
}

@Suite(.serialized) struct OutageTests {
    @Test func everyEventRecordedDuringAnOutageArrivesWhenTheReceiverComesBack() async throws {
        let receiver = try Receiver()
        try await receiver.setDown(true)
        let dir = LogDirectory()
        let log = try makeLog(dir.path)
        defer { log.close() }
        var configuration = exporterConfiguration("outage", "http/protobuf", receiver)
        configuration.policy.maxBatchCount = 4096
        let clock = ManualClock()
        let pipeline = try await ExportPipeline(log: log, exporters: [configuration], registry: .standard(), resource: testResource, clock: clock)
        pipeline.start()
        let total = 20_000
        for n in 0..<total {
            let record = LogRecordData(timeUnixNano: UInt64(n), severity: .info, body: .string("outage \(n)"))
            _ = log.append(.log(record, scope: testScope), timestampUnixNano: UInt64(n))
        }
        let last = try await log.flush()
        // Backoff and breaker cooldown pass on the manual clock until the exporter has been refused twice.
        #expect(await clock.advance(until: { pipeline.status[0].retries >= 2 }, timeout: .seconds(60)))
        let during = pipeline.status[0]
        #expect(during.cursor == 0 && during.retries >= 1, "nothing is acknowledged while the receiver is down: \(during)")
        #expect(during.circuit != "closed" || during.consecutiveFailures < configuration.policy.breakerThreshold)
        try await receiver.setDown(false)
        #expect(await clock.advance(until: { pipeline.status[0].cursor >= last }, timeout: .seconds(60)), "\(pipeline.status)")
        await pipeline.stop()
        let stats = try await receiver.stats()
        #expect(stats["unique"] == total, "every event arrived: \(stats)")
        print("outage: \(total) events recorded while down, \(stats["logs"]!) delivered, \(stats["duplicates"]!) duplicates, \(during.retries) retries")
    }

    @Test func aDeadExporterDoesNotSlowAHealthyOne() async throws {
        let receiver = try Receiver()
        let dir = LogDirectory()
        let log = try makeLog(dir.path)
        defer { log.close() }
        var dead = exporterConfiguration("dead", "http/protobuf", receiver)
        dead.otlp!.endpoint = "http://127.0.0.1:9"  // discard port: nothing listens
        dead.otlp!.timeout = .seconds(2)
        let healthy = exporterConfiguration("healthy", "grpc", receiver)
        let pipeline = try await ExportPipeline(log: log, exporters: [dead, healthy], registry: .standard(), resource: testResource)
        pipeline.start()
        var latencies: [Duration] = []
        for round in 0..<20 {
            let record = LogRecordData(timeUnixNano: UInt64(round), severity: .warn, body: .string("round \(round)"))
            _ = log.append(.log(record, scope: testScope), timestampUnixNano: UInt64(round))
            let sequence = try await log.flush()
            let sent = ContinuousClock.now
            while (pipeline.status.first { $0.name == "healthy" }!.cursor) < sequence {
                try await Task.sleep(for: .milliseconds(2))
                if ContinuousClock.now - sent > .seconds(10) { break }
            }
            latencies.append(ContinuousClock.now - sent)
        }
        await pipeline.stop()
        let status = Dictionary(uniqueKeysWithValues: pipeline.status.map { ($0.name, $0) })
        #expect(status["healthy"]!.cursor == 20 && status["healthy"]!.retries == 0)
        #expect(status["dead"]!.cursor == 0 && status["dead"]!.retries >= 1, "the dead exporter kept its events: \(status["dead"]!)")
        let stats = try await receiver.stats()
        #expect(stats["logs"] == 20)
        let sorted = latencies.sorted()
        print("healthy exporter beside a dead one: median delivery \(sorted[sorted.count / 2]), max \(sorted.last!)")
        // The dead exporter's 2 s timeouts never show up in the healthy one's latency.
        #expect(sorted[sorted.count / 2] < .seconds(1))
    }
}

@Suite struct RetryPolicyTests {
    @Test func backoffDoublesUpToTheCapWithBoundedJitter() {
        var policy = ExportPolicy()
        policy.initialBackoff = .milliseconds(100)
        policy.maxBackoff = .seconds(1)
        policy.jitter = 0.2
        let low = Backoff(policy: policy, random: { 0 })
        let high = Backoff(policy: policy, random: { 0.999999 })
        #expect(low.delay(afterFailures: 1, retryAfter: nil) == .milliseconds(80))
        #expect(low.delay(afterFailures: 2, retryAfter: nil) == .milliseconds(160))
        #expect(low.delay(afterFailures: 4, retryAfter: nil) == .milliseconds(640))
        #expect(low.delay(afterFailures: 10, retryAfter: nil) == .milliseconds(800))
        #expect(high.delay(afterFailures: 10, retryAfter: nil) <= .milliseconds(1200))
        #expect(high.delay(afterFailures: 10, retryAfter: nil) > .milliseconds(1199))
        #expect(low.delay(afterFailures: 1, retryAfter: .seconds(5)) == .seconds(5), "Retry-After wins when longer")
    }

    @Test func breakerOpensAfterTheThresholdAndProbesAfterTheCooldown() {
        var breaker = CircuitBreaker(threshold: 3, cooldown: .seconds(10))
        var now = Duration.seconds(100)
        for _ in 0..<2 { breaker.recordFailure(now: now) }
        #expect(breaker.state == .closed && breaker.waitBeforeSending(now: now) == .zero)
        breaker.recordFailure(now: now)
        #expect(breaker.state == .open(until: .seconds(110)))
        now = .seconds(104)
        #expect(breaker.waitBeforeSending(now: now) == .seconds(6), "a dead backend costs nothing while open")
        now = .seconds(110)
        #expect(breaker.waitBeforeSending(now: now) == .zero && breaker.state == .halfOpen, "one probe after the cooldown")
        breaker.recordFailure(now: now)
        #expect(breaker.state == .open(until: .seconds(120)), "a failed probe opens it again")
        #expect(breaker.waitBeforeSending(now: .seconds(121)) == .zero)
        breaker.recordSuccess()
        #expect(breaker.state == .closed && breaker.consecutiveFailures == 0 && breaker.openings == 2)
    }

    @Test func exportResultsCombineWorstFirst() {
        #expect(ExportResult.combine([.success, .partialSuccess(rejected: 2, message: "a"), .partialSuccess(rejected: 3, message: "b")])
            == .partialSuccess(rejected: 5, message: "a; b"))
        #expect(ExportResult.combine([.success, .permanent(reason: "x"), .retryable(reason: "y")]) == .retryable(reason: "y"))
        #expect(ExportResult.combine([.success, .permanent(reason: "x")]) == .permanent(reason: "x"))
    }
}
