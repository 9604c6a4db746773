import CLMDB
import TelemetryFlowCore

/// What the metadata environment records about one segment.
struct SegmentRecord: Sendable, Hashable {
    var id: UInt64
    /// No event in the segment has a smaller sequence.
    var firstSequence: UInt64
    /// The last sequence, once sealed; 0 while the segment is active.
    var lastSequence: UInt64
    /// Wall-clock time of sealing in unix nanoseconds; 0 while active.
    var sealedAtNanos: UInt64
    /// Bytes on disk once sealed.
    var bytes: UInt64

    var encoded: [UInt8] {
        [firstSequence, lastSequence, sealedAtNanos, bytes].flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    }

    init(id: UInt64, firstSequence: UInt64, lastSequence: UInt64 = 0, sealedAtNanos: UInt64 = 0, bytes: UInt64 = 0) {
        self.id = id
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.sealedAtNanos = sealedAtNanos
        self.bytes = bytes
    }

    init?(id: UInt64, raw: UnsafeRawBufferPointer) {
        guard raw.count >= 32 else { return nil }
        func at(_ i: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        self.init(id: id, firstSequence: at(0), lastSequence: at(1), sealedAtNanos: at(2), bytes: at(3))
    }
}

/// The small metadata environment: format info, the segment list, cursors, counters and quarantined records.
final class MetadataStore: @unchecked Sendable {
    static let fileName = "meta.mdb"
    /// The on-disk layout version of the whole log directory.
    static let layoutVersion: UInt64 = 1

    let env: LMDBEnvironment
    let info: MDB_dbi
    let segments: MDB_dbi
    let cursors: MDB_dbi
    let counters: MDB_dbi
    let quarantine: MDB_dbi
    let deadLetters: MDB_dbi
    let checkpoints: MDB_dbi

    init(path: String, noSync: Bool) throws(TelemetryFlowError) {
        env = try LMDBEnvironment(path: path, mapSize: 256 << 20, maxDatabases: 12, noSync: noSync)
        let e = env
        (info, segments, cursors, counters, quarantine, deadLetters, checkpoints) = try env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
            (
                try e.openDatabase(txn, "info", create: true), try e.openDatabase(txn, "segments", create: true),
                try e.openDatabase(txn, "cursors", create: true), try e.openDatabase(txn, "counters", create: true),
                try e.openDatabase(txn, "quarantine", create: true), try e.openDatabase(txn, "dead_letters", create: true),
                try e.openDatabase(txn, "checkpoints", create: true)
            )
        }
    }

    // MARK: Generic helpers (all run inside a caller's transaction)

    func get(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: [UInt8]) throws(TelemetryFlowError) -> [UInt8]? {
        try withVal(key) { (k) throws(TelemetryFlowError) -> [UInt8]? in
            var v = MDB_val()
            let rc = mdb_get(txn, dbi, &k, &v)
            if rc == MDB_NOTFOUND { return nil }
            try lmdbCheck(rc, "cannot read metadata")
            return Array(v.raw)
        }
    }

    func put(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: [UInt8], _ value: [UInt8]) throws(TelemetryFlowError) {
        try withVal(key) { (k) throws(TelemetryFlowError) in
            try withVal(value) { (v) throws(TelemetryFlowError) in
                try lmdbCheck(mdb_put(txn, dbi, &k, &v, 0), "cannot write metadata")
            }
        }
    }

    func delete(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: [UInt8]) throws(TelemetryFlowError) {
        try withVal(key) { (k) throws(TelemetryFlowError) in
            let rc = mdb_del(txn, dbi, &k, nil)
            if rc != MDB_NOTFOUND { try lmdbCheck(rc, "cannot delete metadata") }
        }
    }

    func all(_ txn: OpaquePointer, _ dbi: MDB_dbi) throws(TelemetryFlowError) -> [(key: [UInt8], value: [UInt8])] {
        var cursor: OpaquePointer?
        try lmdbCheck(mdb_cursor_open(txn, dbi, &cursor), "cannot open metadata cursor")
        defer { mdb_cursor_close(cursor) }
        var out: [(key: [UInt8], value: [UInt8])] = []
        var k = MDB_val()
        var v = MDB_val()
        var op = MDB_FIRST
        while true {
            let rc = mdb_cursor_get(cursor, &k, &v, op)
            if rc == MDB_NOTFOUND { break }
            try lmdbCheck(rc, "cannot iterate metadata")
            out.append((Array(k.raw), Array(v.raw)))
            op = MDB_NEXT
        }
        return out
    }

    static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func u64(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    // MARK: Typed access

    func layoutVersion(_ txn: OpaquePointer) throws(TelemetryFlowError) -> UInt64? {
        try get(txn, info, Array("layout_version".utf8)).flatMap { Self.u64($0) }
    }

    func setLayoutVersion(_ txn: OpaquePointer) throws(TelemetryFlowError) {
        try put(txn, info, Array("layout_version".utf8), Self.u64(Self.layoutVersion))
        try put(txn, info, Array("created_unix_nano".utf8), Self.u64(wallClockNanos()))
    }

    func segmentRecords(_ txn: OpaquePointer) throws(TelemetryFlowError) -> [SegmentRecord] {
        try all(txn, segments).compactMap { entry in
            guard let id = Self.u64(entry.key) else { return nil }
            return entry.value.withUnsafeBytes { SegmentRecord(id: id, raw: $0) }
        }
    }

    func putSegment(_ txn: OpaquePointer, _ record: SegmentRecord) throws(TelemetryFlowError) {
        try put(txn, segments, Self.u64(record.id), record.encoded)
    }

    func deleteSegment(_ txn: OpaquePointer, id: UInt64) throws(TelemetryFlowError) {
        try delete(txn, segments, Self.u64(id))
    }

    func cursorPositions(_ txn: OpaquePointer) throws(TelemetryFlowError) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for entry in try all(txn, cursors) {
            if let v = Self.u64(entry.value) { out[String(decoding: entry.key, as: UTF8.self)] = v }
        }
        return out
    }

    func counterValues(_ txn: OpaquePointer) throws(TelemetryFlowError) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for entry in try all(txn, counters) {
            if let v = Self.u64(entry.value) { out[String(decoding: entry.key, as: UTF8.self)] = v }
        }
        return out
    }

    func putCounters(_ txn: OpaquePointer, _ values: [String: UInt64]) throws(TelemetryFlowError) {
        for (name, value) in values { try put(txn, counters, Array(name.utf8), Self.u64(value)) }
    }

    func quarantinedSequences(_ txn: OpaquePointer) throws(TelemetryFlowError) -> Set<UInt64> {
        Set(try all(txn, quarantine).compactMap { Self.u64($0.key) })
    }
}
