#if canImport(Glibc)
import Glibc
#endif

/// Series bytes → stream, for ``MetricAggregator/fold(_:)``: an open-addressing table keyed by the bytes of a
/// stored measurement's series (instrument name, unit, scope and attribute block as encoded) and its kind, so that
/// a series seen before is found by hashing and comparing bytes instead of decoding strings and attributes.
///
/// Bounded: past ``maxEntries`` keys it stops learning new ones (those measurements take the decoding path, which
/// gives the same result). The hash is seeded per process.
struct SeriesTable: Sendable {
    struct Entry: Sendable {
        var kind: UInt8
        var overflow: Bool
        var stream: Int32
    }

    static let maxEntries = 1 << 16
    private static let seed = UInt64.random(in: 0...UInt64.max) | 1

    /// Indexes into `keys`, -1 when empty; a power of two long, at most half full.
    private var slots: [Int32] = []
    private var hashes: [UInt64] = []
    private var keys: [[UInt8]] = []
    private var entries: [Entry] = []

    var count: Int { keys.count }

    @inline(__always)
    func find(_ bytes: UnsafeRawBufferPointer, kind: UInt8) -> Entry? {
        guard !slots.isEmpty else { return nil }
        let hash = Self.hash(bytes, kind: kind)
        let mask = slots.count - 1
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = Int(slots[index])
            if slot < 0 { return nil }
            if hashes[slot] == hash && entries[slot].kind == kind && Self.equal(keys[slot], bytes) { return entries[slot] }
            index = (index + 1) & mask
        }
    }

    mutating func insert(_ bytes: UnsafeRawBufferPointer, kind: UInt8, stream: Int, overflow: Bool) {
        guard keys.count < Self.maxEntries, find(bytes, kind: kind) == nil else { return }
        if (keys.count + 1) * 2 > slots.count { grow() }
        let hash = Self.hash(bytes, kind: kind)
        place(keys.count, hash: hash)
        hashes.append(hash)
        keys.append(Array(bytes))
        entries.append(Entry(kind: kind, overflow: overflow, stream: Int32(stream)))
    }

    mutating func removeAll() {
        guard !keys.isEmpty else { return }
        for i in slots.indices { slots[i] = -1 }
        hashes.removeAll(keepingCapacity: true)
        keys.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
    }

    private mutating func grow() {
        slots = Array(repeating: -1, count: max(64, slots.count * 2))
        for (slot, hash) in hashes.enumerated() { place(slot, hash: hash) }
    }

    private mutating func place(_ slot: Int, hash: UInt64) {
        let mask = slots.count - 1
        var index = Int(truncatingIfNeeded: hash) & mask
        while slots[index] >= 0 { index = (index + 1) & mask }
        slots[index] = Int32(slot)
    }

    @inline(__always)
    private static func equal(_ key: [UInt8], _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard key.count == bytes.count else { return false }
        return key.withUnsafeBytes { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
    }

    /// A multiply-xorshift hash over 8-byte words.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer, kind: UInt8) -> UInt64 {
        let k: UInt64 = 0x9E37_79B9_7F4A_7C15
        var h = seed ^ (UInt64(kind) << 56) ^ UInt64(bytes.count)
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            h = (h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* k
            h ^= h >> 29
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* k
        h ^= h >> 32
        h = h &* 0xBF58_476D_1CE4_E5B9
        return h ^ (h >> 31)
    }
}
