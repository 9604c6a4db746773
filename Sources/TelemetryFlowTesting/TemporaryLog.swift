import Glibc
public import TelemetryFlow

/// An ``TelemetryFlow/EventLog`` in a new temporary directory, closed and removed by ``remove()`` or when the
/// value is released.
///
/// ```swift
/// let temporary = try TemporaryLog()
/// temporary.log.append(.log(record, scope: scope), timestampUnixNano: 1)
/// ```
public final class TemporaryLog: Sendable {
    /// The directory the log lives in (under `$TMPDIR`, or /tmp).
    public let directory: String
    /// The open log.
    public let log: EventLog

    /// Creates the directory and opens a log in it.
    ///
    /// - Parameter configure: changes to the log's configuration (its directory is already set).
    /// - Throws: ``TelemetryFlowError/Code/io`` when the directory cannot be created; the log's own errors.
    public init(_ configure: (inout LogConfiguration) -> Void = { _ in }) throws {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/tflow-test-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TelemetryFlowError(.io, "could not create a temporary directory under \(base) (errno \(errno))")
        }
        directory = String(cString: made)
        var configuration = LogConfiguration(directory: directory)
        configure(&configuration)
        configuration.directory = directory
        do {
            log = try EventLog(configuration)
        } catch {
            Self.removeTree(directory)
            throw error
        }
    }

    /// Opens the log again in the same directory (after ``TelemetryFlow/EventLog/close()``), as a restart would.
    public func reopen(_ configure: (inout LogConfiguration) -> Void = { _ in }) throws -> EventLog {
        var configuration = log.configuration
        configure(&configuration)
        configuration.directory = directory
        return try EventLog(configuration)
    }

    /// Closes the log and removes the directory.
    public func remove() {
        log.close()
        Self.removeTree(directory)
    }

    deinit { remove() }

    private static func removeTree(_ path: String) {
        guard let dir = opendir(path) else {
            unlink(path)
            return
        }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard name != "." && name != ".." else { continue }
            let child = path + "/" + name
            var info = stat()
            if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { unlink(child) }
        }
        closedir(dir)
        rmdir(path)
    }
}
