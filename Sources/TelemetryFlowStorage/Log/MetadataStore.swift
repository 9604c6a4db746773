import CLMDB
import TelemetryFlowCore

/// What the metadata environment records about one segment.
///
/// Stored under the segment id (u64 big-endian) as five u64 little-endian fields: first sequence, last sequence,
/// sealing time, bytes, flags (layout 1 had the first four).
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
    var flags: UInt64 = 0

    /// The segment failed verification: it is read through the page walker, never by LMDB.
    static let damaged: UInt64 = 1

    var isDamaged: Bool { flags & Self.damaged != 0 }

    var encoded: [UInt8] {
        [firstSequence, lastSequence, sealedAtNanos, bytes, flags].flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    }

    init(id: UInt64, firstSequence: UInt64, lastSequence: UInt64 = 0, sealedAtNanos: UInt64 = 0, bytes: UInt64 = 0, flags: UInt64 = 0) {
        self.id = id
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.sealedAtNanos = sealedAtNanos
        self.bytes = bytes
        self.flags = flags
    }

    init?(id: UInt64, raw: UnsafeRawBufferPointer) {
        guard raw.count == 32 || raw.count == 40 else { return nil }
        func at(_ i: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        self.init(id: id, firstSequence: at(0), lastSequence: at(1), sealedAtNanos: at(2), bytes: at(3), flags: raw.count == 40 ? at(4) : 0)
    }
}

/// The small metadata environment: format info, the segment list and each sealed segment's page checksums,
/// cursors, counters, lost sequence ranges, dead letters and projection checkpoints.
///
/// Every value is stored with a CRC-32C of its key and value appended (u32 little-endian), so that a damaged
/// entry is found and the file rebuilt instead of trusted. A file is given to LMDB only after
/// ``LMDBPageWalker/validate(subDatabases:fileSize:leaf:)`` accepted every page of it.
/// `@unchecked Sendable`: every stored property is immutable after `init` (the environment and database
/// handles); writes go through write transactions, which only the log's writer thread begins.
final class MetadataStore: @unchecked Sendable {
    // @unchecked: the handles are set once in init; the environment does its own locking.
    static let fileName = "meta.mdb"
    /// The on-disk layout version of the whole log directory.
    static let layoutVersion: UInt64 = 2
    /// Every database, in the order of the backup file.
    static let databaseNames = ["info", "segments", "cursors", "counters", "quarantine", "dead_letters", "checkpoints", "page_checksums", "salvage"]

    let env: LMDBEnvironment
    let info: MDB_dbi
    let segments: MDB_dbi
    let cursors: MDB_dbi
    let counters: MDB_dbi
    /// Lost sequence ranges: first (u64 BE) → last (u64 BE) + reason.
    let quarantine: MDB_dbi
    let deadLetters: MDB_dbi
    let checkpoints: MDB_dbi
    let pageChecksums: MDB_dbi
    /// Salvages between their rename and its completion: segment id → nothing.
    let salvage: MDB_dbi
    let handles: [MDB_dbi]

    init(path: String, noSync: Bool) throws(TelemetryFlowError) {
        env = try LMDBEnvironment(path: path, mapSize: 256 << 20, maxDatabases: 12, noSync: noSync)
        let e = env
        handles = try env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
            var out: [MDB_dbi] = []
            for name in Self.databaseNames { out.append(try e.openDatabase(txn, name, create: true)) }
            return out
        }
        (info, segments, cursors, counters, quarantine) = (handles[0], handles[1], handles[2], handles[3], handles[4])
        (deadLetters, checkpoints, pageChecksums, salvage) = (handles[5], handles[6], handles[7], handles[8])
    }

    // MARK: Checksummed values

    static func seal(_ key: [UInt8], _ value: [UInt8]) -> [UInt8] {
        var out = value
        let crc = value.withUnsafeBytes { v in key.withUnsafeBytes { k in CRC32C.checksum(v, continuing: CRC32C.checksum(k)) } }
        withUnsafeBytes(of: crc.littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// The value without its checksum, or nil when the checksum fails.
    static func unseal(_ key: UnsafeRawBufferPointer, _ stored: UnsafeRawBufferPointer) -> [UInt8]? {
        guard stored.count >= 4 else { return nil }
        let value = UnsafeRawBufferPointer(rebasing: stored[..<(stored.count - 4)])
        let crc = UInt32(littleEndian: stored.loadUnaligned(fromByteOffset: stored.count - 4, as: UInt32.self))
        guard CRC32C.checksum(value, continuing: CRC32C.checksum(key)) == crc else { return nil }
        return Array(value)
    }

    private func damaged(_ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer) -> TelemetryFlowError {
        let name = handles.firstIndex(of: dbi).map { Self.databaseNames[$0] } ?? "?"
        return TelemetryFlowError(.corruptedRecord, "metadata entry \(key.map { String($0, radix: 16) }.joined()) in \(name) fails its checksum")
    }

    // MARK: Generic helpers (all run inside a caller's transaction)

    func get(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: [UInt8]) throws(TelemetryFlowError) -> [UInt8]? {
        try withVal(key) { (k) throws(TelemetryFlowError) -> [UInt8]? in
            var v = MDB_val()
            let rc = mdb_get(txn, dbi, &k, &v)
            if rc == MDB_NOTFOUND { return nil }
            try lmdbCheck(rc, "cannot read metadata")
            guard let value = Self.unseal(k.raw, v.raw) else { throw damaged(dbi, k.raw) }
            return value
        }
    }

    func put(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: [UInt8], _ value: [UInt8]) throws(TelemetryFlowError) {
        try putRaw(txn, dbi, key, Self.seal(key, value))
    }

    private func putRaw(_ txn: OpaquePointer, _ dbi: MDB_dbi, _ key: [UInt8], _ stored: [UInt8]) throws(TelemetryFlowError) {
        try withVal(key) { (k) throws(TelemetryFlowError) in
            try withVal(stored) { (v) throws(TelemetryFlowError) in
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

    /// Every entry of `dbi`, checksums verified (`raw`: as stored, unverified).
    func all(_ txn: OpaquePointer, _ dbi: MDB_dbi, raw: Bool = false) throws(TelemetryFlowError) -> [(key: [UInt8], value: [UInt8])] {
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
            if raw {
                out.append((Array(k.raw), Array(v.raw)))
            } else {
                guard let value = Self.unseal(k.raw, v.raw) else { throw damaged(dbi, k.raw) }
                out.append((Array(k.raw), value))
            }
            op = MDB_NEXT
        }
        return out
    }

    /// Every entry of every database (values without their checksums), for the backup file.
    func dump(_ txn: OpaquePointer) throws(TelemetryFlowError) -> [MetadataBackup.Entry] {
        var out: [MetadataBackup.Entry] = []
        for (index, dbi) in handles.enumerated() {
            for entry in try all(txn, dbi) { out.append(.init(database: index, key: entry.key, value: entry.value)) }
        }
        return out
    }

    func load(_ txn: OpaquePointer, _ entries: [MetadataBackup.Entry]) throws(TelemetryFlowError) {
        for entry in entries where entry.database < handles.count { try put(txn, handles[entry.database], entry.key, entry.value) }
    }

    /// Rewrites a layout-1 file (values without checksums, lost records one per key) as layout 2.
    func migrateFromLayout1(_ txn: OpaquePointer) throws(TelemetryFlowError) {
        for dbi in handles {
            for entry in try all(txn, dbi, raw: true) {
                var value = entry.value
                if dbi == quarantine { value = entry.key + Array(value.prefix(512)) }
                try put(txn, dbi, entry.key, value)
            }
        }
        try put(txn, info, Array("layout_version".utf8), Self.u64(Self.layoutVersion))
    }

    static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func u64(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
    static func u64<C: Collection<UInt8>>(prefix bytes: C) -> UInt64? {
        guard bytes.count >= 8 else { return nil }
        return bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    // MARK: Typed access

    /// The layout version, reading a layout-1 value (no checksum) too; nil when there is none.
    func layoutVersion(_ txn: OpaquePointer) throws(TelemetryFlowError) -> UInt64? {
        let key = Array("layout_version".utf8)
        guard let stored = try all(txn, info, raw: true).first(where: { $0.key == key })?.value else { return nil }
        if stored.count == 8 { return Self.u64(stored) }
        guard let value = key.withUnsafeBytes({ k in stored.withUnsafeBytes { Self.unseal(k, $0) } }), let version = Self.u64(value) else {
            throw TelemetryFlowError(.corruptedRecord, "the layout version in the metadata fails its checksum")
        }
        return version
    }

    func setLayoutVersion(_ txn: OpaquePointer) throws(TelemetryFlowError) {
        try put(txn, info, Array("layout_version".utf8), Self.u64(Self.layoutVersion))
        try put(txn, info, Array("created_unix_nano".utf8), Self.u64(wallClockNanos()))
    }

    func segmentRecords(_ txn: OpaquePointer) throws(TelemetryFlowError) -> [SegmentRecord] {
        var out: [SegmentRecord] = []
        for entry in try all(txn, segments) {
            guard let id = Self.u64(entry.key), let record = entry.value.withUnsafeBytes({ SegmentRecord(id: id, raw: $0) }) else {
                throw TelemetryFlowError(.corruptedRecord, "a segment record in the metadata is malformed")
            }
            out.append(record)
        }
        return out.sorted { $0.id < $1.id }
    }

    func putSegment(_ txn: OpaquePointer, _ record: SegmentRecord) throws(TelemetryFlowError) {
        try put(txn, segments, Self.u64(record.id), record.encoded)
    }

    func deleteSegment(_ txn: OpaquePointer, id: UInt64) throws(TelemetryFlowError) {
        try delete(txn, segments, Self.u64(id))
        try delete(txn, pageChecksums, Self.u64(id))
    }

    func checksums(_ txn: OpaquePointer, id: UInt64) throws(TelemetryFlowError) -> PageChecksums? {
        guard let value = try get(txn, pageChecksums, Self.u64(id)) else { return nil }
        guard let checksums = PageChecksums(encoded: value) else {
            throw TelemetryFlowError(.corruptedRecord, "the page checksums of segment \(id) in the metadata are malformed")
        }
        return checksums
    }

    func putChecksums(_ txn: OpaquePointer, id: UInt64, _ checksums: PageChecksums) throws(TelemetryFlowError) {
        try put(txn, pageChecksums, Self.u64(id), checksums.encoded)
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

    func lostRanges(_ txn: OpaquePointer) throws(TelemetryFlowError) -> LostRanges {
        var ranges = LostRanges()
        for entry in try all(txn, quarantine) {
            guard let first = Self.u64(entry.key), let last = Self.u64(prefix: entry.value), last >= first else { continue }
            _ = ranges.insert(first...last)
        }
        return ranges
    }

    func putLost(_ txn: OpaquePointer, _ range: ClosedRange<UInt64>, reason: String) throws(TelemetryFlowError) {
        try put(txn, quarantine, Self.u64(range.lowerBound), Self.u64(range.upperBound) + Array(reason.utf8.prefix(512)))
    }
}

/// Sequence ranges found lost or damaged, each sequence counted once however often it is found.
struct LostRanges: Sendable, Equatable {
    private(set) var ranges: [ClosedRange<UInt64>] = []

    /// Adds `range`; returns how many of its sequences were not in the set yet.
    mutating func insert(_ range: ClosedRange<UInt64>) -> UInt64 {
        var fresh = range.upperBound - range.lowerBound + 1
        var merged = range
        var kept: [ClosedRange<UInt64>] = []
        kept.reserveCapacity(ranges.count + 1)
        for r in ranges {
            if r.upperBound &+ 1 < merged.lowerBound || merged.upperBound &+ 1 < r.lowerBound {
                kept.append(r)
                continue
            }
            if r.lowerBound <= range.upperBound && range.lowerBound <= r.upperBound {
                fresh -= min(r.upperBound, range.upperBound) - max(r.lowerBound, range.lowerBound) + 1
            }
            merged = min(r.lowerBound, merged.lowerBound)...max(r.upperBound, merged.upperBound)
        }
        kept.append(merged)
        ranges = kept.sorted { $0.lowerBound < $1.lowerBound }
        return fresh
    }

    func contains(_ sequence: UInt64) -> Bool {
        var low = 0
        var high = ranges.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if ranges[mid].upperBound < sequence { low = mid + 1 } else if ranges[mid].lowerBound > sequence { high = mid - 1 } else { return true }
        }
        return false
    }

    /// Whether every sequence of `range` is in the set.
    func covers(_ range: ClosedRange<UInt64>) -> Bool {
        ranges.contains { $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound }
    }

    var total: UInt64 { ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound + 1) } }
}
