import CLMDB
import Glibc
import TelemetryFlowCore

/// Opening a log directory: creating it, or checking and recovering what an earlier process left.
///
/// Recovery is crash-safe and idempotent: every step either leaves the files as they were or is recorded so that
/// the next open completes it, so any number of kills during an open loses nothing acknowledged.
/// - Nothing is read by LMDB before it passed a check: the metadata file and the active segment are validated
///   page by page by ``LMDBPageWalker``; sealed segments are checked against their page checksums before their
///   first read (``Segment``).
/// - A damaged active segment is rebuilt beside the original (`….mdb.salvage`), synced and validated; the lost
///   ranges and the intent are committed to the metadata; then the original is linked into `quarantine/` and the
///   copy renamed over it. An open that finds the intent finishes the rename.
/// - Damaged, missing or stale metadata is rebuilt from `meta.backup` and the segment files, beside the
///   original, and renamed into place. Segment files the metadata does not know are adopted, never deleted,
///   unless they are older than every known segment (an interrupted deletion).
/// - Sequences never go backwards: the next one is past the highest found in any segment, cursor or counter.
enum LogRecovery {
    struct Opened {
        var meta: MetadataStore
        var lock: FileLock
        var report: RecoveryReport
        var segments: [SegmentState]
        var cursors: [String: UInt64]
        var lost: LostRanges
        var counters: [String: UInt64]
        var nextSequence: UInt64
    }

    static let lockName = "LOCK"
    static let quarantineDirectory = "quarantine"
    static let salvageSuffix = ".salvage"
    static let rebuildSuffix = ".rebuild"

    static func open(directory: String, configuration: LogConfiguration) throws -> Opened {
        var pass = try RecoveryPass(directory: directory, configuration: configuration)
        try pass.finishInterruptedSalvages()
        try pass.reconcileFiles()
        try pass.recoverSegments()
        CrashPoint.hit("open.segments")
        return try pass.finish()
    }

    /// Marks a segment found on disk that the metadata did not list (only inside ``open(directory:configuration:)``).
    static let adoptFlag: UInt64 = 1 << 63

    // MARK: Salvaging the active segment

    /// Rebuilds the active segment at `path` from `records`, crash-safely: the copy is written beside it, synced
    /// and validated; the lost ranges and the intent are committed; the original is linked into `quarantine/`;
    /// the copy is renamed over it.
    static func salvageActive(
        path: String, id: UInt64, records: SalvagedRecords, lost: [(ClosedRange<UInt64>, String)], meta: MetadataStore,
        directory: String, configuration: LogConfiguration
    ) throws {
        let temporary = path + salvageSuffix
        PosixFile.removeTree(temporary)
        PosixFile.remove(temporary + "-lock")
        do {
            let env = try LMDBEnvironment(path: temporary, mapSize: Segment.mapSize(configuration), maxDatabases: 0, noSync: true)
            defer { env.close() }
            let dbi = try env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try env.openDatabase(txn, nil, create: false) }
            let copy = records
            try env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
                for index in 0..<copy.count {
                    var key = copy.sequences[index].bigEndian
                    var value = Array(copy.record(at: index))
                    let rc = value.withUnsafeMutableBytes { raw in
                        withUnsafeMutableBytes(of: &key) { keyRaw in
                            var k = MDB_val(mv_size: 8, mv_data: keyRaw.baseAddress)
                            var v = MDB_val(mv_size: raw.count, mv_data: raw.baseAddress)
                            return mdb_put(txn, dbi, &k, &v, UInt32(MDB_APPEND))
                        }
                    }
                    try lmdbCheck(rc, "cannot rebuild \(path)")
                }
            }
            try env.sync()
        }
        PosixFile.remove(temporary + "-lock")
        CrashPoint.hit("salvage.written")
        let rebuilt = try PosixFile.readAll(temporary)
        var count = 0
        if let problem = rebuilt.withUnsafeBytes({ LMDBPageWalker($0).validate(subDatabases: false) { _, _ in count += 1; return nil } }) {
            throw TelemetryFlowError(.storage, "the rebuilt copy of \(path) failed validation: \(problem)")
        }
        guard count == records.count else {
            throw TelemetryFlowError(.storage, "the rebuilt copy of \(path) holds \(count) records where \(records.count) were written")
        }
        try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
            try meta.put(txn, meta.salvage, MetadataStore.u64(id), [])
            var counters = try meta.counterValues(txn)
            var ranges = try meta.lostRanges(txn)
            var fresh: UInt64 = 0
            for (range, reason) in lost {
                fresh += ranges.insert(range)
                try meta.putLost(txn, range, reason: reason)
            }
            counters["corrupted", default: 0] += fresh
            try meta.putCounters(txn, counters)
        }
        try meta.env.sync()
        CrashPoint.hit("salvage.recorded")
        try finishSalvage(path: path, directory: directory)
        try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try meta.delete(txn, meta.salvage, MetadataStore.u64(id)) }
    }

    /// Links the original into `quarantine/` (once) and renames the rebuilt copy over it, if that has not happened.
    static func finishSalvage(path: String, directory: String) throws {
        let temporary = path + salvageSuffix
        guard PosixFile.isRegularFile(temporary) else { return }
        if PosixFile.isRegularFile(path) {
            try quarantineLink(path, directory: directory)
            CrashPoint.hit("salvage.linked")
        }
        PosixFile.remove(path + "-lock")
        try PosixFile.rename(temporary, path)
        try PosixFile.syncDirectory(directory)
        CrashPoint.hit("salvage.renamed")
    }

    /// Gives the file at `path` a second name in `quarantine/`, named by its inode so that a repeated attempt
    /// for the same file does not make another copy.
    static func quarantineLink(_ path: String, directory: String) throws {
        let folder = directory + "/" + quarantineDirectory
        try PosixFile.makeDirectories(folder)
        var st = stat()
        let inode = stat(path, &st) == 0 ? String(st.st_ino) : String(wallClockNanos())
        let name = String(path.split(separator: "/").last ?? "file") + "." + inode + ".damaged"
        if PosixFile.exists(folder + "/" + name) { return }
        try PosixFile.link(path, folder + "/" + name)
        try PosixFile.syncDirectory(folder)
    }

    static func moveToQuarantine(_ path: String, directory: String, suffix: String) throws {
        let folder = directory + "/" + quarantineDirectory
        try PosixFile.makeDirectories(folder)
        let name = String(path.split(separator: "/").last ?? "file") + "." + String(wallClockNanos()) + "." + suffix
        try PosixFile.rename(path, folder + "/" + name)
        PosixFile.remove(path + "-lock")
        try PosixFile.syncDirectory(directory)
    }
}
