import CLMDB
import Glibc
import TelemetryFlowCore

/// The steps of ``LogRecovery/open(directory:configuration:)``, in order, over the state they share: load the
/// metadata, finish interrupted salvages, reconcile the files with the records, check or salvage each segment,
/// then make sure there is an active segment and commit what changed in one transaction.
struct RecoveryPass {
    let directory: String
    let configuration: LogConfiguration
    let lock: FileLock
    let meta: MetadataStore
    var report: RecoveryReport
    var records: [SegmentRecord] = []
    var cursors: [String: UInt64] = [:]
    var counters: [String: UInt64] = [:]
    var lost = LostRanges()
    var checksums: [UInt64: PageChecksums] = [:]
    var intents: [UInt64] = []
    /// Lost records counted before this open.
    var before: UInt64 = 0
    var fileIDs: Set<UInt64> = []
    /// The highest sequence found anywhere: the next one comes after it.
    var highest: UInt64 = 0
    var segments: [SegmentState] = []
    var newLost: [(ClosedRange<UInt64>, String)] = []
    var salvagedLost: [ClosedRange<UInt64>] = []
    var toStore: [SegmentRecord] = []
    var toDelete: [UInt64] = []
    var newChecksums: [UInt64: PageChecksums] = [:]
    var committedThrough: UInt64 = 0
    /// What the metadata says was written to segments: the active segment must hold at least that much.
    var storedThrough: UInt64 = 0

    private static var adoptFlag: UInt64 { LogRecovery.adoptFlag }

    /// Takes the lock, removes leftovers of interrupted atomic writes, and loads (or rebuilds) the metadata.
    init(directory: String, configuration: LogConfiguration) throws {
        self.directory = directory
        self.configuration = configuration
        lock = try FileLock(path: directory + "/" + LogRecovery.lockName)
        // Leftovers of interrupted atomic writes and of the obsolete recovery marker.
        for name in try PosixFile.list(directory) where name.hasSuffix(".tmp") || name == "recovering" {
            PosixFile.remove(directory + "/" + name)
        }
        CrashPoint.hit("open.locked")
        var report = RecoveryReport()
        let meta = try MetadataRecovery.load(directory: directory, configuration: configuration, report: &report)
        self.meta = meta
        self.report = report
        CrashPoint.hit("open.metadata")
        var loaded: (records: [SegmentRecord], cursors: [String: UInt64], counters: [String: UInt64], lost: LostRanges,
                     checksums: [UInt64: PageChecksums], intents: [UInt64])?
        try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
            let records = try meta.segmentRecords(txn)
            var checksums: [UInt64: PageChecksums] = [:]
            for record in records { checksums[record.id] = try meta.checksums(txn, id: record.id) }
            loaded = (records, try meta.cursorPositions(txn), try meta.counterValues(txn), try meta.lostRanges(txn), checksums,
                      try meta.all(txn, meta.salvage).compactMap { MetadataStore.u64($0.key) })
        }
        if let loaded { (records, cursors, counters, lost, checksums, intents) = loaded }
        before = lost.total
    }

    /// Salvages that were recorded but not finished: the rebuilt copy is complete once recorded.
    mutating func finishInterruptedSalvages() throws {
        let meta = self.meta
        for id in intents {
            let path = directory + "/" + Segment.fileName(id: id)
            try LogRecovery.finishSalvage(path: path, directory: directory)
            try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try meta.delete(txn, meta.salvage, MetadataStore.u64(id)) }
        }
    }

    /// Reconciles the files with the records: removes unfinished salvage copies and orphans of interrupted
    /// deletions, and adopts segment files the metadata does not know.
    mutating func reconcileFiles() throws {
        let names = try PosixFile.list(directory)
        for name in names {
            if name.hasSuffix(LogRecovery.salvageSuffix) || name.hasSuffix(LogRecovery.salvageSuffix + "-lock") {
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
                records.append(SegmentRecord(id: id, firstSequence: 0, flags: Self.adoptFlag))
                report.adoptedSegments.append(Segment.fileName(id: id))
            }
        }
        records.sort { $0.id < $1.id }
        for name in names where name.hasSuffix("-lock") {
            if let id = Segment.id(fromFileName: String(name.dropLast(5))), !fileIDs.contains(id) { PosixFile.remove(directory + "/" + name) }
        }
    }

    /// Checks or salvages every segment the records list, oldest first.
    mutating func recoverSegments() throws {
        // A stale metadata file may know less than the backup written at the last roll or close.
        let backup = MetadataBackup.counters(directory: directory)
        highest = max(counters["high_water"] ?? 0, backup["high_water"] ?? 0, cursors.values.max() ?? 0, lost.ranges.last?.upperBound ?? 0)
        committedThrough = counters["committed_through"] ?? 0
        storedThrough = max(counters["stored_through"] ?? 0, backup["stored_through"] ?? 0)
        for (index, record) in records.enumerated() {
            try recover(record, isLast: index == records.count - 1)
        }
    }

    /// One segment: a missing or empty file is a counted loss; a sealed, recorded one is checked before its first
    /// read; the active one, or one the metadata does not describe, is validated page by page now and salvaged
    /// when it fails.
    private mutating func recover(_ given: SegmentRecord, isLast: Bool) throws {
        var record = given
        let adopted = record.flags & Self.adoptFlag != 0
        record.flags &= ~Self.adoptFlag
        let name = Segment.fileName(id: record.id)
        let path = directory + "/" + name
        // A directory or other non-file where the segment belongs, or a file emptied by a failed write.
        if PosixFile.exists(path) && !PosixFile.isRegularFile(path) {
            try LogRecovery.moveToQuarantine(path, directory: directory, suffix: "not-a-file")
            report.problems.append("\(name) was not a regular file; moved to quarantine/")
        }
        let size = PosixFile.isRegularFile(path) ? PosixFile.size(path) ?? 0 : 0
        if size == 0 {
            try recoverMissing(record, adopted: adopted, isLast: isLast)
        } else if !isLast && !adopted && record.lastSequence >= record.firstSequence && record.sealedAtNanos != 0 {
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
            appendSealed(record, check: check)
        } else {
            try validate(record, adopted: adopted, isLast: isLast)
        }
    }

    /// A missing or empty segment file: nothing of it is readable, and what the metadata says it held is lost.
    private mutating func recoverMissing(_ given: SegmentRecord, adopted: Bool, isLast: Bool) throws {
        var record = given
        let name = Segment.fileName(id: record.id)
        let path = directory + "/" + name
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
            return
        }
        record.firstSequence = max(record.firstSequence, highest + 1)
        record.lastSequence = 0
        toStore.append(record)
        try appendActive(record)
    }

    /// The active segment, or a segment the metadata does not describe: every page is validated now; a segment
    /// that fails is salvaged, one that passes is kept (and, when sealed, sealed in the metadata with its checksums).
    private mutating func validate(_ given: SegmentRecord, adopted: Bool, isLast: Bool) throws {
        var record = given
        let name = Segment.fileName(id: record.id)
        let path = directory + "/" + name
        let bytes = try PosixFile.readAll(path)
        let checked = bytes.withUnsafeBytes { LMDBPageWalker($0).validateSegment() }
        var problem = checked.problem
        if isLast { report.verifiedRecords = checked.count }
        if problem == nil, !checked.damaged.isEmpty {
            // The walker may still find an intact older copy of a damaged record in a page LMDB no longer uses.
            problem = "\(checked.damaged.count) records fail their checksum (first sequence \(checked.damaged[0]))"
        }
        let end = max(checked.last ?? 0, record.firstSequence > 0 ? record.firstSequence - 1 : 0)
        if problem == nil, isLast, !adopted, storedThrough >= record.firstSequence, end < storedThrough, !lost.covers((end + 1)...storedThrough) {
            // A sound tree that ends early: its newest meta page is an older one (a damaged transaction id).
            problem = "its newest tree ends at sequence \(checked.last ?? 0); the metadata recorded writes through \(storedThrough)"
        }
        if let problem {
            try salvage(record, bytes: bytes, problem: problem, adopted: adopted, isLast: isLast)
            return
        }
        for sequence in checked.damaged where !lost.contains(sequence) { newLost.append((sequence...sequence, "\(name): record fails its checksum")) }
        if adopted { record.firstSequence = checked.first ?? max(highest + 1, 1) }
        highest = max(highest, checked.last ?? 0)
        if checked.count == 0 && !isLast {
            // An empty sealed segment holds nothing to keep.
            PosixFile.remove(path)
            PosixFile.remove(path + "-lock")
            if !adopted { toDelete.append(record.id) }
            return
        }
        if isLast {
            if adopted || record.lastSequence != 0 { record.lastSequence = 0; toStore.append(record) }
            try appendActive(record)
        } else {
            // Validated now: seal it in the metadata with its checksums.
            record.lastSequence = max(record.lastSequence, checked.last ?? record.firstSequence)
            if record.sealedAtNanos == 0 { record.sealedAtNanos = wallClockNanos() }
            record.bytes = UInt64(bytes.count)
            let sums = bytes.withUnsafeBytes { PageChecksums(bytes: $0) }
            newChecksums[record.id] = sums
            toStore.append(record)
            appendSealed(record, check: .checksums(sums))
        }
    }

    /// A segment that failed validation: every record whose checksum holds is kept, the gaps are counted lost. The
    /// active segment is rebuilt beside the original and switched in (crash-safe, ``LogRecovery/salvageActive``);
    /// a sealed one is marked damaged and read through the salvaged records.
    private mutating func salvage(_ given: SegmentRecord, bytes: [UInt8], problem: String, adopted: Bool, isLast: Bool) throws {
        var record = given
        let name = Segment.fileName(id: record.id)
        let path = directory + "/" + name
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
            try LogRecovery.moveToQuarantine(path, directory: directory, suffix: "damaged")
            return
        }
        if isLast {
            // The loss is committed with the salvage's intent, before the rename hides the damage.
            newLost.removeAll { entry in missing.contains(entry.0) }
            salvagedLost += missing
            try LogRecovery.salvageActive(path: path, id: record.id, records: salvaged, lost: missing.map { ($0, "\(name) was damaged: \(problem)") },
                              meta: meta, directory: directory, configuration: configuration)
            let meta = self.meta
            var reread: (counters: [String: UInt64], lost: LostRanges)?
            try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
                reread = (try meta.counterValues(txn), try meta.lostRanges(txn))
            }
            if let reread { (counters, lost) = reread }
            record.lastSequence = 0
            toStore.append(record)
            try appendActive(record)
        } else {
            record.lastSequence = max(record.lastSequence, top)
            record.flags |= SegmentRecord.damaged
            if record.sealedAtNanos == 0 { record.sealedAtNanos = wallClockNanos() }
            record.bytes = UInt64(bytes.count)
            toStore.append(record)
            appendSealed(record, check: .damaged(problem))
        }
    }

    private mutating func appendActive(_ record: SegmentRecord) throws {
        let segment = try Segment(activeIn: directory, id: record.id, firstSequence: record.firstSequence, configuration: configuration)
        segments.append(SegmentState(record: record, segment: segment))
    }

    private mutating func appendSealed(_ record: SegmentRecord, check: Segment.Check) {
        segments.append(SegmentState(record: record, segment: Segment(sealedIn: directory, record: record, check: check, configuration: configuration)))
    }

    /// Makes sure the newest segment is an active one, then commits the segment records, checksums, losses and
    /// counters in one transaction and writes the backup.
    mutating func finish() throws -> LogRecovery.Opened {
        var nextSequence = max(highest + 1, 1)
        if segments.isEmpty || segments.last?.segment.writable == nil {
            // No segment, or the newest one is sealed (a newer one was unreadable and set aside): start another.
            let record = SegmentRecord(id: max(records.map(\.id).max() ?? 0, fileIDs.max() ?? 0) + 1, firstSequence: nextSequence)
            toStore.append(record)
            try appendActive(record)
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
        return LogRecovery.Opened(meta: meta, lock: lock, report: report, segments: segments, cursors: cursors, lost: lost, counters: counters, nextSequence: nextSequence)
    }
}
