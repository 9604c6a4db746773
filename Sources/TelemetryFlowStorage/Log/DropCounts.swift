import TelemetryFlowCore

/// Drop counters: the built-in reasons by position (the hot path), plugins' own by name.
struct DropCounts: Sendable {
    var builtIn: [UInt64]
    var plugin: [String: UInt64] = [:]

    var byReason: [DropReason: UInt64] {
        var out: [DropReason: UInt64] = [:]
        for (index, reason) in DropReason.allCases.enumerated() { out[reason] = builtIn[index] }
        for (name, count) in plugin {
            if let reason = try? DropReason(name) { out[reason] = count }
        }
        return out
    }
}
