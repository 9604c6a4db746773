import Glibc

/// Named points in recovery, salvage, roll and seal where the fault-injection tests kill the process.
///
/// `TFLOW_CRASH_POINT=<name>[:<n>]` in the environment makes the process SIGKILL itself the `n`-th time (default
/// the first) it reaches the point `name`; nothing else reads the variable, and without it ``hit(_:)`` costs one
/// load of a constant. The points sit between the steps whose order makes a step crash-safe (write beside,
/// sync, record in the metadata, rename), so the tests can stop the process between any two of them.
enum CrashPoint {
    private static let target: (name: String, count: Int)? = {
        guard let raw = getenv("TFLOW_CRASH_POINT") else { return nil }
        let text = String(cString: raw)
        let parts = text.split(separator: ":", maxSplits: 1)
        guard let name = parts.first, !name.isEmpty else { return nil }
        let count = parts.count > 1 ? Int(parts[1]) ?? 1 : 1
        return (String(name), max(1, count))
    }()
    private nonisolated(unsafe) static var hits = 0

    /// Kills the process here when the environment names this point (and this is the chosen hit).
    @inline(__always)
    static func hit(_ name: StaticString) {
        guard let target else { return }
        check(name, target)
    }

    @inline(never)
    private static func check(_ name: StaticString, _ target: (name: String, count: Int)) {
        guard name.description == target.name else { return }
        // Only the thread that opens the log or the writer thread reach these points, one at a time.
        hits += 1
        if hits == target.count { kill(getpid(), SIGKILL) }
    }
}
