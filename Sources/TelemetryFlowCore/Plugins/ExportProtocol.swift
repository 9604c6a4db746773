/// A wire protocol an exporter speaks, by its registered name: `grpc`, `http/protobuf`, `http/json`, or a
/// third party's (``init(_:)``). A struct, so that new protocols are not a breaking change.
public struct ExportProtocol: Hashable, Sendable, CustomStringConvertible {
    /// The name the protocol plugin is registered under (`ProtocolPlugin.name`).
    public let name: String

    /// A protocol by name; the registry must hold a protocol plugin of that name when the exporter is built.
    public init(_ name: String) { self.name = name }

    /// OTLP over gRPC (HTTP/2, `application/grpc`).
    public static let grpc = ExportProtocol("grpc")
    /// OTLP over HTTP with protobuf bodies.
    public static let httpProtobuf = ExportProtocol("http/protobuf")
    /// OTLP over HTTP with JSON bodies.
    public static let httpJSON = ExportProtocol("http/json")

    /// The three OTLP protocols.
    public static let otlp: [ExportProtocol] = [.grpc, .httpProtobuf, .httpJSON]

    /// Parses `grpc`, `http/protobuf` or `http/json` (the values of `OTEL_EXPORTER_OTLP_PROTOCOL`).
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` for anything else.
    public init(parsing text: String) throws {
        let name = text.trimmingWhitespace().lowercased()
        guard let known = Self.otlp.first(where: { $0.name == name }) else {
            throw TelemetryFlowError(.invalidConfiguration, "protocol \"\(text)\" is not supported: use grpc, http/protobuf or http/json")
        }
        self = known
    }

    public var description: String { name }
}
