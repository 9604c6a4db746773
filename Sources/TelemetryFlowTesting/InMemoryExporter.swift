import Synchronization
public import TelemetryFlow

/// An exporter for tests: records every batch it gets and answers a scripted sequence of results (then
/// ``fallback`` once the script is used up). Register it with ``plugin(name:)`` and configure the exporter as
/// `.plugin(name:)` with that name.
///
/// ```swift
/// let exporter = InMemoryExporter(answers: [.retryable(reason: "503"), .success])
/// let registry = PluginRegistry.standard()
/// try registry.register(exporter: exporter.plugin(name: "memory"))
/// ```
public final class InMemoryExporter: TelemetryExporter {
    /// One batch the exporter received.
    public struct Call: Sendable {
        /// The events of the batch, in order.
        public var events: [StoredEvent]
        /// When it arrived: the reading of the exporter's clock (zero without one).
        public var at: Duration
        /// What the exporter answered.
        public var answer: ExportResult

        /// The sequences of the events.
        public var sequences: [UInt64] { events.map(\.sequence) }
    }

    public let acceptedSignals: Set<SignalType>
    /// The answer once the scripted ones are used up.
    public let fallback: ExportResult
    private let state: Locked<(answers: [ExportResult], calls: [Call], shutdowns: Int)>
    private let reading: @Sendable () -> Duration

    /// - Parameters:
    ///   - answers: the results of the first calls, in order.
    ///   - fallback: the result of every later call (default success).
    ///   - signals: the signals it accepts (default every built-in one and every custom one registered).
    ///   - clock: stamps each call's ``Call/at`` (pass the pipeline's manual clock).
    public init(
        answers: [ExportResult] = [], fallback: ExportResult = .success, signals: Set<SignalType> = Set(SignalType.builtIn),
        clock: ManualClock? = nil
    ) {
        acceptedSignals = signals
        self.fallback = fallback
        state = Locked((answers, [], 0))
        let origin = clock?.now
        reading = { clock.map { origin!.duration(to: $0.now) } ?? .zero }
    }

    public func export(_ batch: EventBatch) async -> ExportResult {
        let at = reading()
        return state.withLock { s in
            let answer = s.answers.isEmpty ? fallback : s.answers.removeFirst()
            s.calls.append(Call(events: Array(batch), at: at, answer: answer))
            return answer
        }
    }

    public func shutdown() async { state.withLock { $0.shutdowns += 1 } }

    /// Every batch received so far.
    public var calls: [Call] { state.withLock { $0.calls } }

    /// The sequences of every event received, in order (duplicates included).
    public var receivedSequences: [UInt64] { calls.flatMap(\.sequences) }

    /// How many times the pipeline shut the exporter down.
    public var shutdownCount: Int { state.withLock { $0.shutdowns } }

    /// Adds answers to the end of the script.
    public func script(_ answers: [ExportResult]) { state.withLock { $0.answers += answers } }

    /// An exporter plugin named `name` that hands out this exporter (it takes no options).
    public func plugin(name: String = "memory") -> some ExporterPlugin { InMemoryExporterPlugin(name: name, exporter: self) }
}

struct InMemoryExporterPlugin: ExporterPlugin {
    let name: String
    let exporter: InMemoryExporter

    func makeExporter(_ configuration: ExporterConfiguration, context: ExporterContext) throws -> any TelemetryExporter {
        try configuration.checkOptions([])
        return exporter
    }
}
