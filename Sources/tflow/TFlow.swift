import ArgumentParser
import Foundation
import TelemetryFlow

@main
struct TFlow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tflow",
        abstract: "Inspect, load and demonstrate TelemetryFlow event logs.",
        subcommands: [Demo.self, Inspect.self, Verify.self, Stress.self, MetricsStress.self, ExportStress.self, OpenSpans.self]
    )
}
