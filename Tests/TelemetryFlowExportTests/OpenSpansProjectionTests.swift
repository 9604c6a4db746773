import Foundation
import Testing
@testable import TelemetryFlow
import TelemetryFlowCore
import TelemetryFlowStorage

/// The open-spans projection's fold, on a real log: spans started and ended within one batch or across batches,
/// events added to a span started in the same batch or an earlier one, and records whose layout the in-place id
/// reader does not take (a long scope name) — each folded as the general decoder sees it.
@Suite struct OpenSpansProjectionTests {
    static let scope = InstrumentationScope(name: "open-spans-tests", version: "1.0")
    /// A scope name longer than a one-byte length: its records go through the general path.
    static let longScope = InstrumentationScope(name: String(repeating: "s", count: 200), version: "2.0")

    static func span(_ n: UInt64, start: UInt64) -> SpanData {
        SpanData(
            traceID: TraceID(high: 0xabc, low: n), spanID: SpanID(n), flags: 0x101, name: "span-\(n)", kind: .server,
            startTimeUnixNano: start, attributes: ["n": .int(Int64(bitPattern: n))])
    }

    func started(_ log: EventLog, _ n: UInt64, at time: UInt64, scope: InstrumentationScope = scope) {
        _ = log.append(.spanStarted(Self.span(n, start: time), scope: scope), timestampUnixNano: time)
    }

    func ended(_ log: EventLog, _ n: UInt64, at time: UInt64, scope: InstrumentationScope = scope) {
        var span = Self.span(n, start: time - 10)
        span.endTimeUnixNano = time
        _ = log.append(.spanEnded(span, scope: scope), timestampUnixNano: time)
    }

    func event(_ log: EventLog, _ n: UInt64, at time: UInt64) {
        _ = log.append(
            .spanEventAdded(traceID: TraceID(high: 0xabc, low: n), spanID: SpanID(n), event: SpanEvent(name: "event-\(n)", timeUnixNano: time)),
            timestampUnixNano: time)
    }

    @Test func spansAreOpenUntilTheirEndWithinAndAcrossBatches() async throws {
        let dir = LogDirectory()
        let log = try makeLog(dir.path)
        defer { log.close() }
        let projection = try await OpenSpansProjection(log: log)

        // Batch 1: 1 starts and ends; 2 and 3 start; 4 starts and gets an event; 5 (long scope) starts and ends;
        // 6 (long scope) starts.
        started(log, 1, at: 100)
        started(log, 2, at: 110)
        ended(log, 1, at: 120)
        started(log, 3, at: 130)
        started(log, 4, at: 140)
        event(log, 4, at: 150)
        started(log, 5, at: 160, scope: Self.longScope)
        started(log, 6, at: 170, scope: Self.longScope)
        ended(log, 5, at: 180, scope: Self.longScope)
        _ = try await log.flush()
        try projection.catchUp()
        var open = projection.openSpans
        #expect(open.map(\.span.spanID.value) == [2, 3, 4, 6])
        #expect(open.first { $0.span.spanID.value == 4 }?.span.events.map(\.name) == ["event-4"])
        #expect(open.first { $0.span.spanID.value == 4 }?.lastTimeUnixNano == 150)
        #expect(open.first { $0.span.spanID.value == 6 }?.scope == Self.longScope)

        // Batch 2: 2 ends; 3 gets an event; 6 (long scope) ends; 7 starts.
        ended(log, 2, at: 200)
        event(log, 3, at: 210)
        ended(log, 6, at: 220, scope: Self.longScope)
        started(log, 7, at: 230)
        _ = try await log.flush()
        try projection.catchUp()
        open = projection.openSpans
        #expect(open.map(\.span.spanID.value) == [3, 4, 7])
        #expect(open.first { $0.span.spanID.value == 3 }?.span.events.map(\.name) == ["event-3"])
        #expect(open.first { $0.span.spanID.value == 3 }?.lastTimeUnixNano == 210)

        // The checkpoint holds the same spans after a reopen.
        try await projection.checkpoint()
        let reopened = try await OpenSpansProjection(log: log)
        #expect(reopened.openSpans.map(\.span) == open.map(\.span))
    }

    @Test func theInPlaceIdReaderAgreesWithTheGeneralDecoder() throws {
        for scope in [Self.scope, InstrumentationScope(name: "", version: ""), Self.longScope] {
            for n: UInt64 in [1, 0xffff_ffff_ffff_ffff, 0x0102_0304_0506_0708] {
                var batch = EventBatch(startingAfter: 0)
                batch.append(sequence: 1, event: .spanStarted(Self.span(n, start: 5), scope: scope), timestampUnixNano: 5)
                let event = batch[0]
                let general = OpenSpansProjection.key(ofSpan: try #require(try event.otlpItem()).message)
                #expect(general == OpenSpansProjection.Key(trace: TraceID(high: 0xabc, low: n), span: SpanID(n)))
                let inPlace = event.payload.withUnsafeBytes { OpenSpansProjection.spanKey(payload: $0) }
                // A scope name of 128 bytes or more has a two-byte length: the in-place reader declines it.
                #expect(inPlace == (scope.name.utf8.count < 128 ? general : nil), "\(scope.name.prefix(8)) \(n)")
            }
        }
    }
}
