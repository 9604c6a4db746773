/// What one exporter has done so far.
public struct ExporterStatus: Sendable, Hashable {
    public var name: String
    public var plugin: String
    /// The exporter's durable cursor position: every event up to it was handled.
    public var cursor: UInt64
    /// Events sent and accepted (partially accepted batches count their whole size here).
    public var exportedEvents: UInt64 = 0
    public var exportedBatches: UInt64 = 0
    /// Items the backend rejected in partial successes (never retried).
    public var rejectedItems: UInt64 = 0
    /// Retryable failures, each followed by a backoff.
    public var retries: UInt64 = 0
    public var deadLetteredBatches: UInt64 = 0
    public var deadLetteredEvents: UInt64 = 0
    /// Events skipped because the exporter does not take their signal.
    public var skippedEvents: UInt64 = 0
    public var consecutiveFailures = 0
    public var circuit = "closed"
    public var circuitOpenings = 0
    public var lastError: String?
    public var running = true
}
