import ArgumentParser
import Foundation
import TelemetryFlow

/// Prints a log's counters, cursors and contents.
struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a log's counters, cursors and a summary of its events.")

    @Option(help: "Directory of the log.")
    var dir: String

    @Option(help: "How many decoded events to print.")
    var show: Int = 10

    func validate() throws {
        guard show >= 0 else { throw ValidationError("--show must be 0 or more, not \(show)") }
        guard FileManager.default.fileExists(atPath: dir) else { throw ValidationError("no log at \(dir): the directory does not exist") }
    }

    func run() async throws {
        let log = try EventLog(LogConfiguration(directory: dir))
        defer { log.close() }
        let report = log.recoveryReport
        print("log at \(dir)")
        if !report.salvagedSegments.isEmpty { print("salvaged: \(report.salvagedSegments.joined(separator: "; "))") }
        if let rebuilt = report.metadataRebuilt { print("metadata: \(rebuilt)") }
        if !report.adoptedSegments.isEmpty { print("adopted: \(report.adoptedSegments.joined(separator: ", "))") }
        for problem in report.problems { print("problem: \(problem)") }
        print(describe(log.statistics))
        let (counts, samples, total) = try summarize(log, samples: show)
        print("events: \(total)")
        for (type, count) in counts.sorted(by: { $0.key < $1.key }) { print("  \(type): \(count)") }
        samples.forEach { print($0) }
    }
}
