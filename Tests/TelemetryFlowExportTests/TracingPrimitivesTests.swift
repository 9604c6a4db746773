import CSupport
import Foundation
import ServiceContextModule
import Synchronization
import Testing
@testable import TelemetryFlow
import TelemetryFlowCore

/// The sampler and the id generator the recording path uses.
@Suite struct TracingPrimitivesTests {
    /// The OpenTelemetry specification's reference decisions, written out plainly: a root span of a ratio sampler is
    /// sampled when the low 63 bits of its trace id's low 8 bytes are below `ratio × 2^63`; a parent-based one
    /// follows a valid parent.
    private static func reference(_ sampler: Sampler, _ traceID: TraceID, _ parent: SpanContext?) -> Bool {
        switch sampler {
        case .alwaysOn: return true
        case .alwaysOff: return false
        case .traceIDRatio(let ratio):
            if ratio >= 1 { return true }
            if ratio <= 0 { return false }
            return traceID.low & 0x7FFF_FFFF_FFFF_FFFF < UInt64(ratio * 9_223_372_036_854_775_808.0)
        case .parentBased(let root):
            if let parent, parent.isValid { return parent.isSampled }
            return reference(root, traceID, nil)
        }
    }

    @Test func theCompiledSamplerDecidesAsTheSpecificationsReference() {
        let samplers: [Sampler] = [
            .alwaysOn, .alwaysOff, .traceIDRatio(0), .traceIDRatio(0.25), .traceIDRatio(0.5), .traceIDRatio(1), .traceIDRatio(1.5),
            .parentBased(root: .alwaysOn), .parentBased(root: .alwaysOff), .parentBased(root: .traceIDRatio(0.1)),
            .parentBased(root: .parentBased(root: .traceIDRatio(0.75))),
        ]
        var generator = SystemRandomNumberGenerator()
        var traceIDs = (0..<2000).map { _ in TraceID(high: generator.next(), low: generator.next()) }
        // The edges of the comparison: ids just below and at the bound of 0.25, and the extremes.
        traceIDs += [TraceID(high: 1, low: 0), TraceID(high: 1, low: .max), TraceID(high: 1, low: 1 << 61 - 1), TraceID(high: 1, low: 1 << 61)]
        let parents: [SpanContext?] = [
            nil, SpanContext(traceID: TraceID(high: 1, low: 2), spanID: SpanID(3), traceFlags: 1),
            SpanContext(traceID: TraceID(high: 1, low: 2), spanID: SpanID(3), traceFlags: 0), SpanContext(traceID: .invalid, spanID: .invalid, traceFlags: 1),
        ]
        var sampledOfRatio = 0
        for sampler in samplers {
            let compiled = CompiledSampler(sampler)
            for traceID in traceIDs {
                for parent in parents {
                    let decision = compiled.shouldSample(traceID: traceID, parent: parent)
                    #expect(decision == Self.reference(sampler, traceID, parent), "\(sampler) \(traceID) \(String(describing: parent))")
                    #expect(decision == sampler.shouldSample(traceID: traceID, parent: parent))
                    if sampler == .traceIDRatio(0.25) && parent == nil && decision { sampledOfRatio += 1 }
                }
            }
        }
        #expect((300...700).contains(sampledOfRatio), "about a quarter of 2,004 random trace ids: \(sampledOfRatio)")
    }

    /// Ids from many threads at once never repeat, and none is invalid.
    @Test func idsFromManyThreadsNeverRepeat() async {
        let perTask = 50_000
        let all = await withTaskGroup(of: [UInt64].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var ids: [UInt64] = []
                    ids.reserveCapacity(perTask * 3)
                    for _ in 0..<perTask {
                        let trace = IDGenerator.traceID()
                        ids += [trace.high, trace.low, IDGenerator.spanID().value]
                    }
                    return ids
                }
            }
            var all: [UInt64] = []
            for await ids in group { all += ids }
            return all
        }
        #expect(all.count == 4 * perTask * 3)
        #expect(Set(all).count == all.count)
        #expect(!all.contains(0))
    }

    /// A forked child takes a new seed: the ids it makes next are not the ones its parent makes next.
    @Test func aForkedChildDoesNotRepeatItsParentsIDs() throws {
        _ = tf_random64()
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let pid = fork()
        if pid == 0 {
            var values = (0..<64).map { _ in tf_random64() }
            _ = write(fds[1], &values, 64 * 8)
            _exit(0)
        }
        #expect(pid > 0)
        close(fds[1])
        let parent = (0..<64).map { _ in tf_random64() }
        var child = [UInt64](repeating: 0, count: 64)
        var read = 0
        while read < 64 * 8 {
            let n = child.withUnsafeMutableBytes { Glibc.read(fds[0], $0.baseAddress! + read, 64 * 8 - read) }
            if n <= 0 { break }
            read += n
        }
        close(fds[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(read == 64 * 8)
        #expect(Set(parent).isDisjoint(with: child))
    }

    private static func span(_ id: UInt64) -> TelemetrySpan {
        .nonRecording("s\(id)", context: SpanContext(traceID: TraceID(high: 7, low: id), spanID: SpanID(id)))
    }

    /// The span set in a context as `withSpan` sets it (its dictionary written directly, the layout checked once)
    /// reads back through `ServiceContext`'s own API exactly as one set by the context's setter: on an empty context,
    /// over another span, beside other keys, and without touching a copy taken before.
    @Test func aSpanSetDirectlyInTheContextReadsBackThroughItsOwnAPI() {
        #expect(CurrentSpanStorage.key != nil, "the context is a dictionary: the direct path is taken")
        #expect(CurrentSpanStorage.key?.name == CurrentSpanKey.name)
        let first = Self.span(1), second = Self.span(2)

        let root = ServiceContext.topLevel.settingSpan(first)
        var viaSetter = ServiceContext.topLevel
        viaSetter[CurrentSpanKey.self] = first
        #expect(root.count == 1 && viaSetter.count == 1)
        #expect(root[CurrentSpanKey.self] === first)
        #expect(root.spanContext == first.context)

        // Over a span already set, beside baggage and a remote parent's context: one key replaced, the others kept.
        var base = root
        base.baggage = Baggage(["tenant": "acme"])
        base[SpanContextKey.self] = SpanContext(traceID: TraceID(high: 9, low: 9), spanID: SpanID(9), isRemote: true)
        let child = base.settingSpan(second)
        #expect(child.count == 3)
        #expect(child.span === second)
        #expect(child.spanContext == second.context)
        #expect(child.baggage == Baggage(["tenant": "acme"]))
        #expect(base.span === first, "the base is a value: the copy it was is unchanged")
        #expect(root.count == 1 && root.span === first)

        // A context holding only a remote parent's span context has no local span.
        var remote = ServiceContext.topLevel
        let remoteParent = SpanContext(traceID: TraceID(high: 5, low: 5), spanID: SpanID(5), isRemote: true)
        remote.spanContext = remoteParent
        #expect(remote.span == nil)
        #expect(remote.spanContext == remoteParent)

        // The public setter takes the same path; setting nil removes the key through the context's own setter.
        var set = ServiceContext.topLevel
        set.span = second
        #expect(set.span === second && set.count == 1)
        set.span = nil
        #expect(set.isEmpty)

        // The span is released with the last context that holds it.
        weak var released: TelemetrySpan?
        do {
            let transient = Self.span(3)
            released = transient
            let context = ServiceContext.topLevel.settingSpan(transient)
            #expect(context.span === transient)
        }
        #expect(released == nil)
    }
}
