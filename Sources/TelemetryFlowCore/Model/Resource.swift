/// The entity producing telemetry (service name, version, host…), as OpenTelemetry's `Resource`.
public struct Resource: Sendable, Hashable {
    public var attributes: Attributes

    public init(attributes: Attributes = [:]) { self.attributes = attributes }
}

/// The library or component that recorded a signal, as OpenTelemetry's `InstrumentationScope`.
public struct InstrumentationScope: Sendable, Hashable {
    public var name: String
    public var version: String

    public init(name: String, version: String = "") {
        self.name = name
        self.version = version
    }

    /// The scope used when the caller names none.
    public static let telemetryFlow = InstrumentationScope(name: "telemetryflow-swift")
}
