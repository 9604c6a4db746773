import CLMDB
import Glibc
import TelemetryFlowCore

/// Opening the metadata environment: validated before LMDB sees it, rebuilt when damaged, missing or unreadable.
enum MetadataRecovery {
    /// Opens `meta.mdb`, creating it for a new log and rebuilding it (from `meta.backup`, then from the segment
    /// files, which ``LogRecovery`` adopts) when it cannot be trusted.
    static func load(directory: String, configuration: LogConfiguration, report: inout RecoveryReport) throws -> MetadataStore {
        let path = directory + "/" + MetadataStore.fileName
        // A rebuild or creation that stopped before its rename left only its temporary file.
        PosixFile.removeTree(path + LogRecovery.rebuildSuffix)
        PosixFile.remove(path + LogRecovery.rebuildSuffix + "-lock")
        let names = try PosixFile.list(directory)
        let ours = names.filter { Segment.id(fromFileName: $0) != nil || $0 == MetadataBackup.fileName }
        let noSync = configuration.durability != .always

        guard names.contains(MetadataStore.fileName) else {
            if ours.isEmpty {
                let foreign = names.filter { $0 != LogRecovery.lockName && $0 != LogRecovery.quarantineDirectory && !$0.hasSuffix("-lock") }
                if let example = foreign.first {
                    throw TelemetryFlowError(
                        .notALog,
                        "\(directory) is not a TelemetryFlow log: it holds other files (such as \(example)) and no \(MetadataStore.fileName); give an empty or new directory")
                }
                // Created beside its name and renamed into place, so that a meta.mdb always has a layout version
                // (a failed or killed creation leaves only the temporary file, removed by the next open).
                let temporary = path + LogRecovery.rebuildSuffix
                do {
                    let fresh = try MetadataStore(path: temporary, noSync: true)
                    defer { fresh.env.close() }
                    try fresh.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try fresh.setLayoutVersion(txn) }
                    try fresh.env.sync()
                }
                PosixFile.remove(temporary + "-lock")
                PosixFile.remove(path + "-lock")
                try PosixFile.rename(temporary, path)
                try PosixFile.syncDirectory(directory)
                let meta = try MetadataStore(path: path, noSync: noSync)
                report.created = true
                return meta
            }
            return try rebuild(path: path, directory: directory, reason: "\(MetadataStore.fileName) is missing", noSync: noSync, report: &report)
        }
        let problem: String?
        if !PosixFile.isRegularFile(path) {
            problem = "it is not a regular file"
        } else {
            do throws(TelemetryFlowError) {
                let bytes = try PosixFile.readAll(path, limit: 1 << 30)
                problem = bytes.withUnsafeBytes { LMDBPageWalker($0).validate(subDatabases: true) }
            } catch {
                problem = error.message
            }
        }
        if let problem {
            guard !ours.isEmpty else {
                throw TelemetryFlowError(.notALog, "\(path) is not a TelemetryFlow log metadata file: \(problem)")
            }
            return try rebuild(path: path, directory: directory, reason: "\(MetadataStore.fileName) is damaged: \(problem)", noSync: noSync, report: &report)
        }
        PosixFile.remove(path + "-lock")
        let meta: MetadataStore
        do {
            meta = try MetadataStore(path: path, noSync: noSync)
        } catch {
            guard !ours.isEmpty else { throw TelemetryFlowError(.notALog, "\(path) is not a TelemetryFlow log metadata file", underlying: error) }
            return try rebuild(path: path, directory: directory, reason: "\(MetadataStore.fileName) cannot be opened: \(error.message)", noSync: noSync, report: &report)
        }
        let version: UInt64?
        do {
            version = try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in try meta.layoutVersion(txn) }
        } catch {
            meta.env.close()
            return try rebuild(path: path, directory: directory, reason: error.message, noSync: noSync, report: &report)
        }
        guard let version else {
            meta.env.close()
            // Beside segments or a backup, a metadata file without a layout version is a damaged one of ours.
            guard ours.isEmpty else {
                return try rebuild(path: path, directory: directory, reason: "\(MetadataStore.fileName) holds no layout version", noSync: noSync, report: &report)
            }
            throw TelemetryFlowError(.notALog, "\(path) holds no TelemetryFlow layout version; it is not a TelemetryFlow log")
        }
        guard version <= MetadataStore.layoutVersion else {
            meta.env.close()
            throw TelemetryFlowError(
                .unsupportedFormatVersion,
                "the log at \(directory) has layout version \(version); this build reads up to \(MetadataStore.layoutVersion). Open it with a newer TelemetryFlow")
        }
        if version == 1 {
            try meta.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in try meta.migrateFromLayout1(txn) }
            report.problems.append("layout 1 metadata rewritten as layout \(MetadataStore.layoutVersion)")
        }
        // Every value carries its checksum: read them all once.
        do {
            try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in
                for dbi in meta.handles { _ = try meta.all(txn, dbi) }
                _ = try meta.segmentRecords(txn)
            }
        } catch {
            meta.env.close()
            return try rebuild(path: path, directory: directory, reason: "\(MetadataStore.fileName) is damaged: \(error.message)", noSync: noSync, report: &report)
        }
        return meta
    }

    /// Writes a new metadata file beside the old one from the backup (when it is sound), renames it into place
    /// and keeps the old one in `quarantine/`. Segments the backup does not list are adopted by the caller.
    static func rebuild(path: String, directory: String, reason: String, noSync: Bool, report: inout RecoveryReport) throws -> MetadataStore {
        let temporary = path + LogRecovery.rebuildSuffix
        var source = "the segment files"
        var entries: [MetadataBackup.Entry] = []
        let backupPath = directory + "/" + MetadataBackup.fileName
        if PosixFile.isRegularFile(backupPath) {
            switch MetadataBackup.decode((try? PosixFile.readAll(backupPath, limit: 1 << 30)) ?? []) {
            case .success(let found):
                entries = found
                source = MetadataBackup.fileName + " and the segment files"
            case .failure(let error):
                report.problems.append(error.message)
            }
        }
        do {
            let store = try MetadataStore(path: temporary, noSync: true)
            defer { store.env.close() }
            try store.env.withTransaction(write: true) { (txn) throws(TelemetryFlowError) in
                try store.load(txn, entries)
                try store.setLayoutVersion(txn)
                var counters = try store.counterValues(txn)
                counters["metadata_rebuilds", default: 0] += 1
                if entries.isEmpty { counters["cursors_lost", default: 0] += 1 }
                try store.putCounters(txn, counters)
            }
            try store.env.sync()
        }
        PosixFile.remove(temporary + "-lock")
        CrashPoint.hit("metadata.rebuilt")
        if PosixFile.isRegularFile(path) {
            try LogRecovery.quarantineLink(path, directory: directory)
        } else if PosixFile.exists(path) {
            try LogRecovery.moveToQuarantine(path, directory: directory, suffix: "not-a-file")
        }
        PosixFile.remove(path + "-lock")
        try PosixFile.rename(temporary, path)
        try PosixFile.syncDirectory(directory)
        CrashPoint.hit("metadata.renamed")
        report.metadataRebuilt = "\(reason); rebuilt from \(source)" + (entries.isEmpty ? " (cursors lost: consumers restart at the oldest retained event)" : "")
        return try MetadataStore(path: path, noSync: noSync)
    }
}

extension MetadataBackup {
    /// The counters in the backup file of `directory`, or none when it is missing or damaged.
    static func counters(directory: String) -> [String: UInt64] {
        guard case .success(let entries) = decode((try? PosixFile.readAll(directory + "/" + fileName, limit: 1 << 30)) ?? []) else { return [:] }
        var out: [String: UInt64] = [:]
        for entry in entries where entry.database == 3 {
            if let value = MetadataStore.u64(entry.value) { out[String(decoding: entry.key, as: UTF8.self)] = value }
        }
        return out
    }

    /// Writes every entry of `meta` to `meta.backup` through a temporary file, a sync and a rename.
    static func write(_ meta: MetadataStore, directory: String, sync: Bool = true) throws(TelemetryFlowError) {
        let entries = try meta.env.withTransaction(write: false) { (txn) throws(TelemetryFlowError) in try meta.dump(txn) }
        try PosixFile.writeAtomically(directory + "/" + fileName, encode(entries), sync: sync)
        CrashPoint.hit("backup.written")
    }
}
