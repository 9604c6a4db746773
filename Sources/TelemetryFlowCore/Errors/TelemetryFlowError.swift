/// The one error type TelemetryFlow throws.
///
/// Every error carries a ``Code`` that programs can switch on, a message written for the person reading the
/// log (it names the input that was wrong and what would be right) and, where there is one, the underlying
/// error or C result code that caused it.
public struct TelemetryFlowError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as an extensible set of names: adding a code is not a breaking change.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case invalidConfiguration, invalidCredentials, invalidArgument
            case notALog, unsupportedFormatVersion, logLocked, storage, corruptedRecord
            case unknownEventType, decoding, closed, queueFull, quotaExceeded, timedOut, io
            case unknownPlugin, duplicatePlugin, transport, unsupported, diskFull, cancelled
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A configuration value is missing, malformed or out of range.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// An API key id (`tfk_…`) or secret (`tfs_…`) is malformed.
        public static let invalidCredentials = Code(.invalidCredentials)
        /// An argument passed to an API call is not acceptable.
        public static let invalidArgument = Code(.invalidArgument)
        /// A directory given as a log holds files that are not a TelemetryFlow log.
        public static let notALog = Code(.notALog)
        /// A log or record was written by a newer format version than this build reads.
        public static let unsupportedFormatVersion = Code(.unsupportedFormatVersion)
        /// Another process has the log open for writing.
        public static let logLocked = Code(.logLocked)
        /// LMDB reported an error; `underlying` carries the result code.
        public static let storage = Code(.storage)
        /// A record failed its checksum or is structurally damaged.
        public static let corruptedRecord = Code(.corruptedRecord)
        /// A record carries an event type this build does not know.
        public static let unknownEventType = Code(.unknownEventType)
        /// Bytes could not be decoded as the expected message.
        public static let decoding = Code(.decoding)
        /// The log or client was already closed.
        public static let closed = Code(.closed)
        /// The in-memory append queue was full and the overflow policy dropped the event.
        public static let queueFull = Code(.queueFull)
        /// The disk quota was reached and the overflow policy dropped the event.
        public static let quotaExceeded = Code(.quotaExceeded)
        /// A bounded wait ran out.
        public static let timedOut = Code(.timedOut)
        /// A file-system call failed; `underlying` carries errno.
        public static let io = Code(.io)
        /// The disk (or the file system's quota, or a segment's map) had no room for a write; `underlying`
        /// carries the errno or LMDB code. Writing resumes when space returns.
        public static let diskFull = Code(.diskFull)
        /// No plugin of the asked kind is registered under the name.
        public static let unknownPlugin = Code(.unknownPlugin)
        /// A plugin of the same kind is already registered under the name.
        public static let duplicatePlugin = Code(.duplicatePlugin)
        /// A network transfer failed (connection, TLS, HTTP/2 framing); `underlying` carries the libcurl code.
        public static let transport = Code(.transport)
        /// The option or feature is not supported by this build or plugin.
        public static let unsupported = Code(.unsupported)
        /// The task waiting for the operation was cancelled; the operation was abandoned (a request in flight is
        /// aborted).
        public static let cancelled = Code(.cancelled)

        public var description: String { "\(value)" }
    }

    /// What went wrong.
    public var code: Code
    /// A sentence naming the input that was wrong and what would be right.
    public var message: String
    /// The error that caused this one, if any.
    public var underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying { return "TelemetryFlowError.\(code): \(message) (\(underlying))" }
        return "TelemetryFlowError.\(code): \(message)"
    }
}

/// A C result code (errno, LMDB or libcurl) carried as the underlying error.
public struct CResultCode: Error, CustomStringConvertible, Sendable, Equatable {
    /// The library the code came from, e.g. `"lmdb"` or `"errno"`.
    public var library: String
    /// The numeric result code.
    public var code: Int32
    /// The library's text for the code.
    public var text: String

    public init(library: String, code: Int32, text: String) {
        self.library = library
        self.code = code
        self.text = text
    }

    public var description: String { "\(library) \(code): \(text)" }
}
