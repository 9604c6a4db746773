import TelemetryFlowCore

/// When a committed batch is also forced to disk.
public enum Durability: Sendable, Hashable, CustomStringConvertible {
    /// fsync before a commit counts as durable: nothing acknowledged is lost even on power loss.
    case always
    /// Commits are written at once and synced every `milliseconds` (and each sealed segment once sealed) by a
    /// background thread, so appends never wait for the disk: a power loss can lose that window.
    case interval(milliseconds: Int)
    /// Never synced by the engine (the kernel writes back on its own schedule).
    case never

    public var description: String {
        switch self {
        case .always: return "always"
        case .interval(let ms): return "interval(\(ms)ms)"
        case .never: return "never"
        }
    }

    /// Parses `always`, `never`, `interval` (1000 ms) or `interval(250)` / `interval:250`.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` for anything else.
    public init(parsing text: String) throws {
        let t = text.lowercased().trimmingSpaces
        if t == "always" { self = .always; return }
        if t == "never" { self = .never; return }
        if t == "interval" { self = .interval(milliseconds: 1000); return }
        for (open, close) in [("interval(", ")"), ("interval:", "")] where t.hasPrefix(open) && t.hasSuffix(close) {
            let digits = t.dropFirst(open.count).dropLast(close.count).replacingMs
            if let ms = Int(digits), ms > 0 { self = .interval(milliseconds: ms); return }
        }
        throw TelemetryFlowError(
            .invalidConfiguration,
            "durability \"\(text)\" is not valid; use always, never, interval or interval(<milliseconds>)")
    }
}

extension String {
    var trimmingSpaces: String { String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed()) }
}

extension Substring {
    var replacingMs: Substring { hasSuffix("ms") ? dropLast(2) : self }
}

/// What happens when the disk quota is reached.
public enum QuotaPolicy: Sendable, Hashable, CustomStringConvertible {
    /// Backpressure: the writer stops draining the queue and producers wait (bounded by
    /// ``LogConfiguration/blockTimeoutMilliseconds``); what still does not fit is dropped and counted.
    case block
    /// Delete the oldest segment, even if a consumer has not read it; its events are counted as dropped.
    case dropOldest
    /// Refuse new events until consumers free space; each refused event is counted as dropped.
    case dropNewest

    public var description: String {
        switch self {
        case .block: return "block"
        case .dropOldest: return "drop_oldest"
        case .dropNewest: return "drop_newest"
        }
    }

    /// Parses `block`, `drop_oldest` or `drop_newest`.
    public init(parsing text: String) throws {
        switch text.lowercased().replacingOccurrencesOfDash {
        case "block": self = .block
        case "drop_oldest": self = .dropOldest
        case "drop_newest": self = .dropNewest
        default:
            throw TelemetryFlowError(
                .invalidConfiguration, "quota policy \"\(text)\" is not valid; use block, drop_oldest or drop_newest")
        }
    }
}

extension String {
    var replacingOccurrencesOfDash: String { String(map { $0 == "-" ? "_" : $0 }) }
}

/// What happens when the in-memory append queue is full (the writer is behind).
public enum QueuePolicy: Sendable, Hashable {
    /// The producer waits up to ``LogConfiguration/blockTimeoutMilliseconds``, then the event is dropped and counted.
    case block
    /// The event is dropped and counted at once.
    case dropNewest
}

/// Settings of an ``EventLog``. Every value is validated by ``validate()``, which ``EventLog/open(_:)`` calls.
public struct LogConfiguration: Sendable, Hashable {
    /// The directory holding the log; created if missing.
    public var directory: String
    /// When commits are synced to disk. Default ``Durability/interval(milliseconds:)`` 1000.
    public var durability: Durability = .interval(milliseconds: 1000)
    /// Bytes after which the active segment is sealed and a new one started. Default 64 MiB; minimum 1 MiB.
    public var segmentSize: Int = 64 << 20
    /// Most bytes the log may use on disk. Default 1 GiB; at least twice ``segmentSize``.
    public var quotaBytes: UInt64 = 1 << 30
    /// What happens when the quota is reached. Default ``QuotaPolicy/block``.
    public var quotaPolicy: QuotaPolicy = .block
    /// Bytes the in-memory append queue may hold before ``queuePolicy`` applies. Default 8 MiB; 64 KiB to
    /// 1 GiB (two buffers of this size are allocated when the log opens).
    public var queueCapacityBytes: Int = 8 << 20
    /// What happens when the queue is full. Default ``QueuePolicy/block``.
    public var queuePolicy: QueuePolicy = .block
    /// The longest a producer or a stalled batch waits under a blocking policy before the event is dropped.
    /// Default 1000 ms.
    public var blockTimeoutMilliseconds: Int = 1000
    /// The largest single record accepted; larger events are dropped and counted. Default (nil): the smallest
    /// of 4 MiB, ``queueCapacityBytes`` and a quarter of ``segmentSize``.
    public var maxRecordBytes: Int?

    /// ``maxRecordBytes`` or its default.
    public var effectiveMaxRecordBytes: Int { maxRecordBytes ?? min(4 << 20, queueCapacityBytes, segmentSize / 4) }
    /// How long sealed segments are kept after every consumer has passed them, for replay. Default 0 (delete
    /// as soon as consumed). With no consumer registered, segments are kept for this long after sealing.
    public var retentionSeconds: Double = 0

    public init(directory: String) { self.directory = directory }

    /// Checks every value.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` naming the first value out of range.
    public func validate() throws {
        func fail(_ message: String) -> TelemetryFlowError { TelemetryFlowError(.invalidConfiguration, message) }
        guard !directory.isEmpty else { throw fail("log directory is empty; give a path for the log") }
        if case .interval(let ms) = durability, ms <= 0 {
            throw fail("durability interval is \(ms) ms; use a positive number of milliseconds")
        }
        guard segmentSize >= 1 << 20 else { throw fail("segmentSize is \(segmentSize) bytes; use at least 1 MiB (1048576)") }
        guard quotaBytes >= 2 * UInt64(segmentSize) else {
            throw fail("quotaBytes is \(quotaBytes); use at least twice segmentSize (\(2 * segmentSize))")
        }
        guard queueCapacityBytes >= 64 << 10, queueCapacityBytes <= 1 << 30 else {
            throw fail("queueCapacityBytes is \(queueCapacityBytes); use 64 KiB (65536) to 1 GiB (1073741824)")
        }
        guard blockTimeoutMilliseconds >= 0 else {
            throw fail("blockTimeoutMilliseconds is \(blockTimeoutMilliseconds); use 0 or more")
        }
        let maxRecordBytes = effectiveMaxRecordBytes
        guard maxRecordBytes >= 1024, maxRecordBytes <= min(queueCapacityBytes, segmentSize) else {
            throw fail(
                "maxRecordBytes is \(maxRecordBytes); use 1 KiB to min(queueCapacityBytes, segmentSize) = \(min(queueCapacityBytes, segmentSize))")
        }
        guard retentionSeconds >= 0, retentionSeconds.isFinite else {
            throw fail("retentionSeconds is \(retentionSeconds); use 0 or a positive number of seconds")
        }
    }
}
