import CLMDB
import Synchronization
public import TelemetryFlowCore

/// The durable, segmented, LMDB-backed event log.
///
/// Every telemetry call appends one record. ``append(_:timestampUnixNano:)`` encodes the event on the caller's
/// thread into a bounded in-memory queue and returns at once with its sequence number; one writer thread
/// group-commits whatever is queued into the active segment. ``flush()`` returns once everything appended
/// before it is committed (and, with ``Durability/always``, synced). Consumers read after their own named,
/// durable cursor and advance it when the events were handled; segments behind every cursor and the
/// retention window are deleted whole.
///
/// One process writes a log at a time (an exclusive lock file enforces it). Reopening after a crash restores
/// every committed event and every cursor; damaged records are skipped and counted, never fatal.
public final class EventLog: Sendable {
    let engine: LogEngine

    /// The configuration the log was opened with.
    public var configuration: LogConfiguration { engine.configuration }

    /// What recovery found when the log was opened.
    public var recoveryReport: RecoveryReport { engine.recoveryReport }

    /// Opens the log in `configuration.directory`, creating it when the directory is empty or missing, and
    /// recovering it when it was not closed cleanly.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` for an invalid configuration;
    ///   ``TelemetryFlowError/Code/notALog`` when the directory holds other files;
    ///   ``TelemetryFlowError/Code/unsupportedFormatVersion`` when a newer build wrote it;
    ///   ``TelemetryFlowError/Code/logLocked`` when another process has it open; ``TelemetryFlowError/Code/storage``
    ///   or ``TelemetryFlowError/Code/io`` when the files cannot be opened.
    public init(_ configuration: LogConfiguration) throws {
        try configuration.validate()
        engine = try LogEngine(configuration: configuration)
        engine.start()
        let report = engine.recoveryReport
        if !report.lostRanges.isEmpty {
            engine.announceLoss(report.lostRanges, reason: (report.salvagedSegments + report.problems).joined(separator: "; "), segment: nil)
        }
    }

    deinit { engine.close() }

    // MARK: Recording

    /// Queues one event; never waits for disk (it waits for queue space only under ``QueuePolicy/block``).
    ///
    /// - Returns: the event's sequence number, or the reason it was dropped (the drop is counted).
    @discardableResult
    public func append(_ event: borrowing TelemetryEvent, timestampUnixNano: UInt64) -> AppendOutcome {
        engine.append(event, timestampUnixNano: timestampUnixNano)
    }

    /// The instruments' append path: a measurement from its instrument's pre-encoded name, unit and scope
    /// (`EventCodec.measurementPrefix`), with no `TelemetryEvent` built.
    package func appendMeasurement(
        kind: InstrumentKind, prefix: UnsafeRawBufferPointer, attributes: borrowing Attributes, value: MetricValue
    ) -> AppendOutcome {
        EventCodec.withUnsealedMeasurement(kind: kind, prefix: prefix, attributes: attributes, value: value) {
            engine.append($0)
        }
    }

    /// The client's append path for a log record: the record of `.log(record, scope: scope)` at the record's time,
    /// with no ``TelemetryEvent`` built.
    package func appendLog(_ record: borrowing LogRecordData, scope: InstrumentationScope) -> AppendOutcome {
        EventCodec.withUnsealedLog(record, scope: scope) { engine.append($0) }
    }

    /// The client's append path for a log call: the record ``EventCodec/withUnsealedLog(timeUnixNano:severity:message:attributes:span:scope:_:)``
    /// encodes from the call's values.
    package func appendLog(
        timeUnixNano: UInt64, severity: Severity, message: String, attributes: borrowing Attributes, span: (TraceID, SpanID, flags: UInt32),
        scope: InstrumentationScope
    ) -> AppendOutcome {
        EventCodec.withUnsealedLog(timeUnixNano: timeUnixNano, severity: severity, message: message, attributes: attributes, span: span, scope: scope) {
            engine.append($0)
        }
    }

    /// The client's append path for a span: `.spanStarted` (or, with `ended`, `.spanEnded`) of `span`.
    package func appendSpan(_ span: borrowing SpanData, ended: Bool, scope: InstrumentationScope) -> AppendOutcome {
        EventCodec.withUnsealedSpan(span, ended: ended, scope: scope) { engine.append($0) }
    }

    /// ``appendSpan(_:ended:scope:)`` of a span's start, keeping a copy of the record in `record` for the span's end
    /// (``appendSpanEnd(startRecord:span:since:)``).
    package func appendSpanStart(_ span: borrowing SpanData, scope: InstrumentationScope, keeping record: inout KeptRecord) -> AppendOutcome {
        EventCodec.withUnsealedSpan(span, ended: false, scope: scope) { bytes in
            record.keep(bytes)
            return engine.append(bytes)
        }
    }

    /// The client's append path for a span's end, from its started record (`EventCodec.withUnsealedSpanEnd`).
    package func appendSpanEnd(startRecord: inout KeptRecord, span: borrowing SpanData, since mark: SpanStartMark) -> AppendOutcome {
        startRecord.withUnsafeBytes { start in
            EventCodec.withUnsealedSpanEnd(startRecord: start, span: span, since: mark) { engine.append($0) }
        }
    }

    /// Counts `count` events that a plugin (a processor, an exporter) dropped for its own `reason`: they show in
    /// ``LogStatistics/dropped`` beside the log's own reasons and are persisted with the other counters (after the
    /// next commit, and at close).
    public func countDrop(_ reason: DropReason, count: UInt64 = 1) {
        engine.counters.countDrop(reason, count)
        if engine.counters.markChanged() { _ = engine.queue.submit(.countersChanged) }
    }

    /// Returns once every event appended before the call is committed (and synced under ``Durability/always``).
    ///
    /// A flush never acknowledges an event that was not stored: when the writer had to drop events appended
    /// since the previous flush completed (a full disk, an I/O error, the quota), it throws and says how many and
    /// why; the drops are counted in ``LogStatistics/dropped`` either way.
    ///
    /// - Returns: the highest sequence that is now durable.
    /// - Throws: ``TelemetryFlowError/Code/closed`` when the log closes first; ``TelemetryFlowError/Code/diskFull``,
    ///   ``TelemetryFlowError/Code/io`` or ``TelemetryFlowError/Code/storage`` when writing failed for longer than
    ///   the quota policy waits; ``TelemetryFlowError/Code/quotaExceeded`` when the quota policy dropped them.
    @discardableResult
    public func flush() async throws -> UInt64 {
        try await engine.flush()
    }

    /// Commits what is queued, syncs, and closes the log. Blocks until the writer thread has finished.
    /// Later appends are dropped with ``DropReason/closed``. Calling it twice is harmless.
    public func close() { engine.close() }

    // MARK: Reading

    /// Reads up to `maxCount` events (and about `maxBytes`) with sequences after `position`.
    ///
    /// Damaged records are skipped and counted; ``EventBatch/endSequence`` tells where to advance past them.
    /// Safe to call from any thread, concurrently with appends.
    ///
    /// With `types`, for a consumer that needs only some (a projection), records of other types are passed over by
    /// their type byte, neither copied nor checksummed, and count towards `maxCount` (``EventBatch/passedOver``).
    /// Damage in a passed-over record goes unnoticed by such a read (a damaged type byte can also make a record
    /// look like another type); readers of every type, the exporters, find it and count it.
    public func read(after position: UInt64, maxCount: Int = 1024, maxBytes: Int = 4 << 20, types: EventTypeSet? = nil) throws -> EventBatch {
        try engine.read(after: position, maxCount: maxCount, maxBytes: maxBytes, types: types)
    }

    /// Suspends until an event after `sequence` is committed (or was dropped, so that reading after `sequence`
    /// moves on) and returns the highest such sequence; returns at once when there already is one. Consumers
    /// sleep here instead of polling ``read(after:maxCount:maxBytes:types:)``.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled; ``TelemetryFlowError/Code/closed`` when
    ///   the log is closed.
    public func waitForCommit(after sequence: UInt64) async throws -> UInt64 {
        try await engine.flushes.commits.wait(after: sequence)
    }

    // MARK: Cursors

    /// Where a new cursor starts.
    public enum CursorStart: Sendable {
        /// Before the first retained event: the consumer receives everything still stored.
        case beginning
        /// After the last queued event: the consumer receives only what comes next.
        case end
    }

    /// All cursors and the sequence each has consumed up to.
    public var cursors: [String: UInt64] { engine.cursorState.withLock { $0 } }

    /// The position of cursor `name`, or nil when there is no such cursor.
    public func cursor(_ name: String) -> UInt64? { engine.cursorState.withLock { $0[name] } }

    /// Creates cursor `name` if it does not exist yet, durably, and returns its position.
    public func registerCursor(_ name: String, startingAt start: CursorStart = .beginning) async throws -> UInt64 {
        if let existing = cursor(name) { return existing }
        let position: UInt64
        switch start {
        case .beginning: position = (engine.firstRetainedSequence ?? (engine.processedSequence + 1)) - 1
        case .end: position = engine.queue.lastQueuedSequence
        }
        try await engine.setCursors([name: position], validate: true)
        return position
    }

    /// Moves cursor `name` to `position` (creating it), durably. Moving forward acknowledges events; moving back
    /// replays them, as far back as the log still retains.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidArgument`` for an empty or over-long name, a position after
    ///   the last committed event, or one before the first retained event.
    public func setCursor(_ name: String, to position: UInt64) async throws {
        try await engine.setCursors([name: position], validate: true)
    }

    /// Deletes cursor `name`; segments it alone was holding become eligible for deletion.
    public func removeCursor(_ name: String) async throws {
        try await engine.setCursors([name: nil], validate: false)
    }

    /// Moves cursor `name` back to the first retained event at or after `timestampUnixNano`, for replay.
    /// Returns the new position.
    public func rewindCursor(_ name: String, toTime timestampUnixNano: UInt64) async throws -> UInt64 {
        let position = try engine.position(beforeTimestamp: timestampUnixNano)
        try await engine.setCursors([name: position], validate: true)
        return position
    }

    // MARK: Status

    /// A snapshot of counters, extent and cursors.
    public var statistics: LogStatistics { engine.statistics() }
}

/// What opening the log found and did.
public struct RecoveryReport: Sendable, Hashable {
    /// Whether the log was created by this open.
    public var created = false
    /// Stale reader slots of dead processes cleared by `mdb_reader_check`.
    public var staleReadersCleared = 0
    /// Records of the active segment whose pages and checksums were verified.
    public var verifiedRecords = 0
    /// Damaged records found and quarantined by this open.
    public var corruptedRecords: UInt64 = 0
    /// Segments that failed validation at open and were rebuilt (the active one) or are read from the records the
    /// page walker recovered (a sealed one), each with what was kept and lost.
    public var salvagedSegments: [String] = []
    /// Segment files older than every known segment, left by an interrupted deletion, and removed.
    public var removedOrphans: [String] = []
    /// Segment files the metadata did not list (it was stale or rebuilt), adopted into the log.
    public var adoptedSegments: [String] = []
    /// Why the metadata was rebuilt and from what, when it was.
    public var metadataRebuilt: String?
    /// Other problems found and handled (missing segments, files that are not files…).
    public var problems: [String] = []
    /// The sequence ranges found lost by this open.
    public var lostRanges: [ClosedRange<UInt64>] = []
    /// The last committed sequence found.
    public var lastSequence: UInt64 = 0
}
