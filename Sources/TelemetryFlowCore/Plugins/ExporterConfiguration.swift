/// One exporter of the pipeline: its instance name, what it is, which signals it sends, and how its worker
/// batches and retries. Settings exist only where they mean something: network settings live in
/// ``OTLPExporterConfiguration``, a file exporter's in ``FileExporterConfiguration``, a third party's in
/// ``Kind/plugin(name:options:)``.
///
/// ```swift
/// let exporters: [ExporterConfiguration] = [
///     .otlp(OTLPExporterConfiguration(endpoint: "http://collector:4317", protocol: .grpc)),
///     .file(FileExporterConfiguration(path: "/var/log/telemetry.jsonl")),
/// ]
/// ```
public struct ExporterConfiguration: Sendable {
    /// What an exporter is.
    public enum Kind: Sendable {
        /// The built-in OTLP exporter (plugin `otlp`).
        case otlp(OTLPExporterConfiguration)
        /// The built-in console exporter (plugin `console`).
        case console(ConsoleExporterConfiguration)
        /// The built-in JSON-lines file exporter (plugin `file`).
        case file(FileExporterConfiguration)
        /// An exporter plugin registered under `name`, with its own settings (the plugin rejects unknown ones).
        case plugin(name: String, options: [String: String])
    }

    /// The instance name: unique among exporters, names the durable cursor `exporter.<name>`.
    public var name: String
    /// What the exporter is and its settings.
    public var kind: Kind
    /// Restrict the exporter to these signals (nil: every signal the plugin accepts).
    public var signals: Set<SignalType>?
    /// Batching and retry behaviour.
    public var policy = ExportPolicy()

    public init(name: String, _ kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// An OTLP exporter (named `otlp` unless told otherwise).
    public static func otlp(_ configuration: OTLPExporterConfiguration = OTLPExporterConfiguration(), name: String = "otlp") -> Self {
        Self(name: name, .otlp(configuration))
    }

    /// A console exporter (named `console` unless told otherwise).
    public static func console(_ configuration: ConsoleExporterConfiguration = ConsoleExporterConfiguration(), name: String = "console") -> Self {
        Self(name: name, .console(configuration))
    }

    /// A file exporter (named `file` unless told otherwise).
    public static func file(_ configuration: FileExporterConfiguration, name: String = "file") -> Self {
        Self(name: name, .file(configuration))
    }

    /// A third party's exporter plugin (the instance is named after the plugin unless told otherwise).
    public static func plugin(name plugin: String, options: [String: String] = [:], instance: String? = nil) -> Self {
        Self(name: instance ?? plugin, .plugin(name: plugin, options: options))
    }

    /// The name of the exporter plugin that builds it: `otlp`, `console`, `file`, or the plugin's.
    public var plugin: String {
        switch kind {
        case .otlp: return "otlp"
        case .console: return "console"
        case .file: return "file"
        case .plugin(let name, _): return name
        }
    }

    /// A third-party plugin's options (empty for the built-in kinds).
    public var options: [String: String] {
        if case .plugin(_, let options) = kind { return options }
        return [:]
    }

    /// The OTLP settings, for an OTLP exporter; setting them makes it one.
    public var otlp: OTLPExporterConfiguration? {
        get {
            if case .otlp(let configuration) = kind { return configuration }
            return nil
        }
        set { if let newValue { kind = .otlp(newValue) } }
    }

    /// Throws ``TelemetryFlowError/Code/invalidConfiguration`` naming any plugin option outside `supported`.
    public func checkOptions(_ supported: Set<String>) throws {
        try rejectUnknownOptions(options, supported: supported, owner: "exporter \"\(name)\" (\(plugin))")
    }
}

/// What an exporter plugin builds an exporter with besides its configuration.
public struct ExporterContext: Sendable {
    /// The exporter's instance name (for messages).
    public var exporterName: String
    /// The resource of the process: every exported batch is attributed to it.
    public var resource: Resource
    /// The registry, for protocols and signal types.
    public var registry: PluginRegistry

    public init(exporterName: String, resource: Resource, registry: PluginRegistry) {
        self.exporterName = exporterName
        self.resource = resource
        self.registry = registry
    }
}

/// The settings of an OTLP exporter: where and how it sends.
public struct OTLPExporterConfiguration: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The base endpoint (`http://host:4318`, `https://collector:4317`); nil: OTLP's default for the protocol
    /// (`http://localhost:4317` for gRPC, `http://localhost:4318` for HTTP).
    public var endpoint: String?
    /// The wire protocol (default ``ExportProtocol/httpProtobuf``).
    public var `protocol`: ExportProtocol
    /// Full per-signal URLs that replace `endpoint` + the signal's default path.
    public var signalEndpoints: [SignalType: String] = [:]
    /// Extra request headers.
    public var headers: [String: String] = [:]
    /// TelemetryFlow API key; when set, the credential headers are added to every request.
    public var credentials: Credentials?
    /// Per-request timeout (default 10 s).
    public var timeout: Duration = .seconds(10)
    /// Request body compression.
    public var compression: Compression = .none
    /// Skip TLS certificate and host verification (only when explicitly asked).
    public var insecure = false
    /// PEM file of the certificate authorities that verify the backend, instead of the system's.
    public var certificateFile: String?
    /// PEM client certificate for mutual TLS; needs ``clientKeyFile``.
    public var clientCertificateFile: String?
    /// PEM private key of ``clientCertificateFile``.
    public var clientKeyFile: String?

    public init(endpoint: String? = nil, protocol: ExportProtocol = .httpProtobuf) {
        self.endpoint = endpoint
        self.protocol = `protocol`
    }

    /// Header values are not shown: they often carry credentials.
    public var description: String {
        let shownHeaders = headers.keys.sorted().map { "\($0): ****" }.joined(separator: ", ")
        return "OTLPExporterConfiguration(endpoint: \(endpoint ?? "default"), protocol: \(`protocol`), signalEndpoints: \(signalEndpoints), "
            + "headers: [\(shownHeaders)], credentials: \(credentials.map { "\($0)" } ?? "none"), timeout: \(timeout), compression: \(compression), "
            + "insecure: \(insecure))"
    }
    public var debugDescription: String { description }
    /// `dump` and the debugger see the header names only.
    public var customMirror: Mirror {
        Mirror(self, children: [
            "endpoint": endpoint as Any, "protocol": `protocol`, "signalEndpoints": signalEndpoints,
            "headers": headers.keys.sorted().map { "\($0): ****" }, "credentials": credentials as Any, "timeout": timeout,
            "compression": compression, "insecure": insecure,
        ])
    }

    /// The headers a request carries: configured ones plus the TelemetryFlow credential headers.
    public var requestHeaders: [String: String] {
        var out = headers
        if let credentials {
            out["X-TelemetryFlow-Key-ID"] = credentials.keyID
            out["X-TelemetryFlow-Key-Secret"] = credentials.keySecret
            out["Authorization"] = "Bearer \(credentials.keyID):\(credentials.keySecret)"
        }
        return out
    }
}

/// The settings of a console exporter: one human-readable line per event.
public struct ConsoleExporterConfiguration: Sendable, Hashable {
    /// Where the lines go.
    public enum Stream: Sendable, Hashable {
        case standardOutput, standardError
    }

    /// Default: standard output.
    public var stream: Stream

    public init(stream: Stream = .standardOutput) { self.stream = stream }
}

/// The settings of a file exporter: JSON lines (OTLP/JSON shapes for spans, logs and metrics) appended to a file
/// that rotates.
public struct FileExporterConfiguration: Sendable, Hashable {
    /// The file written; rotated files get `.1`, `.2`, … appended.
    public var path: String
    /// Size at which the file rotates (default 16 MiB, at least 1024).
    public var maxBytes: Int
    /// Rotated files kept (default 5, at least 1).
    public var maxFiles: Int
    /// Each batch is on disk (fsync) before it counts as exported (default true).
    public var fsync: Bool

    public init(path: String, maxBytes: Int = 16 << 20, maxFiles: Int = 5, fsync: Bool = true) {
        self.path = path
        self.maxBytes = maxBytes
        self.maxFiles = maxFiles
        self.fsync = fsync
    }
}
