import Foundation
import Testing
import TelemetryFlowCore
import TelemetryFlowTransport

/// The Python OTLP receiver of Tests/Support/otlp_receiver.py (official opentelemetry-proto + grpcio), started on
/// 127.0.0.1 for one test and stopped when the test ends.
final class Receiver: @unchecked Sendable {
    let process = Process()
    let stdin = Pipe()
    /// The receiver's ports by service: "grpc", "http", and with `tls` also "grpc_tls", "grpc_mtls", "https".
    let ports: [String: Int]
    var grpcPort: Int { ports["grpc"]! }
    var httpPort: Int { ports["http"]! }
    /// With `tls`: the directory of the test PKI (ca.pem, other-ca.pem, client.pem, client-key.pem).
    let pki: String?
    let client: HTTPClient

    init(tls: Bool = false) throws {
        let root = String(#filePath).components(separatedBy: "/Tests/").first!
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        pki = tls ? FileManager.default.temporaryDirectory.appendingPathComponent("tflow-pki-\(UUID())").path : nil
        process.arguments = ["python3", root + "/Tests/Support/otlp_receiver.py"] + (pki.map { ["--tls", $0] } ?? [])
        // grpcio logs every refused handshake; the TLS tests refuse some on purpose.
        process.environment = ProcessInfo.processInfo.environment.merging(["GRPC_VERBOSITY": "NONE"]) { _, new in new }
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardInput = stdin
        try process.run()
        let line = Data(readLine(stdout.fileHandleForReading).utf8)
        let ports = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Int], "the receiver did not start: \(String(decoding: line, as: UTF8.self))")
        self.ports = ports
        client = try HTTPClient()
    }

    deinit {
        try? stdin.fileHandleForWriting.close()
        process.terminate()
        process.waitUntilExit()
        client.shutdown()
        if let pki { try? FileManager.default.removeItem(atPath: pki) }
    }

    /// A file of the test PKI (`ca.pem`, `other-ca.pem`, `client.pem`, `client-key.pem`).
    func pkiFile(_ name: String) -> String { pki! + "/" + name }

    /// The base endpoint of `protocolName` (`grpc`, `http/protobuf`, `http/json`).
    func endpoint(_ protocolName: String) -> String {
        "http://127.0.0.1:\(protocolName == "grpc" ? grpcPort : httpPort)"
    }

    private func post(_ path: String, _ json: Any) async throws {
        let body = try JSONSerialization.data(withJSONObject: json)
        let response = try await client.send(HTTPRequest(url: "http://127.0.0.1:\(httpPort)\(path)", body: Array(body)))
        #expect(response.status == 200)
    }

    private func get(_ path: String) async throws -> [String: Any] {
        var request = HTTPRequest(url: "http://127.0.0.1:\(httpPort)\(path)")
        request.method = "GET"
        let response = try await client.send(request)
        return try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    /// The next requests get these answers, in order (see the receiver's docstring).
    func script(_ responses: [[String: Any]]) async throws { try await post("/control/script", responses) }
    func setDown(_ down: Bool) async throws { try await post("/control/down", ["down": down]) }
    /// Forgets every request, script and setting.
    func reset() async throws { try await post("/control/reset", [:] as [String: Any]) }
    func received() async throws -> [String: Any] { try await get("/received") }
    func stats() async throws -> [String: Int] { (try await get("/stats")).compactMapValues { $0 as? Int } }

    /// Waits until `condition` holds on the stats, up to `seconds`.
    func waitFor(seconds: Double = 30, _ condition: ([String: Int]) -> Bool) async throws -> [String: Int] {
        let deadline = Date().addingTimeInterval(seconds)
        var stats = try await self.stats()
        while !condition(stats) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
            stats = try await self.stats()
        }
        return stats
    }
}

/// Reads one line (blocking) from a child's output.
func readLine(_ handle: FileHandle) -> String {
    var line = Data()
    while true {
        let byte = handle.readData(ofLength: 1)
        if byte.isEmpty || byte == Data("\n".utf8) { break }
        line.append(byte)
    }
    return String(decoding: line, as: UTF8.self)
}

/// Path of the built `tflow` executable.
func tflowPath() throws -> String {
    let root = String(#filePath).components(separatedBy: "/Tests/").first!
    let candidates = [ProcessInfo.processInfo.environment["TFLOW_BIN"], root + "/.build/debug/tflow", root + "/.build/release/tflow"].compactMap { $0 }
    return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) }, "tflow not built")
}

/// Runs `tflow` with `arguments`; once it printed its first line, waits `killAfter` and kills it with SIGKILL
/// (or, with nil, lets it finish). Returns the first line and whether it was killed.
func runChild(_ arguments: [String], killAfter: Duration?, environment: [String: String] = [:]) async throws -> (first: String, killed: Bool, output: String, status: Int32) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try tflowPath())
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let stdout = Pipe()
    process.standardOutput = stdout
    process.standardError = stdout
    try process.run()
    let handle = stdout.fileHandleForReading
    let first = try await runBlocking { readLine(handle) }
    if let killAfter {
        try await Task.sleep(for: killAfter)
        kill(process.processIdentifier, SIGKILL)
    }
    let rest = try await runBlocking { String(decoding: handle.readDataToEndOfFile(), as: UTF8.self) }
    try await runBlocking { process.waitUntilExit() }
    return (first, process.terminationReason == .uncaughtSignal, rest, process.terminationStatus)
}

/// Runs blocking work (waiting on a child process, reading a whole log) on a thread of its own. The suites run
/// in parallel on a cooperative pool as wide as the machine has cores; blocking two of its threads for seconds
/// stalls every other suite's tasks — exporters mid-retry included.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
