/// A named kind of telemetry: the built-in metrics, logs and traces, or a custom signal of a plugin's.
///
/// Signal types are a struct rather than an enum so that plugins can add their own without a breaking change.
public struct SignalType: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The signal's name: lowercase letters, digits, `.`, `_` and `-`, starting with a letter.
    public let name: String

    /// Metric measurements and collected metric points.
    public static let metrics = SignalType(uncheckedName: "metrics")
    /// Log records.
    public static let logs = SignalType(uncheckedName: "logs")
    /// Spans.
    public static let traces = SignalType(uncheckedName: "traces")

    /// The built-in signal types.
    public static let builtIn: [SignalType] = [.metrics, .logs, .traces]

    init(uncheckedName: String) { self.name = uncheckedName }

    /// A custom signal type.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidArgument`` when `name` is empty, longer than 64 bytes or has
    ///   characters outside `[a-z0-9._-]`, or does not start with a letter.
    public init(_ name: String) throws {
        let utf8 = Array(name.utf8)
        let valid = !utf8.isEmpty && utf8.count <= 64 && (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(utf8[0])
            && utf8.allSatisfy { c in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
            }
        guard valid else {
            throw TelemetryFlowError(
                .invalidArgument,
                "signal type name \"\(name)\" is invalid: use 1–64 characters from [a-z0-9._-], starting with a letter"
            )
        }
        self.name = name
    }

    public var description: String { name }
    public static func < (lhs: SignalType, rhs: SignalType) -> Bool { lhs.name < rhs.name }
}
