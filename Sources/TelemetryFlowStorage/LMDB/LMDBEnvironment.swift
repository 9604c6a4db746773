import CLMDB
import Glibc
import Synchronization
import TelemetryFlowCore

/// Turns an LMDB (or errno) result code into a ``TelemetryFlowError``.
func lmdbCheck(_ rc: Int32, _ what: @autoclosure () -> String) throws(TelemetryFlowError) {
    guard rc != 0 else { return }
    throw lmdbError(rc, what())
}

func lmdbError(_ rc: Int32, _ what: String) -> TelemetryFlowError {
    let text = String(cString: mdb_strerror(rc))
    let code: TelemetryFlowError.Code
    switch rc {
    case MDB_CORRUPTED, MDB_PAGE_NOTFOUND: code = .corruptedRecord
    case ENOSPC, EDQUOT, MDB_MAP_FULL: code = .diskFull
    case EIO: code = .io
    default: code = .storage
    }
    return TelemetryFlowError(code, "\(what): \(text)", underlying: CResultCode(library: "lmdb", code: rc, text: text))
}

/// One LMDB environment: a single data file (`MDB_NOSUBDIR`) with its lock file beside it.
///
/// Write transactions are only ever begun on the log's writer thread; read transactions use `MDB_NOTLS` so
/// they may run on any thread.
///
/// `@unchecked Sendable`: the environment pointer is immutable; LMDB itself makes an environment safe to share
/// between threads (with `MDB_NOTLS` for readers); closing is guarded by `isOpen` and happens once.
final class LMDBEnvironment: @unchecked Sendable {
    let pointer: OpaquePointer
    let path: String
    /// Reader slots of dead processes that `mdb_reader_check` cleared when the environment was opened.
    let staleReadersCleared: Int
    private let isOpen = Locked(true)

    /// - Parameter noLock: no lock file (`MDB_NOLOCK`): only for read-only files nothing writes any more.
    init(path: String, mapSize: Int, maxDatabases: UInt32, noSync: Bool, readOnly: Bool = false, noLock: Bool = false) throws(TelemetryFlowError) {
        var env: OpaquePointer?
        try lmdbCheck(mdb_env_create(&env), "cannot create LMDB environment for \(path)")
        guard let env else { throw TelemetryFlowError(.storage, "mdb_env_create returned no environment for \(path)") }
        var cleared = 0
        do throws(TelemetryFlowError) {
            try lmdbCheck(mdb_env_set_mapsize(env, mapSize), "cannot set map size of \(path)")
            try lmdbCheck(mdb_env_set_maxdbs(env, maxDatabases), "cannot set database count of \(path)")
            try lmdbCheck(mdb_env_set_maxreaders(env, 256), "cannot set reader count of \(path)")
            var flags = UInt32(MDB_NOSUBDIR | MDB_NOTLS | MDB_NORDAHEAD)
            if noSync { flags |= UInt32(MDB_NOSYNC) }
            if readOnly { flags |= UInt32(MDB_RDONLY) }
            if noLock { flags |= UInt32(MDB_NOLOCK) }
            try lmdbCheck(mdb_env_open(env, path, flags, 0o644), "cannot open LMDB file \(path)")
            if !noLock {
                var dead: Int32 = 0
                if mdb_reader_check(env, &dead) == 0 { cleared = Int(dead) }
            }
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.pointer = env
        self.path = path
        staleReadersCleared = cleared
    }

    deinit { close() }

    /// Closes the environment; only call once no transaction can still use it. Idempotent.
    func close() {
        let wasOpen = isOpen.withLock { open in
            defer { open = false }
            return open
        }
        if wasOpen { mdb_env_close(pointer) }
    }

    /// Bytes of the data file in use: (last page number + 1) × page size.
    var usedBytes: UInt64 {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        mdb_env_info(pointer, &info)
        mdb_env_stat(pointer, &stat)
        return UInt64(info.me_last_pgno + 1) * UInt64(stat.ms_psize)
    }

    func sync() throws(TelemetryFlowError) {
        try lmdbCheck(mdb_env_sync(pointer, 1), "cannot sync \(path)")
    }

    /// Runs `body` in a transaction; commits a write transaction when `body` returns, aborts when it throws.
    func withTransaction<T>(
        write: Bool, _ body: (OpaquePointer) throws(TelemetryFlowError) -> T
    ) throws(TelemetryFlowError) -> T {
        var txn: OpaquePointer?
        try lmdbCheck(
            mdb_txn_begin(pointer, nil, write ? 0 : UInt32(MDB_RDONLY), &txn),
            "cannot begin a \(write ? "write" : "read") transaction on \(path)")
        guard let txn else { throw TelemetryFlowError(.storage, "mdb_txn_begin returned no transaction") }
        let result: T
        do throws(TelemetryFlowError) {
            result = try body(txn)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        if write {
            try lmdbCheck(mdb_txn_commit(txn), "cannot commit to \(path)")
        } else {
            mdb_txn_abort(txn)
        }
        return result
    }

    func openDatabase(_ txn: OpaquePointer, _ name: String?, create: Bool) throws(TelemetryFlowError) -> MDB_dbi {
        var dbi: MDB_dbi = 0
        try lmdbCheck(
            mdb_dbi_open(txn, name, create ? UInt32(MDB_CREATE) : 0, &dbi),
            "cannot open database \(name ?? "main") in \(path)")
        return dbi
    }
}

extension MDB_val {
    /// The bytes this value points at (valid only inside its transaction).
    var raw: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: mv_data, count: mv_size) }
}

/// Calls `body` with an `MDB_val` over `bytes`.
func withVal<T>(_ bytes: [UInt8], _ body: (inout MDB_val) throws(TelemetryFlowError) -> T) throws(TelemetryFlowError) -> T {
    var copy = bytes
    let result = copy.withUnsafeMutableBytes { raw -> Result<T, TelemetryFlowError> in
        var val = MDB_val(mv_size: raw.count, mv_data: raw.baseAddress)
        do throws(TelemetryFlowError) { return .success(try body(&val)) } catch { return .failure(error) }
    }
    return try result.get()
}
