/// What an exporter answers for one batch. The export worker acts on it (DESIGN.md §5):
///
/// - ``success``: the cursor advances past the batch.
/// - ``partialSuccess(rejected:message:)``: the backend kept the rest; the rejected count is recorded, the batch is
///   never retried and the cursor advances.
/// - ``retryable(reason:retryAfter:)``: the cursor stays; the worker retries with exponential backoff and jitter,
///   waiting at least `retryAfter` when the backend named a delay.
/// - ``permanent(reason:)``: the batch goes to the dead-letter store with the reason and the cursor advances.
public enum ExportResult: Sendable, Hashable, CustomStringConvertible {
    case success
    case partialSuccess(rejected: Int, message: String)
    case retryable(reason: String, retryAfter: Duration? = nil)
    case permanent(reason: String)

    public var description: String {
        switch self {
        case .success: return "success"
        case .partialSuccess(let rejected, let message): return "partial success (\(rejected) rejected: \(message))"
        case .retryable(let reason, let after):
            return "retryable (\(reason))" + (after.map { ", retry after \($0)" } ?? "")
        case .permanent(let reason): return "permanent failure (\(reason))"
        }
    }

    /// Combines the results of sending parts of one batch: the worst one wins (retryable, then permanent, then
    /// partial, then success), rejected counts add up.
    public static func combine(_ results: [ExportResult]) -> ExportResult {
        var rejected = 0
        var messages: [String] = []
        var permanent: ExportResult?
        for result in results {
            switch result {
            case .success: continue
            case .retryable: return result
            case .permanent: if permanent == nil { permanent = result }
            case .partialSuccess(let n, let message):
                rejected += n
                messages.append(message)
            }
        }
        if let permanent { return permanent }
        if !messages.isEmpty { return .partialSuccess(rejected: rejected, message: messages.joined(separator: "; ")) }
        return .success
    }
}

/// A destination for telemetry: receives batches of stored events and answers with an ``ExportResult``.
///
/// The export pipeline gives each exporter its own worker task and durable cursor, so an exporter may take as
/// long as it needs (up to its own timeout) without blocking recording or other exporters. `export` is never
/// called concurrently for one exporter. Events of signals outside ``acceptedSignals`` are skipped before the
/// batch reaches the exporter.
public protocol TelemetryExporter: Sendable {
    /// The signals this exporter sends.
    var acceptedSignals: Set<SignalType> { get }
    /// Sends one batch. Must not throw: every failure is an ``ExportResult``.
    func export(_ batch: EventBatch) async -> ExportResult
    /// Releases connections and files; called once when the pipeline stops.
    func shutdown() async
}

extension TelemetryExporter {
    public func shutdown() async {}
}

/// Request compression for network exporters.
public enum Compression: String, Sendable, Hashable, CaseIterable {
    case none, gzip

    /// Parses `none` or `gzip` (the values of `OTEL_EXPORTER_OTLP_COMPRESSION`).
    public init(parsing text: String) throws {
        guard let value = Compression(rawValue: text.trimmingWhitespace().lowercased()) else {
            throw TelemetryFlowError(.invalidConfiguration, "compression \"\(text)\" is not supported: use none or gzip")
        }
        self = value
    }
}

/// How an export worker batches, retries and gives up. Every field is used by the worker.
public struct ExportPolicy: Sendable, Hashable {
    /// Most events in one batch.
    public var maxBatchCount = 512
    /// Most record bytes in one batch.
    public var maxBatchBytes = 4 << 20
    /// How long a worker waits for a batch to fill before sending what it has.
    public var scheduleDelay: Duration = .milliseconds(200)
    /// First retry delay; each retryable failure doubles it up to ``maxBackoff``.
    public var initialBackoff: Duration = .milliseconds(500)
    /// Longest delay between retries.
    public var maxBackoff: Duration = .seconds(30)
    /// Fraction of each delay that is randomised (0 ... 1), so many processes do not retry in step.
    public var jitter = 0.2
    /// Consecutive retryable failures after which the circuit opens.
    public var breakerThreshold = 5
    /// How long an open circuit waits before one probe batch is sent.
    public var breakerCooldown: Duration = .seconds(30)
    /// Most batches kept in the dead-letter store for this exporter (oldest evicted, counted).
    public var deadLetterMaxBatches = 64
    /// Retries of one batch after which a retryable failure is treated as permanent (the batch goes to the
    /// dead-letter store, from which it can be replayed). nil (default): retry until the backend accepts it,
    /// as long as the disk has room; 0: never retry.
    public var maxRetries: Int?

    public init() {}

    /// Checks every field's range.
    public func validate() throws {
        func fail(_ what: String) throws -> Never { throw TelemetryFlowError(.invalidConfiguration, "export policy: \(what)") }
        if maxBatchCount < 1 { try fail("maxBatchCount must be at least 1 (got \(maxBatchCount))") }
        if maxBatchBytes < 1024 { try fail("maxBatchBytes must be at least 1024 (got \(maxBatchBytes))") }
        if scheduleDelay < .zero { try fail("scheduleDelay must not be negative") }
        if initialBackoff <= .zero || maxBackoff < initialBackoff {
            try fail("initialBackoff must be positive and at most maxBackoff")
        }
        if !(0...1).contains(jitter) { try fail("jitter must be between 0 and 1 (got \(jitter))") }
        if breakerThreshold < 1 { try fail("breakerThreshold must be at least 1") }
        if breakerCooldown < .zero { try fail("breakerCooldown must not be negative") }
        if deadLetterMaxBatches < 1 { try fail("deadLetterMaxBatches must be at least 1") }
        if let maxRetries, maxRetries < 0 { try fail("maxRetries must not be negative (got \(maxRetries))") }
    }
}

/// Throws ``TelemetryFlowError/Code/invalidConfiguration`` naming every key of `options` outside `supported`
/// (`owner` names the plugin in the message). Plugins call it so that no option is silently ignored.
public func rejectUnknownOptions(_ options: [String: String], supported: Set<String>, owner: String) throws {
    let unknown = Set(options.keys).subtracting(supported).sorted()
    guard unknown.isEmpty else {
        let known = supported.isEmpty ? "it takes none" : "it takes " + supported.sorted().joined(separator: ", ")
        throw TelemetryFlowError(
            .invalidConfiguration, "\(owner): unknown option\(unknown.count == 1 ? "" : "s") \(unknown.joined(separator: ", ")); \(known)")
    }
}
