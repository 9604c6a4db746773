import Foundation
import Testing
import TelemetryFlowCore
import TelemetryFlowTransport

/// The transport's shutdown and cancellation paths: every order of shutdown, release, send and cancel is safe
/// (the sanitizer run of `make test-sanitizers` checks the memory side) and every send returns.
@Suite(.serialized) struct HTTPClientTests {
    /// A request to the receiver that it answers at once.
    func statsRequest(_ receiver: Receiver) -> HTTPRequest {
        var request = HTTPRequest(url: "http://127.0.0.1:\(receiver.httpPort)/stats")
        request.method = "GET"
        return request
    }

    @Test func shutdownTwiceThenReleaseIsSafeAndLaterSendsFailClosed() async throws {
        var client: HTTPClient? = try HTTPClient()
        client!.shutdown()
        client!.shutdown()
        let closed = await #expect(throws: TelemetryFlowError.self) { try await client!.send(HTTPRequest(url: "http://127.0.0.1:9/")) }
        #expect(closed?.code == .closed, "\(String(describing: closed))")
        client = nil
        // A client released without shutdown stops its I/O thread too.
        for _ in 0..<20 { _ = try HTTPClient() }
    }

    @Test func shutdownRacingSendsEndsEverySend() async throws {
        let receiver = try Receiver()
        let request = statsRequest(receiver)
        var outcomes: [String: Int] = [:]
        for round in 0..<40 {
            let client = try HTTPClient()
            let results = await withTaskGroup(of: String.self) { group -> [String] in
                for _ in 0..<8 {
                    group.addTask {
                        do {
                            let response = try await client.send(request)
                            return response.status == 200 ? "ok" : "status \(response.status)"
                        } catch let error as TelemetryFlowError {
                            return "\(error.code)"
                        } catch {
                            return "\(error)"
                        }
                    }
                }
                group.addTask {
                    if round % 2 == 1 { try? await Task.sleep(for: .microseconds(200 * round)) }
                    client.shutdown()
                    return "shutdown"
                }
                var all: [String] = []
                for await result in group { all.append(result) }
                return all
            }
            for result in results { outcomes[result, default: 0] += 1 }
        }
        print("shutdown racing sends: \(outcomes.sorted { $0.key < $1.key })")
        #expect(outcomes["shutdown"] == 40)
        #expect(Set(outcomes.keys).isSubset(of: ["ok", "closed", "shutdown"]), "every send succeeded or failed closed: \(outcomes)")
        #expect((outcomes["ok"] ?? 0) + (outcomes["closed"] ?? 0) == 320)
    }

    @Test func releasingTheClientFailsItsSendsInFlight() async throws {
        let receiver = try Receiver()
        try await receiver.script([["delay_ms": 30_000]])
        var client: HTTPClient? = try HTTPClient()
        let engineUser = client!
        let sending = Task {
            try await engineUser.send(HTTPRequest(url: "http://127.0.0.1:\(receiver.httpPort)/v1/traces", body: []))
        }
        try await Task.sleep(for: .milliseconds(300))
        engineUser.shutdown()
        client = nil
        let result = await sending.result
        let error = #expect(throws: TelemetryFlowError.self) { try result.get() }
        #expect(error?.code == .closed, "\(String(describing: error))")
    }

    @Test func aCancelledSendAbortsItsTransferAndTheClientKeepsWorking() async throws {
        let receiver = try Receiver()
        try await receiver.script([["delay_ms": 30_000]])
        let client = try HTTPClient()
        defer { client.shutdown() }
        let slow = Task {
            try await client.send(HTTPRequest(url: "http://127.0.0.1:\(receiver.httpPort)/v1/traces", body: []))
        }
        try await Task.sleep(for: .milliseconds(300))
        slow.cancel()
        // Without the abort the receiver would answer after 30 s with a success.
        let result = await slow.result
        guard case .failure(let error as TelemetryFlowError) = result else {
            Issue.record("the cancelled send returned \(result)")
            return
        }
        #expect(error.code == .cancelled, "\(error)")
        // Cancelled before it starts: fails at once, without a request.
        let before = try await receiver.stats()["requests"] ?? 0
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.send(statsRequest(receiver))
        }
        if case .failure(let error as TelemetryFlowError) = await early.result {
            #expect(error.code == .cancelled)
        } else {
            Issue.record("a send from a cancelled task went out")
        }
        let response = try await client.send(statsRequest(receiver))
        #expect(response.status == 200, "the client still works after a cancellation")
        #expect((try await receiver.stats()["requests"] ?? 0) == before)
    }
}
