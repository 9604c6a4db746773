import Synchronization
public import TelemetryFlowCore
import TelemetryFlowStorage

/// One measurement of an instrument.
public struct RecordMeasurement: Sendable {
    public var measurement: MetricMeasurement
    public var timeUnixNano: UInt64
}

/// One log record.
public struct EmitLog: Sendable {
    public var record: LogRecordData
    public var scope: InstrumentationScope
}

/// A span began (appended so that a span cut off by a crash can still be exported).
public struct StartSpan: Sendable {
    public var span: SpanData
    public var scope: InstrumentationScope
}

/// A span ended: the complete span.
public struct EndSpan: Sendable {
    public var span: SpanData
    public var scope: InstrumentationScope
}

/// An event was added to an open span (so that a span cut off by a crash ends at its last recorded time).
public struct AddSpanEvent: Sendable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var event: SpanEvent
}

/// A record of a registered custom signal type.
public struct RecordCustom: Sendable {
    public var record: CustomSignalRecord
    public var timeUnixNano: UInt64
}

/// The drop reasons of the recording path, beside the log's own (``DropReason``).
extension DropReason {
    /// The span's trace was not sampled.
    public static let sampledOut = try! DropReason("sampled_out")
    /// More calls per second than ``TelemetryFlow/Configuration/rateLimit``.
    public static let rateLimited = try! DropReason("rate_limited")
    /// The call came after ``TelemetryFlowClient/shutdown(timeout:)``.
    public static let afterShutdown = try! DropReason("after_shutdown")
    /// A measurement that its instrument cannot take: NaN or infinite, or negative for a counter.
    public static let invalidMeasurement = try! DropReason("invalid_measurement")
    /// A custom record its signal type's plugin rejected, or of a signal type nobody registered.
    public static let invalidCustomRecord = try! DropReason("invalid_custom_record")
}

/// Dispatches each typed command to its handler — processors, encoding, append — with static dispatch: one
/// overload of ``dispatch(_:)`` per command, no string keys or existential boxes on the path. Handlers never
/// throw and never wait for I/O; what they drop is counted by reason in the log's statistics.
public final class CommandBus: Sendable {
    let log: EventLog
    let processors: ProcessorChain
    let limits: AttributeLimits
    let registry: PluginRegistry
    private let rate: RateLimiter?
    private let open = Atomic<Bool>(true)

    init(log: EventLog, processors: ProcessorChain, limits: AttributeLimits, registry: PluginRegistry, rateLimit: Int?) {
        self.log = log
        self.processors = processors
        self.limits = limits
        self.registry = registry
        self.rate = rateLimit.map { RateLimiter(perSecond: $0) }
    }

    func close() { open.store(false, ordering: .releasing) }

    var isOpen: Bool { open.load(ordering: .acquiring) }

    /// Counts one dropped call under `reason`.
    func drop(_ reason: DropReason) { log.countDrop(reason) }

    @inline(__always)
    private func admit() -> Bool {
        guard open.load(ordering: .relaxed) else {
            drop(.afterShutdown)
            return false
        }
        if let rate, !rate.take() {
            drop(.rateLimited)
            return false
        }
        return true
    }

    @inline(__always)
    private func append(_ event: consuming TelemetryEvent, at time: UInt64) {
        if !processors.processors.isEmpty, case .drop(let reason) = processors.process(&event) {
            drop(reason)
            return
        }
        // A dropped append is counted by the log itself (queue full, quota, too large, closed).
        _ = log.append(event, timestampUnixNano: time)
    }

    private func limited(_ attributes: Attributes) -> (Attributes, UInt32) {
        guard limits.needsApplying(to: attributes) else { return (attributes, 0) }
        let (kept, dropped) = limits.apply(to: attributes)
        return (kept, UInt32(dropped))
    }

    /// An instrument's measurement: straight from its pre-encoded prefix to the log when no processor, rate limit
    /// or attribute limit has work to do; otherwise as a ``RecordMeasurement`` command.
    @inline(__always)
    func record(_ instrument: borrowing InstrumentCore, _ value: MetricValue, _ attributes: borrowing Attributes) {
        guard processors.processors.isEmpty, rate == nil, value.isValid(for: instrument.kind), open.load(ordering: .relaxed),
            !limits.needsApplying(to: attributes)
        else {
            recordCommand(instrument, value, attributes)
            return
        }
        // Stamped by the log's writer as it commits the record (`EventCodec.stampOnCommitFlag`).
        _ = instrument.prefix.withUnsafeBytes { prefix in
            log.appendMeasurement(kind: instrument.kind, prefix: prefix, attributes: attributes, value: value)
        }
    }

    /// ``record(_:_:_:)`` when a processor, the rate limit or an attribute limit has work to do, the value is
    /// invalid or the client is shut down: the ``RecordMeasurement`` command, stamped with the coarse wall clock
    /// (OpenTelemetry points carry their collection's time; a measurement's own time only starts a cumulative
    /// series, where a tick's resolution is enough).
    @inline(never)
    private func recordCommand(_ instrument: borrowing InstrumentCore, _ value: MetricValue, _ attributes: borrowing Attributes) {
        dispatch(RecordMeasurement(
            measurement: MetricMeasurement(
                kind: instrument.kind, name: instrument.name, unit: instrument.unit, scope: instrument.scope, attributes: copy attributes,
                value: value),
            timeUnixNano: coarseWallClockNanos()))
    }

    public func dispatch(_ command: RecordMeasurement) {
        var m = command.measurement
        guard m.value.isValid(for: m.kind) else {
            drop(.invalidMeasurement)
            return
        }
        guard admit() else { return }
        if !m.attributes.isEmpty { m.attributes = limited(m.attributes).0 }
        append(.measurement(m), at: command.timeUnixNano)
    }

    public func dispatch(_ command: EmitLog) {
        guard admit() else { return }
        emit(command.record, scope: command.scope)
    }

    /// The client's log call: straight from its values to the log when no processor or attribute limit has work to
    /// do (no record is built); otherwise as the ``EmitLog`` command of the same record.
    func log(
        _ severity: Severity, _ message: String, _ attributes: consuming Attributes, span: SpanContext?, timeUnixNano: UInt64,
        scope: InstrumentationScope
    ) {
        guard admit() else { return }
        let ids = (span?.traceID ?? .invalid, span?.spanID ?? .invalid, flags: UInt32(span?.traceFlags ?? 0))
        if processors.processors.isEmpty && !limits.needsApplying(to: attributes) {
            _ = log.appendLog(timeUnixNano: timeUnixNano, severity: severity, message: message, attributes: attributes, span: ids, scope: scope)
            return
        }
        emit(
            LogRecordData(
                timeUnixNano: timeUnixNano, observedTimeUnixNano: timeUnixNano, severity: severity, body: .string(message),
                attributes: attributes, flags: ids.flags, traceID: ids.0, spanID: ids.1),
            scope: scope)
    }

    /// The handler of ``EmitLog`` once admitted, for a record given by borrow. Nothing to change: encoded as it is.
    private func emit(_ record: borrowing LogRecordData, scope: borrowing InstrumentationScope) {
        if processors.processors.isEmpty && !limits.needsApplying(to: record.attributes) {
            _ = log.appendLog(record, scope: scope)
            return
        }
        var record = copy record
        if !record.attributes.isEmpty {
            let (kept, dropped) = limited(record.attributes)
            record.attributes = kept
            record.droppedAttributesCount += dropped
        }
        append(.log(record, scope: copy scope), at: record.timeUnixNano)
    }

    /// A span's start: straight from the span's state to the log when no processor has work, a copy of the record
    /// kept in `record` for the span's end; otherwise as a ``StartSpan`` command (`record` left empty).
    func recordStart(span: borrowing SpanData, scope: borrowing InstrumentationScope, keeping record: inout KeptRecord) {
        guard processors.processors.isEmpty else {
            dispatch(StartSpan(span: copy span, scope: copy scope))
            return
        }
        guard admit() else { return }
        _ = log.appendSpanStart(span, scope: scope, keeping: &record)
    }

    /// A span's end: with no processor, the started record (`startRecord`, unless empty) followed by what changed
    /// since (`mark`), or the whole span encoded from its state; otherwise as an ``EndSpan`` command.
    func recordEnd(span: borrowing SpanData, startRecord: inout KeptRecord, since mark: SpanStartMark, scope: borrowing InstrumentationScope) {
        guard processors.processors.isEmpty else {
            dispatch(EndSpan(span: copy span, scope: copy scope))
            return
        }
        guard open.load(ordering: .relaxed) else {
            drop(.afterShutdown)
            return
        }
        if startRecord.isEmpty || mark.attributeReplaced {
            _ = log.appendSpan(span, ended: true, scope: scope)
        } else {
            _ = log.appendSpanEnd(startRecord: &startRecord, span: span, since: mark)
        }
    }

    public func dispatch(_ command: StartSpan) {
        guard admit() else { return }
        if processors.processors.isEmpty {
            _ = log.appendSpan(command.span, ended: false, scope: command.scope)
            return
        }
        append(.spanStarted(command.span, scope: command.scope), at: command.span.startTimeUnixNano)
    }

    /// The span's limits were applied as it was recorded (``Span``); an ended span is never rate-limited, so that
    /// a started span is not left open in the log.
    public func dispatch(_ command: EndSpan) {
        guard open.load(ordering: .relaxed) else {
            drop(.afterShutdown)
            return
        }
        if processors.processors.isEmpty {
            _ = log.appendSpan(command.span, ended: true, scope: command.scope)
            return
        }
        append(.spanEnded(command.span, scope: command.scope), at: command.span.endTimeUnixNano)
    }

    public func dispatch(_ command: AddSpanEvent) {
        guard admit() else { return }
        append(.spanEventAdded(traceID: command.traceID, spanID: command.spanID, event: command.event), at: command.event.timeUnixNano)
    }

    public func dispatch(_ command: RecordCustom) {
        guard admit() else { return }
        var record = command.record
        do {
            try registry.signalType(record.signal).validate(record)
        } catch {
            drop(.invalidCustomRecord)
            return
        }
        if !record.attributes.isEmpty { record.attributes = limited(record.attributes).0 }
        append(.custom(record), at: command.timeUnixNano)
    }
}

/// A token bucket of `perSecond` tokens refilled continuously, holding at most one second's worth.
final class RateLimiter: Sendable {
    private let perSecond: Double
    private let state: Locked<(tokens: Double, at: UInt64)>

    init(perSecond: Int) {
        self.perSecond = Double(perSecond)
        state = Locked((Double(perSecond), monotonicNanos()))
    }

    func take() -> Bool {
        let now = monotonicNanos()
        return state.withLock { s in
            let elapsed = Double(now &- s.at) / 1e9
            s.tokens = min(perSecond, s.tokens + elapsed * perSecond)
            s.at = now
            guard s.tokens >= 1 else { return false }
            s.tokens -= 1
            return true
        }
    }
}
