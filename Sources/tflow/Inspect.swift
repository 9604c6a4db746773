import ArgumentParser
import TelemetryFlow

/// Prints a log's counters, cursors and contents.
struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a log's counters, cursors and a summary of its events.")

    @Option(help: "Directory of the log.")
    var dir: String

    @Option(help: "How many decoded events to print.")
    var show: Int = 10

    func run() async throws {
        let log = try EventLog(LogConfiguration(directory: dir))
        defer { log.close() }
        let report = log.recoveryReport
        print("log at \(dir)")
        if !report.salvagedSegments.isEmpty { print("salvaged: \(report.salvagedSegments.joined(separator: "; "))") }
        print(describe(log.statistics))
        let (counts, samples, total) = try summarize(log, samples: show)
        print("events: \(total)")
        for (type, count) in counts.sorted(by: { $0.key < $1.key }) { print("  \(type): \(count)") }
        samples.forEach { print($0) }
    }
}
