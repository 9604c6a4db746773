import Glibc
import TelemetryFlowCore

/// Small file-system helpers over Glibc, each throwing a ``TelemetryFlowError`` that names the path.
enum PosixFile {
    static func errnoError(_ what: String, _ err: Int32 = errno) -> TelemetryFlowError {
        let text = String(cString: strerror(err))
        return TelemetryFlowError(.io, "\(what): \(text)", underlying: CResultCode(library: "errno", code: err, text: text))
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func size(_ path: String) -> UInt64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt64(st.st_size)
    }

    /// Whether `path` is a regular file (not a directory, a socket, a dangling link…).
    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Syncs the directory `path` itself, so that renames and unlinks inside it are durable.
    static func syncDirectory(_ path: String) throws(TelemetryFlowError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw errnoError("cannot open directory \(path) to sync it") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw errnoError("cannot sync directory \(path)") }
    }

    /// A second name for the file at `from` (atomic; fails when `to` exists).
    static func link(_ from: String, _ to: String) throws(TelemetryFlowError) {
        guard Glibc.link(from, to) == 0 else { throw errnoError("cannot link \(from) as \(to)") }
    }

    /// Removes a file, or a directory and everything under it (for a directory found where a file belongs).
    static func removeTree(_ path: String) {
        if isDirectory(path) {
            for name in (try? list(path)) ?? [] { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// Reads the whole file, or throws naming the path. At most `limit` bytes.
    static func readAll(_ path: String, limit: UInt64 = 1 << 40) throws(TelemetryFlowError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw errnoError("cannot open \(path)") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw errnoError("cannot read the size of \(path)") }
        let size = UInt64(max(0, st.st_size))
        guard size <= limit else { throw TelemetryFlowError(.io, "\(path) is \(size) bytes, more than the \(limit) expected") }
        var out = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        let failed = out.withUnsafeMutableBytes { raw -> Bool in
            while done < raw.count {
                let n = pread(fd, raw.baseAddress! + done, raw.count - done, off_t(done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return n < 0 }
                done += n
            }
            return false
        }
        if failed { throw errnoError("cannot read \(path)") }
        if done < out.count { out.removeLast(out.count - done) }
        return out
    }

    /// Creates `path` and its missing parents.
    static func makeDirectories(_ path: String) throws(TelemetryFlowError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw errnoError("cannot create directory \(current)")
            }
        }
        guard isDirectory(path) else {
            throw TelemetryFlowError(.invalidConfiguration, "log path \(path) exists and is not a directory")
        }
    }

    static func list(_ path: String) throws(TelemetryFlowError) -> [String] {
        guard let dir = opendir(path) else { throw errnoError("cannot list directory \(path)") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func remove(_ path: String) {
        unlink(path)
    }

    /// Flushes the file's data at `path` to disk through a descriptor of its own (any process's writes to the
    /// file are covered). A file that no longer exists needs no flush: returns false.
    static func syncData(_ path: String) throws(TelemetryFlowError) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return false }
            throw errnoError("cannot open \(path) to sync it")
        }
        defer { close(fd) }
        guard fdatasync(fd) == 0 else { throw errnoError("cannot sync \(path)") }
        return true
    }

    static func rename(_ from: String, _ to: String) throws(TelemetryFlowError) {
        guard Glibc.rename(from, to) == 0 else { throw errnoError("cannot move \(from) to \(to)") }
    }

    /// Writes `bytes` to `path` through a temporary file and a rename, so readers see all or nothing.
    /// - Parameter sync: `fsync` the file before the rename (the rename is atomic either way; without the sync a
    ///   power loss may leave the new name with incomplete contents).
    static func writeAtomically(_ path: String, _ bytes: [UInt8], sync: Bool = true) throws(TelemetryFlowError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw errnoError("cannot write \(temporary)") }
        var written = 0
        var failure: Int32 = 0
        bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : ENOSPC; return }
                written += n
            }
        }
        if failure == 0 && sync && fsync(fd) != 0 { failure = errno }
        close(fd)
        guard failure == 0 else {
            unlink(temporary)
            throw errnoError("cannot write \(temporary)", failure)
        }
        try rename(temporary, path)
    }
}

/// An exclusive `flock` on a file, held until released or the process dies.
///
/// `@unchecked Sendable`: the descriptor is immutable; it is closed once, in `deinit`.
final class FileLock: @unchecked Sendable {
    private let fd: Int32

    init(path: String) throws(TelemetryFlowError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PosixFile.errnoError("cannot open lock file \(path)") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let err = errno
            close(fd)
            if err == EWOULDBLOCK {
                throw TelemetryFlowError(
                    .logLocked, "the log at \(path.dropLast(5)) is open in another process; one process writes a log at a time")
            }
            throw PosixFile.errnoError("cannot lock \(path)", err)
        }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
