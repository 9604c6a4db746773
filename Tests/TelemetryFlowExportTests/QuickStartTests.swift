import Foundation
import Testing
import TelemetryFlow

/// The README's quick start, exactly as printed: built as a package of its own that depends on this one, then run
/// with only environment variables pointing it at a real OTLP receiver. Its span, log and counter must arrive.
@Suite struct QuickStartTests {
    static func quickStart() throws -> String {
        let root = String(#filePath).components(separatedBy: "/Tests/").first!
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        let section = try #require(readme.components(separatedBy: "## Quick start\n").dropFirst().first, "README has a Quick start")
        let code = try #require(section.components(separatedBy: "```swift\n").dropFirst().first?.components(separatedBy: "```").first)
        return code
    }

    @Test func theReadmeQuickStartBuildsAndExportsThroughTheEnvironment() async throws {
        let code = try Self.quickStart()
        #expect(!code.contains("withEndpoint") && !code.contains("http://"), "the quick start sets no endpoint in code")
        #expect(code.split(separator: "\n").count <= 16)
        let root = String(#filePath).components(separatedBy: "/Tests/").first!
        let dir = LogDirectory()
        let package = dir.path + "/quickstart"
        try FileManager.default.createDirectory(atPath: package + "/Sources/QuickStart", withIntermediateDirectories: true)
        try """
        // swift-tools-version: 6.0
        import PackageDescription
        let package = Package(
            name: "QuickStart",
            dependencies: [.package(path: "\(root)")],
            targets: [.executableTarget(name: "QuickStart", dependencies: [.product(name: "TelemetryFlow", package: "\(URL(fileURLWithPath: root).lastPathComponent)")])]
        )
        """.write(toFile: package + "/Package.swift", atomically: true, encoding: .utf8)
        try code.write(toFile: package + "/Sources/QuickStart/main.swift", atomically: true, encoding: .utf8)
        // `@main` in a file named main.swift is refused; the quick start is the app's only file.
        try FileManager.default.moveItem(atPath: package + "/Sources/QuickStart/main.swift", toPath: package + "/Sources/QuickStart/App.swift")
        let build = try await run("/usr/bin/env", ["swift", "build", "--package-path", package], environment: [:])
        #expect(build.status == 0, "the quick start does not build:\n\(build.output.suffix(3000))")
        guard build.status == 0 else { return }

        let receiver = try Receiver()
        let ran = try await run(package + "/.build/debug/QuickStart", [], environment: [
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint("http/protobuf"),
            "TELEMETRYFLOW_DATA_DIR": dir.path + "/data",
        ])
        #expect(ran.status == 0, "\(ran.output)")
        let stats = try await receiver.waitFor(seconds: 20) { ($0["spans"] ?? 0) >= 1 && ($0["logs"] ?? 0) >= 1 && ($0["points"] ?? 0) >= 1 }
        #expect(stats["spans"] == 1 && stats["logs"] == 1 && stats["points"] == 1, "\(stats)")
        let received = try await receiver.received()
        let span = (received["spans"] as? [[String: Any]])?.first
        let log = (received["logs"] as? [[String: Any]])?.first
        #expect(span?["name"] as? String == "GET /cart")
        #expect((span?["resource"] as? [String: Any])?["service.name"] as? String == "checkout")
        #expect(log?["traceId"] as? String == span?["traceId"] as? String)
        #expect((received["metrics"] as? [[String: Any]])?.first?["name"] as? String == "http.server.requests")
    }

    func run(_ executable: String, _ arguments: [String], environment: [String: String]) async throws -> (status: Int32, output: String) {
        try await runBlocking {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OTEL_") && !$0.key.hasPrefix("TELEMETRYFLOW_") }
                .merging(environment) { _, new in new }
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, output)
        }
    }
}
