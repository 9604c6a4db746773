import CLMDB
import Synchronization
import TelemetryFlowCore

/// One segment: an LMDB environment holding a contiguous run of sequences.
///
/// Readers hold a reference while they read; a deleted segment's file is unlinked at once (the mapping stays
/// valid for readers still inside it) and the environment is closed when the last reference goes.
final class Segment: Sendable {
    let id: UInt64
    let firstSequence: UInt64
    let env: LMDBEnvironment
    let dbi: MDB_dbi

    static func fileName(id: UInt64) -> String {
        let hex = String(id, radix: 16)
        return "segment-" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex + ".mdb"
    }

    static func id(fromFileName name: String) -> UInt64? {
        guard name.hasPrefix("segment-"), name.hasSuffix(".mdb") else { return nil }
        return UInt64(name.dropFirst(8).dropLast(4), radix: 16)
    }

    /// Opens or creates the segment file. The map is sized so that one segment plus a full queue always fit.
    ///
    /// - Parameter sealed: the segment takes no more writes: it is opened read-only without the lock file.
    ///   A writable LMDB environment keeps the pages of its largest write transaction allocated until it
    ///   closes, so the writer reopens each segment it seals this way; memory then stays bounded by the queue
    ///   whatever the number of segments in the backlog.
    init(directory: String, id: UInt64, firstSequence: UInt64, configuration: LogConfiguration, sealed: Bool = false) throws(TelemetryFlowError) {
        self.id = id
        self.firstSequence = firstSequence
        let noSync = configuration.durability != .always
        env = try LMDBEnvironment(
            path: directory + "/" + Self.fileName(id: id),
            mapSize: Self.mapSize(configuration),
            maxDatabases: 0,
            noSync: noSync,
            readOnly: sealed,
            noLock: sealed)
        let e = env
        dbi = try env.withTransaction(write: !sealed) { (txn) throws(TelemetryFlowError) in try e.openDatabase(txn, nil, create: false) }
    }

    static func mapSize(_ configuration: LogConfiguration) -> Int {
        configuration.segmentSize + 4 * (configuration.queueCapacityBytes + configuration.effectiveMaxRecordBytes) + (32 << 20)
    }

    var path: String { env.path }

    /// Unlinks the files; the environment itself closes when the last reader lets go.
    func removeFiles() {
        PosixFile.remove(env.path)
        PosixFile.remove(env.path + "-lock")
    }

    /// The last key in the segment, or nil when it is empty.
    func lastSequence() throws(TelemetryFlowError) -> UInt64? {
        let dbi = self.dbi
        return try env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) -> UInt64? in
            var cursor: OpaquePointer?
            try lmdbCheck(mdb_cursor_open(txn, dbi, &cursor), "cannot open a cursor on \(env.path)")
            defer { mdb_cursor_close(cursor) }
            var k = MDB_val()
            var v = MDB_val()
            let rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
            if rc == MDB_NOTFOUND { return nil }
            try lmdbCheck(rc, "cannot read the last record of \(env.path)")
            return sequence(fromKey: k.raw)
        }
    }
}
