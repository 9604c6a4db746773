public import TelemetryFlowCore

/// A snapshot of the log's counters and shape.
public struct LogStatistics: Sendable, Hashable {
    /// Events accepted by ``EventLog/append(_:timestampUnixNano:)`` since the log was created.
    public var appended: UInt64
    /// Events committed to disk since the log was created.
    public var committed: UInt64
    /// Events dropped since the log was created, by reason.
    public var dropped: [DropReason: UInt64]
    /// Records found damaged (checksum or structure) and skipped, since the log was created.
    public var corrupted: UInt64
    /// The first sequence still stored, or nil when the log holds nothing.
    public var firstSequence: UInt64?
    /// The last committed sequence, or 0 when nothing was ever committed.
    public var lastSequence: UInt64
    /// Segments on disk.
    public var segmentCount: Int
    /// Bytes the segments use on disk.
    public var diskBytes: UInt64
    /// Consumer cursors and the sequence each has consumed up to.
    public var cursors: [String: UInt64]
    /// Events that consumers lost to ``QuotaPolicy/dropOldest``, per cursor.
    public var droppedPerCursor: [String: UInt64]
    /// The sequence ranges found lost or damaged since the log was created (each counted once in ``corrupted``).
    public var lostRanges: [ClosedRange<UInt64>]
    /// The last storage error, if writing is failing now.
    public var lastError: String?

    /// Total events dropped for any reason.
    public var droppedTotal: UInt64 { dropped.values.reduce(0, +) }
}
