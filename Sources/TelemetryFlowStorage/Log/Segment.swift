import CLMDB
import Synchronization
import TelemetryFlowCore

/// One segment: an LMDB environment holding a contiguous run of sequences.
///
/// The active segment is opened writable when the log opens or rolls. A sealed segment is not given to LMDB
/// until it passed a check, done once per process before its first read: its page checksums (stored when it was
/// sealed) or, without them, ``LMDBPageWalker`` validating every page. A segment that fails is read from the
/// records the walker recovers and is never opened by LMDB. Readers hold a reference while they read; a deleted
/// segment's file is unlinked at once (a mapping stays valid for readers still inside it) and the environment
/// is closed when the last reference goes.
final class Segment: Sendable {
    let id: UInt64
    let firstSequence: UInt64
    /// The last sequence of a sealed segment; nil for the active one.
    let lastSequence: UInt64?
    let path: String
    /// The active segment's writable environment and database; nil once sealed.
    let writable: (env: LMDBEnvironment, dbi: MDB_dbi)?
    private let access: Locked<Access>
    private let mapSize: Int

    /// How a sealed segment is checked before its first read.
    enum Check: Sendable {
        case checksums(PageChecksums)
        case structure
        /// Known damaged: read through the walker.
        case damaged(String)
    }

    /// How readers reach the records.
    enum Reader: Sendable {
        case lmdb(LMDBEnvironment, MDB_dbi)
        case salvaged(SalvagedRecords)
    }

    /// What the first read of a damaged sealed segment found.
    struct Damage: Sendable {
        var reason: String
        var lost: [ClosedRange<UInt64>]
        /// The metadata already marks the segment damaged (an earlier process found it so).
        var alreadyMarked: Bool
    }

    private enum Access: Sendable {
        case unchecked(Check)
        case ready(Reader)
    }

    static func fileName(id: UInt64) -> String {
        let hex = String(id, radix: 16)
        return "segment-" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex + ".mdb"
    }

    static func id(fromFileName name: String) -> UInt64? {
        guard name.hasPrefix("segment-"), name.hasSuffix(".mdb"), name.count == 28 else { return nil }
        return UInt64(name.dropFirst(8).dropLast(4), radix: 16)
    }

    static func mapSize(_ configuration: LogConfiguration) -> Int {
        configuration.segmentSize + 4 * (configuration.queueCapacityBytes + configuration.effectiveMaxRecordBytes) + (32 << 20)
    }

    /// Opens or creates the active segment's file for writing. Only call it on a file that passed
    /// ``LMDBPageWalker/validate(subDatabases:fileSize:leaf:)`` or does not exist yet.
    init(activeIn directory: String, id: UInt64, firstSequence: UInt64, configuration: LogConfiguration) throws(TelemetryFlowError) {
        self.id = id
        self.firstSequence = firstSequence
        lastSequence = nil
        path = directory + "/" + Self.fileName(id: id)
        mapSize = Self.mapSize(configuration)
        let env = try LMDBEnvironment(path: path, mapSize: mapSize, maxDatabases: 0, noSync: configuration.durability != .always)
        let dbi = try env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try env.openDatabase(txn, nil, create: false) }
        writable = (env, dbi)
        access = Locked(.ready(.lmdb(env, dbi)))
    }

    /// A sealed segment, checked with `check` before its first read.
    init(sealedIn directory: String, record: SegmentRecord, check: Check, configuration: LogConfiguration) {
        id = record.id
        firstSequence = record.firstSequence
        lastSequence = record.lastSequence
        path = directory + "/" + Self.fileName(id: record.id)
        mapSize = Self.mapSize(configuration)
        writable = nil
        access = Locked(.unchecked(check))
    }

    /// The segment just sealed by this process's writer: trusted, reopened read-only so that the writable
    /// environment (which keeps its largest transaction's pages allocated) is released.
    init(sealing active: Segment, lastSequence: UInt64) {
        id = active.id
        firstSequence = active.firstSequence
        self.lastSequence = lastSequence
        path = active.path
        mapSize = active.mapSize
        writable = nil
        if let env = try? LMDBEnvironment(path: active.path, mapSize: active.mapSize, maxDatabases: 0, noSync: true, readOnly: true, noLock: true),
            let dbi = try? env.withTransaction(write: false, { (txn) throws(TelemetryFlowError) in try env.openDatabase(txn, nil, create: false) })
        {
            access = Locked(.ready(.lmdb(env, dbi)))
        } else if let current = active.writable {
            access = Locked(.ready(.lmdb(current.env, current.dbi)))
        } else {
            access = Locked(.unchecked(.structure))
        }
    }

    /// Bytes of the active segment's data file in use (0 for a sealed segment).
    var usedBytes: UInt64 { writable?.env.usedBytes ?? 0 }

    /// Unlinks the files; the environment itself closes when the last reader lets go.
    func removeFiles() {
        PosixFile.remove(path)
        PosixFile.remove(path + "-lock")
    }

    /// How to read the records, checking the file first if this is its first read in this process. `damage` is
    /// set when this call found the segment damaged (once per process).
    func reader(damage: inout Damage?) -> Reader {
        access.withLock { state in
            switch state {
            case .ready(let reader):
                return reader
            case .unchecked(let check):
                let (reader, found) = open(check)
                state = .ready(reader)
                damage = found
                return reader
            }
        }
    }

    private func open(_ check: Check) -> (Reader, Damage?) {
        var problem: String?
        switch check {
        case .damaged(let reason): problem = reason
        case .checksums(let sums): problem = sums.mismatch(path: path)
        case .structure:
            do throws(TelemetryFlowError) {
                let bytes = try PosixFile.readAll(path)
                problem = bytes.withUnsafeBytes { LMDBPageWalker($0).validate(subDatabases: false) }
            } catch {
                problem = error.message
            }
        }
        if problem == nil {
            do throws(TelemetryFlowError) {
                let env = try LMDBEnvironment(path: path, mapSize: mapSize, maxDatabases: 0, noSync: true, readOnly: true, noLock: true)
                let dbi = try env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in try env.openDatabase(txn, nil, create: false) }
                return (.lmdb(env, dbi), nil)
            } catch {
                problem = error.message
            }
        }
        let salvaged = SalvagedRecords(path: path, range: firstSequence...max(firstSequence, lastSequence ?? firstSequence))
        var marked = false
        if case .damaged = check { marked = true }
        // The caller counts each lost sequence once, however many processes find it.
        return (.salvaged(salvaged), Damage(reason: problem ?? "unreadable", lost: salvaged.missing, alreadyMarked: marked))
    }
}

/// The records of a damaged segment that the page walker could read, held in memory, in sequence order.
struct SalvagedRecords: Sendable {
    private(set) var sequences: [UInt64] = []
    private(set) var ends: [Int] = []
    private(set) var storage: [UInt8] = []
    /// Sequences of `range` that were not recovered.
    private(set) var missing: [ClosedRange<UInt64>] = []
    /// Sequences seen only in records whose checksum failed.
    private(set) var damaged: Set<UInt64> = []

    /// Salvages the file at `path`, keeping the records inside `range` (a segment's known extent; its upper
    /// bound is raised to the highest sequence found).
    init(path: String, range: ClosedRange<UInt64>) {
        let bytes = (try? PosixFile.readAll(path)) ?? []
        self.init(bytes: bytes, range: range)
    }

    init(bytes: [UInt8], range: ClosedRange<UInt64>) {
        // A key is not covered by the record's checksum: a damaged key can name any sequence. A segment file of n
        // bytes holds at most n / 36 records (20-byte envelope, 8-byte key, 8-byte node), so every sequence of an
        // open-ended range must lie within that many of the first (or, when the first is unknown, of the densest
        // run of found sequences); others are noise.
        let span = UInt64(bytes.count / 36 + 1)
        let (found, damaged) = bytes.withUnsafeBytes { raw in
            let result = LMDBPageWalker(raw).salvage()
            return (result.records.filter { range.contains($0.key) }.mapValues { Array($0) }, result.damaged)
        }
        var records = found
        var range = range
        if range.upperBound == UInt64.max {
            let sorted = found.keys.sorted()
            var window = range.lowerBound...(range.lowerBound &+ span)
            if range.lowerBound == 0, !sorted.isEmpty {
                var best = (start: 0, count: 0)
                var low = 0
                for high in sorted.indices {
                    while sorted[high] - sorted[low] > span { low += 1 }
                    if high - low + 1 > best.count { best = (low, high - low + 1) }
                }
                window = sorted[best.start]...(sorted[best.start] &+ span)
            }
            records = found.filter { window.contains($0.key) }
            let top = records.keys.max() ?? range.lowerBound
            range = (range.lowerBound == 0 ? (records.keys.min() ?? 0) : range.lowerBound)...max(top, range.lowerBound == 0 ? (records.keys.min() ?? 0) : range.lowerBound)
        }
        for sequence in records.keys.sorted() {
            storage.append(contentsOf: records[sequence]!)
            sequences.append(sequence)
            ends.append(storage.count)
        }
        self.damaged = damaged.filter { range.contains($0) }
        // An adopted segment in which nothing was found has no known extent.
        missing = sequences.isEmpty && range.lowerBound == 0 ? [] : Self.gaps(in: sequences, over: range)
    }

    /// The sub-ranges of `range` that hold none of `sequences` (sorted).
    static func gaps(in sequences: [UInt64], over range: ClosedRange<UInt64>) -> [ClosedRange<UInt64>] {
        var out: [ClosedRange<UInt64>] = []
        var expected = range.lowerBound
        for sequence in sequences where range.contains(sequence) {
            if sequence > expected { out.append(expected...(sequence - 1)) }
            expected = sequence + 1
        }
        if expected <= range.upperBound { out.append(expected...range.upperBound) }
        return out
    }

    var count: Int { sequences.count }

    /// The index of the first record with a sequence at or after `sequence`.
    func index(atOrAfter sequence: UInt64) -> Int {
        var low = 0
        var high = sequences.count
        while low < high {
            let mid = (low + high) / 2
            if sequences[mid] < sequence { low = mid + 1 } else { high = mid }
        }
        return low
    }

    func record(at index: Int) -> ArraySlice<UInt8> { storage[(index == 0 ? 0 : ends[index - 1])..<ends[index]] }
}
