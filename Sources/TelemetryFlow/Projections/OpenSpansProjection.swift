public import TelemetryFlowCore
public import TelemetryFlowStorage

/// The spans that were started and not yet ended, folded from `span_started`, `span_event` and `span_ended`
/// events, with the last time recorded for each. Checkpointed (cursor `projection.open_spans`, checkpoint
/// `open_spans`) as it goes, so that after a crash the client finds the spans the crash cut off by reading the
/// checkpoint and the few events after it — never by scanning the log.
public final class OpenSpansProjection: Sendable {
    public static let cursorName = "projection.open_spans"
    public static let checkpointName = "open_spans"

    /// One open span: its `span_started` record (sealed under `sequence`) and the last time recorded for it.
    ///
    /// While its batch is being folded the record is a slice of the batch (most spans end within the same
    /// batch, and are then never copied); at the end of the batch, the records of spans still open are copied
    /// out, so that no batch stays in memory for a long span.
    struct Open: Sendable {
        var started: ArraySlice<UInt8>
        var sequence: UInt64
        var lastTimeUnixNano: UInt64

        /// The record sealed under sequence 0, as the checkpoint stores it.
        var checkpointRecord: [UInt8] {
            var record = Array(started)
            if sequence != 0 { record.withUnsafeMutableBytes { EventCodec.sealChecksum($0, sequence: 0) } }
            return record
        }
    }

    struct Key: Hashable, Sendable {
        var trace: TraceID
        var span: SpanID
    }

    struct State: Sendable {
        var open: [Key: Open] = [:]
        var position: UInt64 = 0
        var checkpointed: UInt64 = 0
    }

    public let log: EventLog
    private let state: Locked<State>
    private let task = Locked<Task<Void, Never>?>(nil)
    private let stopping = SequenceWatch(closedMessage: "the open-spans projection stopped")

    /// Reads the checkpoint and folds the events after it.
    public init(log: EventLog) async throws {
        self.log = log
        var state = State()
        if let saved = try log.checkpoint(Self.checkpointName), let cursor = log.cursor(Self.cursorName) {
            state.open = try Self.decode(saved)
            state.position = cursor
        } else {
            state.position = try await log.registerCursor(Self.cursorName, startingAt: .end)
        }
        state.checkpointed = state.position
        self.state = Locked(state)
        try catchUp()
    }

    /// The spans open now, with the last time recorded for each.
    public var openSpans: [(span: SpanData, scope: InstrumentationScope, lastTimeUnixNano: UInt64)] {
        let open = state.withLock { $0.open }
        return open.values.compactMap { entry in
            guard case .spanStarted(let span, let scope)? = try? EventCodec.decode(Array(entry.started), sequence: entry.sequence).event
            else { return nil }
            return (span, scope, entry.lastTimeUnixNano)
        }.sorted { $0.span.startTimeUnixNano < $1.span.startTimeUnixNano }
    }

    /// Folds every event appended so far that is readable.
    public func catchUp() throws {
        while true {
            let position = state.withLock { $0.position }
            let batch = try log.read(after: position, maxCount: 4096, maxBytes: 8 << 20, types: .spans)
            if batch.endSequence == position { return }
            state.withLock { s in
                var fromBatch: [Key] = []
                for event in batch { Self.fold(event, into: &s.open, fromBatch: &fromBatch) }
                for key in fromBatch where s.open[key] != nil { s.open[key]!.started = ArraySlice(Array(s.open[key]!.started)) }
                s.position = batch.endSequence
            }
        }
    }

    /// The trace and span id of an OTLP `Span` message (fields 1 and 2), without decoding the rest.
    static func key(ofSpan message: ArraySlice<UInt8>) -> Key? {
        var reader = ProtobufReader(message)
        var trace: TraceID?
        var span: SpanID?
        while trace == nil || span == nil, let field = try? reader.next() {
            if field.field == 1 { trace = (try? field.value.asBytes()).flatMap { TraceID(bytes: $0) } }
            if field.field == 2 { span = (try? field.value.asBytes()).flatMap { SpanID(bytes: $0) } }
        }
        guard let trace, let span else { return nil }
        return Key(trace: trace, span: span)
    }

    private static func fold(_ event: StoredEvent, into open: inout [Key: Open], fromBatch: inout [Key]) {
        switch event.type {
        case .spanStarted:
            // The record is kept as stored (the checkpoint re-seals its copy under sequence 0: it lives there, not
            // under its own key); only the ids are read now.
            guard let item = try? event.otlpItem(), let key = key(ofSpan: item.message) else { return }
            open[key] = Open(started: event.record, sequence: event.sequence, lastTimeUnixNano: event.timestampUnixNano)
            fromBatch.append(key)
        case .spanEventAdded:
            guard case .spanEventAdded(let trace, let span, let added)? = try? event.decode() else { return }
            let key = Key(trace: trace, span: span)
            // The event travels with the span if it is cut off: it is added to the stored start record.
            guard var entry = open[key],
                case .spanStarted(var started, let scope)? = try? EventCodec.decode(Array(entry.started), sequence: entry.sequence).event
            else { return }
            started.events.append(added)
            entry.started = EventCodec.encode(.spanStarted(started, scope: scope), timestampUnixNano: started.startTimeUnixNano, sequence: 0)[...]
            entry.sequence = 0
            entry.lastTimeUnixNano = max(entry.lastTimeUnixNano, added.timeUnixNano)
            open[key] = entry
        case .spanEnded:
            guard let item = try? event.otlpItem(), let key = key(ofSpan: item.message) else { return }
            open[key] = nil
        default:
            return
        }
    }

    /// Folds what is committed and stores the state with the cursor, in one metadata transaction.
    public func checkpoint() async throws {
        _ = try await log.flush()
        try catchUp()
        let (position, encoded, changed) = state.withLock { s in (s.position, Self.encode(s.open), s.position != s.checkpointed) }
        guard changed else { return }
        try await log.setCursor(Self.cursorName, to: position, checkpoint: Self.checkpointName, value: encoded)
        state.withLock { $0.checkpointed = max($0.checkpointed, position) }
    }

    /// Folds as the log commits and checkpoints at most once a second, until ``stop()``; then once more.
    func start() {
        task.withLock { task in
            guard task == nil else { return }
            task = Task.detached { [self] in
                var seen = state.withLock { $0.position }
                while stopping.value == 0 {
                    let after = seen
                    let woke = await firstOf([
                        { (try? await self.log.waitForCommit(after: after)) != nil ? .committed : .closed },
                        { (try? await self.stopping.wait(after: 0)) != nil ? .shutdown : .cancelled },
                    ])
                    guard woke == .committed else { break }
                    try? await checkpoint()
                    seen = state.withLock { $0.position }
                    // At most one checkpoint a second; stopping cuts the pause short.
                    let paused = await firstOf([
                        { (try? await Task.sleep(for: .seconds(1))) != nil ? .deadline : .cancelled },
                        { (try? await self.stopping.wait(after: 0)) != nil ? .shutdown : .cancelled },
                    ])
                    if paused != .deadline { break }
                }
                try? await checkpoint()
            }
        }
    }

    func stop() async {
        stopping.publish(1)
        let running = task.withLock { $0 }
        await running?.value
    }

    // MARK: Checkpoint format

    /// Count (u32 LE), then per span: last time (u64 LE), record length (u32 LE), the `span_started` record.
    static func encode(_ open: [Key: Open]) -> [UInt8] {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        u32(UInt32(open.count))
        for entry in open.values {
            withUnsafeBytes(of: entry.lastTimeUnixNano.littleEndian) { out += $0 }
            let record = entry.checkpointRecord
            u32(UInt32(record.count))
            out += record
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) throws -> [Key: Open] {
        var r = bytes[...]
        func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard r.count >= n else { throw TelemetryFlowError(.corruptedRecord, "the open-spans checkpoint is truncated") }
            defer { r = r.dropFirst(n) }
            return r.prefix(n)
        }
        func u64(_ s: ArraySlice<UInt8>) -> UInt64 { s.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        let count = Int(u64(try take(4)))
        var open: [Key: Open] = [:]
        for _ in 0..<count {
            let last = u64(try take(8))
            let length = Int(u64(try take(4)))
            let record = Array(try take(length))
            guard case .spanStarted(let span, _) = try EventCodec.decode(record, sequence: 0).event else {
                throw TelemetryFlowError(.corruptedRecord, "the open-spans checkpoint holds an event that is not a started span")
            }
            open[Key(trace: span.traceID, span: span.spanID)] = Open(started: record[...], sequence: 0, lastTimeUnixNano: last)
        }
        return open
    }
}
