/// Why an event was dropped. Every drop is counted under one, by name: the log's own reasons are the static
/// members, and plugins (processors, exporters) make their own with ``init(_:)`` and count them through the log
/// (`EventLog.countDrop(_:count:)`), so that they show in the statistics beside the built-in ones.
public struct DropReason: Hashable, Sendable, CustomStringConvertible, CaseIterable {
    /// The reason's name (`queue_full`, `redacted_by_policy`, …): lowercase letters, digits, `_`, `.` and `-`.
    public let name: String
    /// The position of a built-in reason in the log's counters; nil for a plugin's own.
    package let builtInIndex: Int?

    private init(_ name: String, _ index: Int) {
        self.name = name
        self.builtInIndex = index
    }

    /// A plugin's own reason.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidArgument`` for an empty name, one over 64 bytes, or one with
    ///   other characters than lowercase letters, digits, `_`, `.` and `-`.
    public init(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }
        guard !name.isEmpty, name.utf8.count <= 64, allowed else {
            throw TelemetryFlowError(
                .invalidArgument, "drop reason \"\(name)\" must be 1 to 64 of lowercase letters, digits, _, . and -")
        }
        if let builtIn = Self.allCases.first(where: { $0.name == name }) {
            self = builtIn
        } else {
            self.name = name
            self.builtInIndex = nil
        }
    }

    /// The append queue was full (`QueuePolicy.dropNewest`, or the bounded wait of `QueuePolicy.block` ran out).
    public static let queueFull = DropReason("queue_full", 0)
    /// The quota was reached under `QuotaPolicy.dropNewest`.
    public static let quotaDropNewest = DropReason("quota_drop_newest", 1)
    /// A segment was deleted before consumers read it under `QuotaPolicy.dropOldest`.
    public static let quotaDropOldest = DropReason("quota_drop_oldest", 2)
    /// The quota stayed full longer than the bounded wait of `QuotaPolicy.block`.
    public static let quotaBlockTimeout = DropReason("quota_block_timeout", 3)
    /// The event was larger than `LogConfiguration.maxRecordBytes`.
    public static let tooLarge = DropReason("too_large", 4)
    /// The log was closed.
    public static let closed = DropReason("closed", 5)
    /// Writing failed (for example the disk is full) for longer than the bounded wait.
    public static let storageError = DropReason("storage_error", 6)

    /// The log's own reasons (a plugin's are not listed here).
    public static let allCases: [DropReason] = [
        .queueFull, .quotaDropNewest, .quotaDropOldest, .quotaBlockTimeout, .tooLarge, .closed, .storageError,
    ]

    public var description: String { name }

    public static func == (lhs: DropReason, rhs: DropReason) -> Bool { lhs.name == rhs.name }
    public func hash(into hasher: inout Hasher) { hasher.combine(name) }
}
