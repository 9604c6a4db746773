import CLMDB
import Glibc
import TelemetryFlowCore

/// Opening a log directory: creating it, or checking and recovering what an earlier process left.
enum LogRecovery {
    struct Opened {
        var meta: MetadataStore
        var lock: FileLock
        var report: RecoveryReport
        var segments: [SegmentState]
        var cursors: [String: UInt64]
        var quarantined: Set<UInt64>
        var counters: [String: UInt64]
        var nextSequence: UInt64
    }

    static let markerName = "recovering"
    static let lockName = "LOCK"
    static let quarantineDirectory = "quarantine"

    static func open(directory: String, configuration: LogConfiguration) throws -> Opened {
        let lock = try FileLock(path: directory + "/" + lockName)
        let names = try PosixFile.list(directory)
        var report = RecoveryReport()
        let metaPath = directory + "/" + MetadataStore.fileName
        if !names.contains(MetadataStore.fileName) {
            let foreign = names.filter { $0 != lockName }
            if let example = foreign.first {
                throw TelemetryFlowError(
                    .notALog,
                    "\(directory) is not a TelemetryFlow log: it holds other files (such as \(example)) and no \(MetadataStore.fileName); give an empty or new directory")
            }
            report.created = true
        } else if let problem = LMDBSalvage.problem(path: metaPath) {
            throw TelemetryFlowError(.notALog, "\(metaPath) is not a TelemetryFlow log metadata file: \(problem)")
        }
        let opened = Result { () throws(TelemetryFlowError) -> MetadataStore in
            try MetadataStore(path: metaPath, noSync: configuration.durability != .always)
        }
        if case .failure(let error) = opened, let code = (error.underlying as? CResultCode)?.code,
            code == MDB_INVALID || code == MDB_VERSION_MISMATCH
        {
            throw TelemetryFlowError(.notALog, "\(metaPath) is not a TelemetryFlow log metadata file", underlying: error)
        }
        let meta = try opened.get()
        var records: [SegmentRecord] = []
        var cursors: [String: UInt64] = [:]
        var counters: [String: UInt64] = [:]
        var quarantined: Set<UInt64> = []
        try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
            if report.created {
                try meta.setLayoutVersion(txn)
            } else {
                guard let version = try meta.layoutVersion(txn) else {
                    throw TelemetryFlowError(.notALog, "\(metaPath) holds no TelemetryFlow layout version; it is not a TelemetryFlow log")
                }
                guard version <= MetadataStore.layoutVersion else {
                    throw TelemetryFlowError(
                        .unsupportedFormatVersion,
                        "the log at \(directory) has layout version \(version); this build reads up to \(MetadataStore.layoutVersion). Open it with a newer TelemetryFlow")
                }
            }
            records = try meta.segmentRecords(txn)
            cursors = try meta.cursorPositions(txn)
            counters = try meta.counterValues(txn)
            quarantined = try meta.quarantinedSequences(txn)
        }

        let markerPath = directory + "/" + markerName
        let suspect = PosixFile.read(markerPath).flatMap { UInt64(String(decoding: $0, as: UTF8.self)) }

        // Files no segment record names were being created or deleted when a process stopped.
        let known = Set(records.map(\.id))
        for name in names {
            let base = name.hasSuffix("-lock") ? String(name.dropLast(5)) : name
            if let id = Segment.id(fromFileName: base), !known.contains(id) {
                PosixFile.remove(directory + "/" + name)
                report.removedOrphans.append(name)
            }
        }

        var corrupted: UInt64 = 0
        var lostRecords: [UInt64] = []
        var segments: [SegmentState] = []
        for (index, record) in records.enumerated() {
            let isLast = index == records.count - 1
            let path = directory + "/" + Segment.fileName(id: record.id)
            if !PosixFile.exists(path) && !isLast {
                // A sealed segment vanished from under the log: its events are gone.
                let lost = record.lastSequence >= record.firstSequence ? record.lastSequence - record.firstSequence + 1 : 0
                corrupted += lost
                try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try meta.deleteSegment(txn, id: record.id) }
                continue
            }
            if PosixFile.exists(path) {
                var reason = LMDBSalvage.problem(path: path)
                if reason == nil && record.id == suspect { reason = "an earlier open stopped while checking it" }
                if let reason {
                    // The newest segment's end is known from the last persisted commit point.
                    var known = record
                    if isLast, let through = counters["committed_through"], through >= record.firstSequence { known.lastSequence = through }
                    let (kept, damaged) = try salvage(path: path, reason: reason, record: known, directory: directory, configuration: configuration)
                    report.salvagedSegments.append("\(Segment.fileName(id: record.id)) (\(reason); kept \(kept) records)")
                    corrupted += UInt64(damaged.count)
                    lostRecords.append(contentsOf: damaged)
                }
            }
            try PosixFile.writeAtomically(markerPath, Array(String(record.id).utf8))
            let segment = try Segment(
                directory: directory, id: record.id, firstSequence: record.firstSequence, configuration: configuration, sealed: !isLast)
            var state = SegmentState(record: record, segment: segment)
            if !isLast && record.bytes == 0 { state.record.bytes = segment.env.usedBytes }
            segments.append(state)
        }

        var nextSequence = max((counters["high_water"] ?? 0) + 1, (cursors.values.max() ?? 0) + 1, 1)
        if segments.isEmpty {
            let record = SegmentRecord(id: (records.map(\.id).max() ?? 0) + 1, firstSequence: nextSequence)
            try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try meta.putSegment(txn, record) }
            let segment = try Segment(directory: directory, id: record.id, firstSequence: record.firstSequence, configuration: configuration)
            segments.append(SegmentState(record: record, segment: segment))
        } else if let active = segments.last {
            if let last = try active.segment.lastSequence() {
                nextSequence = max(nextSequence, last + 1)
                // Commits after the counters were last persisted (the process stopped without closing).
                let through = counters["committed_through"] ?? 0
                if last > through {
                    counters["committed", default: 0] += last - through
                    counters["committed_through"] = last
                }
            }
            nextSequence = max(nextSequence, active.record.firstSequence)
            // Verify the tail: the records most likely to have been written when a process stopped.
            let tail = try verifyTail(segments, count: configuration.tailVerificationCount)
            report.verifiedRecords = tail.verified
            for (sequence, _) in tail.damaged where !quarantined.contains(sequence) { lostRecords.append(sequence); corrupted += 1 }
        }

        if corrupted > 0 || !lostRecords.isEmpty {
            counters["corrupted", default: 0] += corrupted
            let values = counters
            try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
                for sequence in lostRecords {
                    try meta.put(txn, meta.quarantine, MetadataStore.u64(sequence), Array("found damaged when the log was opened".utf8))
                }
                try meta.putCounters(txn, values)
            }
            quarantined.formUnion(lostRecords)
        }
        if configuration.durability != .always { try meta.env.sync() }
        PosixFile.remove(markerPath)
        report.corruptedRecords = corrupted
        report.lastSequence = nextSequence - 1
        return Opened(
            meta: meta, lock: lock, report: report, segments: segments, cursors: cursors, quarantined: quarantined,
            counters: counters, nextSequence: nextSequence)
    }

    /// Checks the checksums of the last `count` records, newest first, across segments.
    static func verifyTail(_ segments: [SegmentState], count: Int) throws(TelemetryFlowError) -> (verified: Int, damaged: [UInt64: String]) {
        var verified = 0
        var damaged: [UInt64: String] = [:]
        for state in segments.reversed() where verified < count {
            let segment = state.segment
            let dbi = segment.dbi
            try segment.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
                var cursor: OpaquePointer?
                try lmdbCheck(mdb_cursor_open(txn, dbi, &cursor), "cannot open a cursor on \(segment.path)")
                defer { mdb_cursor_close(cursor) }
                var k = MDB_val()
                var v = MDB_val()
                var rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
                while rc == 0 && verified < count {
                    if let seq = sequence(fromKey: k.raw) {
                        do throws(TelemetryFlowError) { _ = try EventCodec.envelope(of: v.raw) } catch { damaged[seq] = error.message }
                    }
                    verified += 1
                    rc = mdb_cursor_get(cursor, &k, &v, MDB_PREV)
                }
            }
        }
        return (verified, damaged)
    }

    /// Rebuilds the segment at `path` from the records a page scan can still read; the damaged file is kept
    /// under `quarantine/`. Returns how many records were kept and the sequences found damaged.
    static func salvage(
        path: String, reason: String, record: SegmentRecord, directory: String, configuration: LogConfiguration
    ) throws -> (kept: Int, damaged: [UInt64]) {
        let bytes = PosixFile.read(path) ?? []
        let scan = bytes.withUnsafeBytes { LMDBSalvage.scan($0) }
        var damaged = scan.damaged
        // A truncated file lost the records that were past its end: count the holes in the known range.
        let sequences = scan.records.keys.sorted()
        let upper = max(record.lastSequence >= record.firstSequence ? record.lastSequence : 0, sequences.last ?? 0)
        // Keys outside the segment's range are noise read from damaged pages, not lost records.
        damaged = damaged.filter { $0 >= record.firstSequence && $0 <= upper }
        if upper >= record.firstSequence && upper - record.firstSequence < 10_000_000 {
            let present = Set(sequences)
            for seq in record.firstSequence...upper where !present.contains(seq) { damaged.insert(seq) }
        }
        try PosixFile.makeDirectories(directory + "/" + quarantineDirectory)
        let name = String(path.split(separator: "/").last!)
        try PosixFile.rename(path, directory + "/" + quarantineDirectory + "/" + name + "." + String(wallClockNanos()) + ".damaged")
        PosixFile.remove(path + "-lock")
        let rebuilt = try Segment(directory: directory, id: record.id, firstSequence: record.firstSequence, configuration: configuration)
        let dbi = rebuilt.dbi
        try rebuilt.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
            for seq in sequences {
                var value = scan.records[seq]!
                var key = seq.bigEndian
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
        try rebuilt.env.sync()
        return (sequences.count, damaged.sorted())
    }
}
