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

    /// Where a key's bytes lie in the arena, and its entry.
    private struct Slot {
        var hash: UInt64
        var offset: Int
        var length: Int
        var entry: Entry
    }

    static let maxEntries = 1 << 16
    private static let seed = UInt64.random(in: 0...UInt64.max) | 1

    /// The table in raw memory owned by one object, so that a lookup reads it without retaining arrays (the
    /// fold runs once per stored measurement). Copied on write: a copied aggregator never shares a table it changes.
    /// `@unchecked Sendable`: the memory is only changed through a uniquely referenced storage (``makeUnique()``).
    private final class Storage: @unchecked Sendable {
        /// Indexes into `slots`, -1 when empty; a power of two long, at most half full.
        var index: UnsafeMutablePointer<Int32>
        var indexCount: Int
        var slots: UnsafeMutablePointer<Slot>
        var slotCapacity: Int
        var count = 0
        /// The keys' bytes, back to back.
        var arena: UnsafeMutableRawPointer
        var arenaCapacity: Int
        var arenaUsed = 0

        init(indexCount: Int = 64, slotCapacity: Int = 32, arenaCapacity: Int = 4096) {
            self.indexCount = indexCount
            index = .allocate(capacity: indexCount)
            index.initialize(repeating: -1, count: indexCount)
            self.slotCapacity = slotCapacity
            slots = .allocate(capacity: slotCapacity)
            self.arenaCapacity = arenaCapacity
            arena = .allocate(byteCount: arenaCapacity, alignment: 8)
        }

        func copy() -> Storage {
            let copy = Storage(indexCount: indexCount, slotCapacity: slotCapacity, arenaCapacity: arenaCapacity)
            copy.index.update(from: index, count: indexCount)
            copy.slots.initialize(from: slots, count: count)
            copy.count = count
            copy.arena.copyMemory(from: arena, byteCount: arenaUsed)
            copy.arenaUsed = arenaUsed
            return copy
        }

        deinit {
            index.deallocate()
            slots.deallocate()
            arena.deallocate()
        }

        @inline(__always)
        func find(_ bytes: UnsafeRawBufferPointer, kind: UInt8, hash: UInt64) -> Entry? {
            let mask = indexCount - 1
            var at = Int(truncatingIfNeeded: hash) & mask
            while true {
                let slot = Int(index[at])
                if slot < 0 { return nil }
                let candidate = slots[slot]
                if candidate.hash == hash && candidate.entry.kind == kind && candidate.length == bytes.count
                    && (bytes.isEmpty || memcmp(arena + candidate.offset, bytes.baseAddress!, bytes.count) == 0)
                {
                    return candidate.entry
                }
                at = (at + 1) & mask
            }
        }

        func insert(_ bytes: UnsafeRawBufferPointer, entry: Entry, hash: UInt64) {
            if (count + 1) * 2 > indexCount { growIndex() }
            if count == slotCapacity {
                let grown = UnsafeMutablePointer<Slot>.allocate(capacity: slotCapacity * 2)
                grown.moveInitialize(from: slots, count: count)
                slots.deallocate()
                slots = grown
                slotCapacity *= 2
            }
            if arenaUsed + bytes.count > arenaCapacity {
                var capacity = arenaCapacity * 2
                while arenaUsed + bytes.count > capacity { capacity *= 2 }
                let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
                grown.copyMemory(from: arena, byteCount: arenaUsed)
                arena.deallocate()
                arena = grown
                arenaCapacity = capacity
            }
            if let source = bytes.baseAddress { (arena + arenaUsed).copyMemory(from: source, byteCount: bytes.count) }
            (slots + count).initialize(to: Slot(hash: hash, offset: arenaUsed, length: bytes.count, entry: entry))
            arenaUsed += bytes.count
            place(count, hash: hash)
            count += 1
        }

        func removeAll() {
            index.update(repeating: -1, count: indexCount)
            count = 0
            arenaUsed = 0
        }

        private func growIndex() {
            index.deallocate()
            indexCount *= 2
            index = .allocate(capacity: indexCount)
            index.initialize(repeating: -1, count: indexCount)
            for slot in 0..<count { place(slot, hash: slots[slot].hash) }
        }

        private func place(_ slot: Int, hash: UInt64) {
            let mask = indexCount - 1
            var at = Int(truncatingIfNeeded: hash) & mask
            while index[at] >= 0 { at = (at + 1) & mask }
            index[at] = Int32(slot)
        }
    }

    private var storage: Storage?

    var count: Int { storage?.count ?? 0 }

    @inline(__always)
    func find(_ bytes: UnsafeRawBufferPointer, kind: UInt8) -> Entry? {
        guard let storage, storage.count > 0 else { return nil }
        return storage.find(bytes, kind: kind, hash: Self.hash(bytes, kind: kind))
    }

    mutating func insert(_ bytes: UnsafeRawBufferPointer, kind: UInt8, stream: Int, overflow: Bool) {
        guard count < Self.maxEntries else { return }
        let hash = Self.hash(bytes, kind: kind)
        if let storage, storage.find(bytes, kind: kind, hash: hash) != nil { return }
        if storage == nil {
            storage = Storage()
        } else if !isKnownUniquelyReferenced(&storage!) {
            storage = storage!.copy()
        }
        storage!.insert(bytes, entry: Entry(kind: kind, overflow: overflow, stream: Int32(stream)), hash: hash)
    }

    mutating func removeAll() {
        guard count > 0 else { return }
        if isKnownUniquelyReferenced(&storage!) { storage!.removeAll() } else { storage = nil }
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
