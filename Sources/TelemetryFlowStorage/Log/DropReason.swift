/// Why an event was dropped. Every drop is counted under one of these.
public struct DropReason: Hashable, Sendable, CustomStringConvertible, CaseIterable {
    public let name: String
    let index: Int

    private init(_ name: String, _ index: Int) {
        self.name = name
        self.index = index
    }

    /// The append queue was full (``QueuePolicy/dropNewest``, or the bounded wait of ``QueuePolicy/block`` ran out).
    public static let queueFull = DropReason("queue_full", 0)
    /// The quota was reached under ``QuotaPolicy/dropNewest``.
    public static let quotaDropNewest = DropReason("quota_drop_newest", 1)
    /// A segment was deleted before consumers read it under ``QuotaPolicy/dropOldest``.
    public static let quotaDropOldest = DropReason("quota_drop_oldest", 2)
    /// The quota stayed full longer than the bounded wait of ``QuotaPolicy/block``.
    public static let quotaBlockTimeout = DropReason("quota_block_timeout", 3)
    /// The event was larger than ``LogConfiguration/maxRecordBytes``.
    public static let tooLarge = DropReason("too_large", 4)
    /// The log was closed.
    public static let closed = DropReason("closed", 5)
    /// Writing failed (for example the disk is full) for longer than the bounded wait.
    public static let storageError = DropReason("storage_error", 6)

    public static let allCases: [DropReason] = [
        .queueFull, .quotaDropNewest, .quotaDropOldest, .quotaBlockTimeout, .tooLarge, .closed, .storageError,
    ]

    public var description: String { name }
}

/// The result of one append.
public enum AppendOutcome: Sendable, Hashable {
    /// The event was queued under this sequence number; ``EventLog/flush()`` makes it durable.
    case appended(sequence: UInt64)
    /// The event was dropped and counted.
    case dropped(DropReason)

    /// The sequence number, or nil when the event was dropped.
    public var sequence: UInt64? {
        if case .appended(let s) = self { return s }
        return nil
    }
}
