/// The result of one append.
public enum AppendOutcome: Sendable, Hashable {
    /// The event was queued under this sequence number; `EventLog.flush()` makes it durable.
    case appended(sequence: UInt64)
    /// The event was dropped and counted.
    case dropped(DropReason)

    /// The sequence number, or nil when the event was dropped.
    public var sequence: UInt64? {
        if case .appended(let s) = self { return s }
        return nil
    }
}
