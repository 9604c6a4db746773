import TelemetryFlowCore

/// The checks and the salvage of segment files, for the engine benchmark (package access only): what verifying
/// a backlog costs at open and before a first read, and how fast a damaged file is salvaged.
package enum VerificationProbe {
    /// Computes the page checksums of `path`, as sealing does; returns the blocks checksummed.
    package static func checksum(path: String) throws -> Int {
        try PageChecksums.compute(path: path).checksums.count
    }

    /// Checks `path` against its own checksums, as the first read of a sealed segment does; true when they match.
    package static func verify(path: String) throws -> Bool {
        let sums = try PageChecksums.compute(path: path)
        return sums.mismatch(path: path) == nil
    }

    /// Validates every page of `path` as an open does for the active segment; returns the records seen and the
    /// problem, if any.
    package static func validate(path: String) throws -> (records: Int, problem: String?) {
        let checked = try PosixFile.readAll(path).withUnsafeBytes { LMDBPageWalker($0).validateSegment() }
        return (checked.count, checked.problem ?? (checked.damaged.isEmpty ? nil : "a record fails its checksum"))
    }

    /// Salvages `path` with the page walker, as for a damaged segment; returns the records recovered.
    package static func salvage(path: String) throws -> Int {
        SalvagedRecords(bytes: try PosixFile.readAll(path), range: 1...UInt64.max / 2).count
    }
}
