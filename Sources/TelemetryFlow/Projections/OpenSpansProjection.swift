public import TelemetryFlowCore
public import TelemetryFlowStorage

/// The spans that were started and not yet ended, folded from `span_started`, `span_event` and `span_ended`
/// events, with the last time recorded for each. Checkpointed (cursor `projection.open_spans`, checkpoint
/// `open_spans`) as it goes, so that after a crash the client finds the spans the crash cut off by reading the
/// checkpoint and the few events after it — never by scanning the log.
public final class OpenSpansProjection: Sendable {
    public static let cursorName = "projection.open_spans"
    public static let checkpointName = "open_spans"

    /// One open span: its `span_started` record (sealed under `sequence`, copied out of the batch it was read in)
    /// and the last time recorded for it.
    struct Open: Sendable {
        var started: [UInt8]
        var sequence: UInt64
        var lastTimeUnixNano: UInt64

        /// The record sealed under sequence 0, as the checkpoint stores it.
        var checkpointRecord: [UInt8] {
            var record = started
            if sequence != 0 { record.withUnsafeMutableBytes { EventCodec.sealChecksum($0, sequence: 0) } }
            return record
        }
    }

    struct Key: Hashable, Sendable {
        var trace: TraceID
        var span: SpanID

        /// The span id alone (64 random bits; equality still compares both ids): a span is hashed twice as it is
        /// folded, and the hasher's work grows with what it is given.
        func hash(into hasher: inout Hasher) { hasher.combine(span.value) }
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
            guard case .spanStarted(let span, let scope)? = try? EventCodec.decode(entry.started, sequence: entry.sequence).event
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
                Self.fold(batch, into: &s.open)
                s.position = batch.endSequence
            }
        }
    }

    /// Folds one batch. The ids are read in place (no event value, no slice per record); a span started and ended
    /// within the batch — most spans — only passes through `startedHere`; the record of a span still open at the
    /// end of the batch is copied out of it, so that no batch stays in memory for a long span.
    static func fold(_ batch: EventBatch, into open: inout [Key: Open]) {
        var startedHere: [Key: Int] = [:]
        startedHere.reserveCapacity(batch.entries.count / 2)
        /// Moves a span started in this batch into `open` (its record copied out of the batch).
        func keep(_ key: Key, _ index: Int, into open: inout [Key: Open]) {
            let entry = batch.entries[index]
            open[key] = Open(started: Array(batch.storage[entry.start..<entry.end]), sequence: entry.sequence, lastTimeUnixNano: entry.timestamp)
        }
        batch.storage.withUnsafeBytes { storage in
            for index in batch.entries.indices {
                let entry = batch.entries[index]
                switch entry.type {
                case .spanStarted, .spanEnded:
                    guard let key = spanKey(payload: UnsafeRawBufferPointer(rebasing: storage[entry.payloadStart..<entry.payloadEnd])) ?? key(of: batch[index])
                    else { continue }
                    if entry.type == .spanStarted {
                        startedHere[key] = index
                    } else if startedHere.removeValue(forKey: key) == nil {
                        open[key] = nil
                    }
                case .spanEventAdded:
                    guard case .spanEventAdded(let trace, let span, let added)? = try? batch[index].decode() else { continue }
                    let key = Key(trace: trace, span: span)
                    if let started = startedHere.removeValue(forKey: key) { keep(key, started, into: &open) }
                    addEvent(added, to: key, in: &open)
                default:
                    continue
                }
            }
        }
        for (key, index) in startedHere { keep(key, index, into: &open) }
    }

    /// The ids of a `span_started` or `span_ended` event, through its OTLP item (the general path).
    private static func key(of event: StoredEvent) -> Key? {
        guard let item = try? event.otlpItem() else { return nil }
        return key(ofSpan: item.message)
    }

    /// The ids of a span record's payload read in place: the scope's name and version (each a length, then the
    /// bytes), then the OTLP `Span` message, which the codec begins with field 1 (16 bytes) and field 2 (8 bytes).
    /// Nil for any other layout (a length of more than one byte, fields in another order), which ``key(of:)`` reads.
    @inline(__always)
    static func spanKey(payload: UnsafeRawBufferPointer) -> Key? {
        var index = 0
        for _ in 0..<2 {
            guard index < payload.count, payload[index] < 0x80 else { return nil }
            index += 1 + Int(payload[index])
        }
        guard payload.count - index >= 28, payload[index] == 0x0A, payload[index + 1] == 16, payload[index + 18] == 0x12,
            payload[index + 19] == 8
        else { return nil }
        func word(_ offset: Int) -> UInt64 { UInt64(bigEndian: payload.loadUnaligned(fromByteOffset: index + offset, as: UInt64.self)) }
        return Key(trace: TraceID(high: word(2), low: word(10)), span: SpanID(word(20)))
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

    /// Adds an event to an open span's stored start record, so that it travels with the span if it is cut off.
    private static func addEvent(_ added: SpanEvent, to key: Key, in open: inout [Key: Open]) {
        guard var entry = open[key],
            case .spanStarted(var started, let scope)? = try? EventCodec.decode(entry.started, sequence: entry.sequence).event
        else { return }
        started.events.append(added)
        entry.started = EventCodec.encode(.spanStarted(started, scope: scope), timestampUnixNano: started.startTimeUnixNano, sequence: 0)
        entry.sequence = 0
        entry.lastTimeUnixNano = max(entry.lastTimeUnixNano, added.timeUnixNano)
        open[key] = entry
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
            open[Key(trace: span.traceID, span: span.spanID)] = Open(started: record, sequence: 0, lastTimeUnixNano: last)
        }
        return open
    }
}
