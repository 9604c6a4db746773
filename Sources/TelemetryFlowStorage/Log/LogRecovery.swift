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
        let lock = try FileLock(path: directory + "/" + lockName)
        var report = RecoveryReport()
        // Leftovers of interrupted atomic writes and of the obsolete recovery marker.
        for name in try PosixFile.list(directory) where name.hasSuffix(".tmp") || name == "recovering" {
            PosixFile.remove(directory + "/" + name)
        }
        CrashPoint.hit("open.locked")
        let meta = try MetadataRecovery.load(directory: directory, configuration: configuration, report: &report)
        CrashPoint.hit("open.metadata")

        var records: [SegmentRecord] = []
        var cursors: [String: UInt64] = [:]
        var counters: [String: UInt64] = [:]
        var lost = LostRanges()
        var checksums: [UInt64: PageChecksums] = [:]
        var intents: [UInt64] = []
        try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
            records = try meta.segmentRecords(txn)
            cursors = try meta.cursorPositions(txn)
            counters = try meta.counterValues(txn)
            lost = try meta.lostRanges(txn)
            for record in records { checksums[record.id] = try meta.checksums(txn, id: record.id) }
            intents = try meta.all(txn, meta.salvage).compactMap { MetadataStore.u64($0.key) }
        }
        let before = lost.total

        // Salvages that were recorded but not finished: the rebuilt copy is complete once recorded.
        for id in intents {
            let path = directory + "/" + Segment.fileName(id: id)
            try finishSalvage(path: path, directory: directory)
            try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try meta.delete(txn, meta.salvage, MetadataStore.u64(id)) }
        }

        // Reconcile the files with the records.
        let names = try PosixFile.list(directory)
        var fileIDs: Set<UInt64> = []
        for name in names {
            if name.hasSuffix(salvageSuffix) || name.hasSuffix(salvageSuffix + "-lock") {
                // A salvage stopped before it was recorded: the original is untouched; start over.
                PosixFile.removeTree(directory + "/" + name)
            } else if name.hasSuffix("-lock"), Segment.id(fromFileName: String(name.dropLast(5))) != nil {
                continue
            } else if let id = Segment.id(fromFileName: name) {
                fileIDs.insert(id)
            }
        }
        let known = Set(records.map(\.id))
        let minKnown = records.first?.id
        for id in fileIDs.subtracting(known).sorted() {
            let path = directory + "/" + Segment.fileName(id: id)
            if let minKnown, id < minKnown {
                // Older than every known segment: its deletion was committed and the unlink interrupted.
                PosixFile.removeTree(path)
                PosixFile.remove(path + "-lock")
                report.removedOrphans.append(Segment.fileName(id: id))
            } else {
                records.append(SegmentRecord(id: id, firstSequence: 0, flags: adoptFlag))
                report.adoptedSegments.append(Segment.fileName(id: id))
            }
        }
        records.sort { $0.id < $1.id }
        for name in names where name.hasSuffix("-lock") {
            if let id = Segment.id(fromFileName: String(name.dropLast(5))), !fileIDs.contains(id) { PosixFile.remove(directory + "/" + name) }
        }

        // A stale metadata file may know less than the backup written at the last roll or close.
        let backup = MetadataBackup.counters(directory: directory)
        var highest: UInt64 = max(counters["high_water"] ?? 0, backup["high_water"] ?? 0, cursors.values.max() ?? 0, lost.ranges.last?.upperBound ?? 0)
        var segments: [SegmentState] = []
        var newLost: [(ClosedRange<UInt64>, String)] = []
        var salvagedLost: [ClosedRange<UInt64>] = []
        var toStore: [SegmentRecord] = []
        var toDelete: [UInt64] = []
        var newChecksums: [UInt64: PageChecksums] = [:]
        let committedThrough = counters["committed_through"] ?? 0
        // What the metadata says was written to segments: the active segment must hold at least that much.
        let storedThrough = max(counters["stored_through"] ?? 0, backup["stored_through"] ?? 0)
        for (index, var record) in records.enumerated() {
            let isLast = index == records.count - 1
            let name = Segment.fileName(id: record.id)
            let path = directory + "/" + name
            let adopted = record.flags & adoptFlag != 0
            record.flags &= ~adoptFlag
            // A directory or other non-file where the segment belongs, or a file emptied by a failed write.
            if PosixFile.exists(path) && !PosixFile.isRegularFile(path) {
                try moveToQuarantine(path, directory: directory, suffix: "not-a-file")
                report.problems.append("\(name) was not a regular file; moved to quarantine/")
            }
            let size = PosixFile.isRegularFile(path) ? PosixFile.size(path) ?? 0 : 0
            if size == 0 {
                // Nothing of it is readable. What the metadata says it held is lost.
                let end = isLast ? max(storedThrough, record.lastSequence) : record.lastSequence
                if !adopted && record.firstSequence <= end && end > 0 {
                    newLost.append((record.firstSequence...end, "\(name) is missing or empty"))
                    report.problems.append("\(name) is missing or empty: sequences \(record.firstSequence)…\(end) are lost")
                }
                highest = max(highest, end)
                PosixFile.remove(path)
                PosixFile.remove(path + "-lock")
                if !isLast {
                    toDelete.append(record.id)
                    continue
                }
                record.firstSequence = max(record.firstSequence, highest + 1)
                record.lastSequence = 0
                toStore.append(record)
                let segment = try Segment(activeIn: directory, id: record.id, firstSequence: record.firstSequence, configuration: configuration)
                segments.append(SegmentState(record: record, segment: segment))
                continue
            }
            if !isLast && !adopted && record.lastSequence >= record.firstSequence && record.sealedAtNanos != 0 {
                // Sealed and recorded: checked before its first read, not now (restart never scans the log).
                let check: Segment.Check
                if record.isDamaged {
                    check = .damaged("found damaged earlier")
                } else if let sums = checksums[record.id] {
                    check = .checksums(sums)
                } else {
                    check = .structure
                }
                highest = max(highest, record.lastSequence)
                segments.append(SegmentState(record: record, segment: Segment(sealedIn: directory, record: record, check: check, configuration: configuration)))
                continue
            }
            // The active segment, or a segment the metadata does not describe: validate every page now.
            let bytes = try PosixFile.readAll(path)
            let checked = bytes.withUnsafeBytes { LMDBPageWalker($0).validateSegment() }
            var problem = checked.problem
            let keys = (first: checked.first, last: checked.last, count: checked.count)
            let damagedRecords = checked.damaged
            if isLast { report.verifiedRecords = keys.count }
            if problem == nil, !damagedRecords.isEmpty {
                // The walker may still find an intact older copy of a damaged record in a page LMDB no longer uses.
                problem = "\(damagedRecords.count) records fail their checksum (first sequence \(damagedRecords[0]))"
            }
            let end = max(keys.last ?? 0, record.firstSequence > 0 ? record.firstSequence - 1 : 0)
            if problem == nil, isLast, !adopted, storedThrough >= record.firstSequence, end < storedThrough, !lost.covers((end + 1)...storedThrough) {
                // A sound tree that ends early: its newest meta page is an older one (a damaged transaction id).
                problem = "its newest tree ends at sequence \(keys.last ?? 0); the metadata recorded writes through \(storedThrough)"
            }
            if let problem {
                let end = isLast ? max(storedThrough, record.lastSequence) : record.lastSequence
                // An adopted segment's first sequence is unknown, but it follows the segments before it.
                let floor = adopted ? (segments.last.map { $0.record.lastSequence + 1 } ?? 0) : record.firstSequence
                let salvaged = SalvagedRecords(bytes: bytes, range: floor...UInt64.max)
                if adopted { record.firstSequence = salvaged.sequences.first ?? 0 }
                let top = max(end, salvaged.sequences.last ?? 0)
                let missing = record.firstSequence == 0 || top < record.firstSequence ? [] : SalvagedRecords.gaps(in: salvaged.sequences, over: record.firstSequence...top)
                for range in missing { newLost.append((range, "\(name) was damaged: \(problem)")) }
                let lostCount = missing.reduce(UInt64(0)) { $0 + ($1.upperBound - $1.lowerBound + 1) }
                report.salvagedSegments.append("\(name) (\(problem); kept \(salvaged.count) records, lost \(lostCount))")
                highest = max(highest, top)
                if record.firstSequence == 0 {
                    // Adopted and holding nothing readable.
                    try moveToQuarantine(path, directory: directory, suffix: "damaged")
                    continue
                }
                if isLast {
                    // The loss is committed with the salvage's intent, before the rename hides the damage.
                    newLost.removeAll { entry in missing.contains(entry.0) }
                    salvagedLost += missing
                    try salvageActive(path: path, id: record.id, records: salvaged, lost: missing.map { ($0, "\(name) was damaged: \(problem)") },
                                      meta: meta, directory: directory, configuration: configuration)
                    try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
                        counters = try meta.counterValues(txn)
                        lost = try meta.lostRanges(txn)
                    }
                    record.lastSequence = 0
                    toStore.append(record)
                    let segment = try Segment(activeIn: directory, id: record.id, firstSequence: record.firstSequence, configuration: configuration)
                    segments.append(SegmentState(record: record, segment: segment))
                } else {
                    record.lastSequence = max(record.lastSequence, top)
                    record.flags |= SegmentRecord.damaged
                    if record.sealedAtNanos == 0 { record.sealedAtNanos = wallClockNanos() }
                    record.bytes = UInt64(bytes.count)
                    toStore.append(record)
                    segments.append(SegmentState(record: record, segment: Segment(sealedIn: directory, record: record, check: .damaged(problem), configuration: configuration)))
                }
                continue
            }
            for sequence in damagedRecords where !lost.contains(sequence) { newLost.append((sequence...sequence, "\(name): record fails its checksum")) }
            if adopted { record.firstSequence = keys.first ?? max(highest + 1, 1) }
            highest = max(highest, keys.last ?? 0)
            if keys.count == 0 && !isLast {
                // An empty sealed segment holds nothing to keep.
                PosixFile.remove(path)
                PosixFile.remove(path + "-lock")
                if !adopted { toDelete.append(record.id) }
                continue
            }
            if isLast {
                if adopted || record.lastSequence != 0 { record.lastSequence = 0; toStore.append(record) }
                let segment = try Segment(activeIn: directory, id: record.id, firstSequence: record.firstSequence, configuration: configuration)
                segments.append(SegmentState(record: record, segment: segment))
            } else {
                // Validated now: seal it in the metadata with its checksums.
                record.lastSequence = max(record.lastSequence, keys.last ?? record.firstSequence)
                if record.sealedAtNanos == 0 { record.sealedAtNanos = wallClockNanos() }
                record.bytes = UInt64(bytes.count)
                let sums = bytes.withUnsafeBytes { PageChecksums(bytes: $0) }
                newChecksums[record.id] = sums
                toStore.append(record)
                segments.append(SegmentState(record: record, segment: Segment(sealedIn: directory, record: record, check: .checksums(sums), configuration: configuration)))
            }
        }
        CrashPoint.hit("open.segments")

        var nextSequence = max(highest + 1, 1)
        if segments.isEmpty || segments.last?.segment.writable == nil {
            // No segment, or the newest one is sealed (a newer one was unreadable and set aside): start another.
            let record = SegmentRecord(id: max(records.map(\.id).max() ?? 0, fileIDs.max() ?? 0) + 1, firstSequence: nextSequence)
            toStore.append(record)
            let segment = try Segment(activeIn: directory, id: record.id, firstSequence: record.firstSequence, configuration: configuration)
            segments.append(SegmentState(record: record, segment: segment))
        } else if let active = segments.last {
            nextSequence = max(nextSequence, active.record.firstSequence)
            let last = nextSequence - 1
            // Commits after the counters were last persisted (the process stopped without closing).
            if last > committedThrough {
                counters["committed", default: 0] += last - committedThrough
                counters["committed_through"] = last
            }
        }
        var freshlyLost: UInt64 = 0
        for (range, _) in newLost { freshlyLost += lost.insert(range) }
        counters["corrupted", default: 0] += freshlyLost
        counters["high_water"] = max(counters["high_water"] ?? 0, nextSequence - 1)
        let values = counters
        try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
            for id in toDelete { try meta.deleteSegment(txn, id: id) }
            for record in toStore { try meta.putSegment(txn, record) }
            for (id, sums) in newChecksums { try meta.putChecksums(txn, id: id, sums) }
            for (range, reason) in newLost { try meta.putLost(txn, range, reason: reason) }
            try meta.putCounters(txn, values)
        }
        try meta.env.sync()
        if report.metadataRebuilt != nil || !toStore.isEmpty || !toDelete.isEmpty { try? MetadataBackup.write(meta, directory: directory) }
        report.staleReadersCleared = meta.env.staleReadersCleared + (segments.last?.segment.writable?.env.staleReadersCleared ?? 0)
        report.corruptedRecords = lost.total - before
        report.lastSequence = nextSequence - 1
        report.lostRanges = (newLost.map(\.0) + salvagedLost).sorted { $0.lowerBound < $1.lowerBound }
        return Opened(meta: meta, lock: lock, report: report, segments: segments, cursors: cursors, lost: lost, counters: counters, nextSequence: nextSequence)
    }

    /// Marks a segment found on disk that the metadata did not list (only inside ``open(directory:configuration:)``).
    private static let adoptFlag: UInt64 = 1 << 63

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
