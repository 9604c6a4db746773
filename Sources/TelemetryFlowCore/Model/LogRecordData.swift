/// OpenTelemetry severity numbers (1–24), grouped in the six named ranges.
public struct Severity: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The OTLP `SeverityNumber`, 0 (unspecified) to 24.
    public let number: UInt8

    /// A severity from its OTLP number.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidArgument`` for numbers above 24.
    public init(number: UInt8) throws {
        guard number <= 24 else {
            throw TelemetryFlowError(.invalidArgument, "severity number \(number) is out of range; use 0–24")
        }
        self.number = number
    }

    init(unchecked number: UInt8) { self.number = number }

    public static let unspecified = Severity(unchecked: 0)
    public static let trace = Severity(unchecked: 1)
    public static let debug = Severity(unchecked: 5)
    public static let info = Severity(unchecked: 9)
    public static let warn = Severity(unchecked: 13)
    public static let error = Severity(unchecked: 17)
    public static let fatal = Severity(unchecked: 21)

    /// The short name OpenTelemetry uses as `severity_text`, e.g. `INFO` or `WARN2`.
    public var text: String { Self.texts[Int(number)] }

    /// Every number's text, built once (a log call reads it).
    private static let texts: [String] = (0...24).map { number in
        guard number > 0 else { return "" }
        let names = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
        let group = (number - 1) / 4
        let step = (number - 1) % 4
        return step == 0 ? names[group] : "\(names[group])\(step + 1)"
    }

    public var description: String { text.isEmpty ? "UNSPECIFIED" : text }
    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.number < rhs.number }
}

/// Everything OTLP knows about a log record. Stored in the log as the OTLP `LogRecord` message.
public struct LogRecordData: Sendable, Hashable {
    public var timeUnixNano: UInt64
    public var observedTimeUnixNano: UInt64
    public var severity: Severity
    public var severityText: String
    public var body: AttributeValue?
    public var attributes: Attributes
    public var droppedAttributesCount: UInt32
    public var flags: UInt32
    public var traceID: TraceID
    public var spanID: SpanID
    public var eventName: String

    /// Inlinable, so that the caller's values are moved in rather than copied.
    @inlinable
    public init(
        timeUnixNano: UInt64, observedTimeUnixNano: UInt64 = 0, severity: Severity, severityText: String? = nil,
        body: AttributeValue?, attributes: Attributes = [:], droppedAttributesCount: UInt32 = 0, flags: UInt32 = 0,
        traceID: TraceID = .invalid, spanID: SpanID = .invalid, eventName: String = ""
    ) {
        self.timeUnixNano = timeUnixNano
        self.observedTimeUnixNano = observedTimeUnixNano
        self.severity = severity
        self.severityText = severityText ?? severity.text
        self.body = body
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
        self.flags = flags
        self.traceID = traceID
        self.spanID = spanID
        self.eventName = eventName
    }
}
