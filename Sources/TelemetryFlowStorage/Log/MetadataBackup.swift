import TelemetryFlowCore

/// A copy of every metadata entry in a flat file (`meta.backup`), to rebuild `meta.mdb` from when it is damaged
/// or missing.
///
/// Written through a temporary file, `fsync` and a rename whenever a segment is sealed, after a rebuild and at
/// close, so it is never older than the segment list it names by more than one segment. Layout (little-endian):
/// magic `TFMB`, format version (u32, 1), entry count (u64), then per entry the database index (u8, in the order
/// of ``MetadataStore/databaseNames``), key length (u32), key, value length (u32), value; last a CRC-32C (u32)
/// of everything before it. A file whose checksum fails is not used.
enum MetadataBackup {
    static let fileName = "meta.backup"
    static let magic: [UInt8] = Array("TFMB".utf8)

    struct Entry: Equatable {
        var database: Int
        var key: [UInt8]
        var value: [UInt8]
    }

    static func encode(_ entries: [Entry]) -> [UInt8] {
        var out = magic
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        u32(1)
        withUnsafeBytes(of: UInt64(entries.count).littleEndian) { out.append(contentsOf: $0) }
        for entry in entries {
            out.append(UInt8(truncatingIfNeeded: entry.database))
            u32(UInt32(entry.key.count))
            out.append(contentsOf: entry.key)
            u32(UInt32(entry.value.count))
            out.append(contentsOf: entry.value)
        }
        u32(out.withUnsafeBytes { CRC32C.checksum($0) })
        return out
    }

    /// The entries of a backup file's bytes, or why they cannot be used.
    static func decode(_ bytes: [UInt8]) -> Result<[Entry], TelemetryFlowError> {
        func fail(_ why: String) -> Result<[Entry], TelemetryFlowError> { .failure(TelemetryFlowError(.corruptedRecord, "the metadata backup \(why)")) }
        guard bytes.count >= 20, Array(bytes.prefix(4)) == magic else { return fail("is not a TelemetryFlow metadata backup") }
        let (stored, actual) = bytes.withUnsafeBytes { raw in
            (UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: raw.count - 4, as: UInt32.self)),
             CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<(raw.count - 4)])))
        }
        guard stored == actual else { return fail("fails its checksum") }
        var at = 4
        let end = bytes.count - 4
        func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, n <= end - at else { return nil }
            defer { at += n }
            return bytes[at..<(at + n)]
        }
        func u32() -> UInt32? { take(4).map { $0.reversed().reduce(0) { $0 << 8 | UInt32($1) } } }
        guard u32() == 1, let countBytes = take(8) else { return fail("has an unknown format version") }
        let count = countBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        var entries: [Entry] = []
        for _ in 0..<min(count, UInt64(end)) {
            guard let db = take(1)?.first, let kl = u32(), let key = take(Int(kl)), let vl = u32(), let value = take(Int(vl)) else {
                return fail("is truncated")
            }
            entries.append(Entry(database: Int(db), key: Array(key), value: Array(value)))
        }
        guard UInt64(entries.count) == count, at == end else { return fail("holds \(entries.count) entries where it says \(count)") }
        return .success(entries)
    }
}
