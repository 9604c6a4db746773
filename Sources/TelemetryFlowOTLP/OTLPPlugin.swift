import Glibc
import Synchronization
public import TelemetryFlowCore
import TelemetryFlowTransport

/// Registers the OTLP exporter (`otlp`) and its three protocols (`grpc`, `http/protobuf`, `http/json`).
public struct OTLPPlugin: TelemetryFlowPlugin {
    public init() {}

    public func register(into registry: PluginRegistry) throws {
        try registry.register(exporter: OTLPExporterPlugin())
        for mode in OTLPWire.allCases { try registry.register(protocol: OTLPProtocolPlugin(wire: mode)) }
    }
}

/// The three OTLP wire protocols.
package enum OTLPWire: String, Sendable, CaseIterable {
    case grpc = "grpc"
    case httpProtobuf = "http/protobuf"
    case httpJSON = "http/json"

    /// The default endpoint when none is configured (OTLP's defaults).
    package var defaultEndpoint: String { self == .grpc ? "http://localhost:4317" : "http://localhost:4318" }

    /// `/v1/traces`, `/v1/logs`, `/v1/metrics`.
    package static func httpPath(_ signal: SignalType) -> String { "/v1/\(signal.name)" }

    /// The gRPC method path of the signal's collector service.
    package static func grpcPath(_ signal: SignalType) -> String {
        switch signal {
        case .traces: return "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        case .logs: return "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
        default: return "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        }
    }
}

/// A protocol plugin for one OTLP wire protocol.
package struct OTLPProtocolPlugin: ProtocolPlugin {
    package let wire: OTLPWire
    package var name: String { wire.rawValue }

    package init(wire: OTLPWire) { self.wire = wire }

    package func makeSender(_ configuration: OTLPExporterConfiguration, context: ExporterContext) throws -> any SignalSender {
        try OTLPSender(wire: wire, configuration: configuration, context: context)
    }
}

/// Sends one signal's events as an OTLP export request and maps the answer with ``OTLPResponseRules``.
package final class OTLPSender: SignalSender {
    package let wire: OTLPWire
    package let urls: [SignalType: String]
    package let acceptedSignals: Set<SignalType> = [.traces, .logs, .metrics]
    let client: HTTPClient
    let headers: [(name: String, value: String)]
    let timeout: Duration
    let compression: Compression
    let tls: TLSOptions
    let protobuf: OTLPProtobufEncoder
    let json: OTLPJSONEncoder

    package init(wire: OTLPWire, configuration: OTLPExporterConfiguration, context: ExporterContext) throws {
        self.wire = wire
        let base = try Self.normalize(configuration.endpoint ?? wire.defaultEndpoint, wire: wire, insecure: configuration.insecure, what: "endpoint")
        var urls: [SignalType: String] = [:]
        for signal in [SignalType.traces, .logs, .metrics] {
            if let specific = configuration.signalEndpoints[signal] {
                let url = try Self.normalize(specific, wire: wire, insecure: configuration.insecure, what: "\(signal) endpoint")
                // A per-signal HTTP endpoint is used as is; a gRPC one still names only the server.
                urls[signal] = wire == .grpc ? Self.join(url, OTLPWire.grpcPath(signal)) : url
            } else {
                urls[signal] = Self.join(base, wire == .grpc ? OTLPWire.grpcPath(signal) : OTLPWire.httpPath(signal))
            }
        }
        for signal in configuration.signalEndpoints.keys where !acceptedSignals.contains(signal) {
            throw TelemetryFlowError(.invalidConfiguration, "OTLP has no endpoint for signal \"\(signal)\"")
        }
        self.urls = urls
        for (name, value) in configuration.requestHeaders {
            guard !name.isEmpty, !name.contains(":"), !name.contains("\n"), !value.contains("\n"), !value.contains("\r") else {
                throw TelemetryFlowError(.invalidConfiguration, "header \"\(name)\" is not a valid HTTP header")
            }
        }
        headers = configuration.requestHeaders.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        guard configuration.timeout > .zero else {
            throw TelemetryFlowError(.invalidConfiguration, "exporter \"\(context.exporterName)\": timeout must be positive")
        }
        timeout = configuration.timeout
        compression = configuration.compression
        tls = try Self.tlsOptions(configuration, exporter: context.exporterName)
        protobuf = OTLPProtobufEncoder(resource: context.resource)
        json = OTLPJSONEncoder(resource: context.resource)
        client = try HTTPClient()
        if wire == .grpc && !client.capabilities.supportsHTTP2 {
            throw TelemetryFlowError(.unsupported, "the installed libcurl \(client.capabilities.versionString) has no HTTP/2, which gRPC needs; use http/protobuf")
        }
    }

    static func normalize(_ endpoint: String, wire: OTLPWire, insecure: Bool, what: String) throws -> String {
        let text = endpoint.trimmingWhitespace()
        if text.hasPrefix("http://") || text.hasPrefix("https://") {
            guard text.split(separator: "/", omittingEmptySubsequences: true).count >= 2 else {
                throw TelemetryFlowError(.invalidConfiguration, "OTLP \(what) \"\(endpoint)\" has no host")
            }
            return text
        }
        if wire == .grpc, !text.isEmpty, !text.contains("://") {
            // gRPC endpoints are often given as host:port; TLS unless the exporter is marked insecure.
            return (insecure ? "http://" : "https://") + text
        }
        throw TelemetryFlowError(.invalidConfiguration, "OTLP \(what) \"\(endpoint)\" must start with http:// or https://")
    }

    /// The TLS settings of `configuration`, with every file checked now rather than at the first export.
    static func tlsOptions(_ configuration: OTLPExporterConfiguration, exporter name: String) throws -> TLSOptions {
        let files: [(String, String?)] = [
            ("certificate", configuration.certificateFile), ("client certificate", configuration.clientCertificateFile),
            ("client key", configuration.clientKeyFile),
        ]
        for case let (what, path?) in files {
            guard access(path, R_OK) == 0 else {
                throw TelemetryFlowError(
                    .invalidConfiguration, "exporter \"\(name)\": \(what) file \(path) cannot be read: \(String(cString: strerror(errno)))")
            }
        }
        guard (configuration.clientCertificateFile == nil) == (configuration.clientKeyFile == nil) else {
            throw TelemetryFlowError(.invalidConfiguration, "exporter \"\(name)\": set both the client certificate and the client key, or neither")
        }
        return TLSOptions(
            insecure: configuration.insecure, certificateAuthorityFile: configuration.certificateFile,
            clientCertificateFile: configuration.clientCertificateFile, clientKeyFile: configuration.clientKeyFile)
    }

    static func join(_ base: String, _ path: String) -> String {
        base.hasSuffix("/") ? String(base.dropLast()) + path : base + path
    }

    package func send(_ signal: SignalType, _ batch: EventBatch) async -> ExportResult {
        guard let url = urls[signal] else { return .permanent(reason: "OTLP cannot send signal \"\(signal)\"") }
        let body: [UInt8]
        do {
            guard let encoded = try (wire == .httpJSON ? json.encode(signal, batch) : protobuf.encode(signal, batch)) else { return .success }
            body = encoded.bytes
        } catch {
            return .permanent(reason: "cannot encode the batch: \(error)")
        }
        do {
            switch wire {
            case .grpc:
                let response = try await GRPC.unary(
                    client, url: url, message: body, headers: headers, timeout: timeout, compress: compression == .gzip, tls: tls)
                return OTLPResponseRules.result(grpc: response)
            case .httpProtobuf, .httpJSON:
                var request = HTTPRequest(url: url)
                request.body = compression == .gzip ? try Gzip.compress(body) : body
                request.timeout = timeout
                request.tls = tls
                request.version = url.hasPrefix("https://") ? .http2 : .http1_1
                request.headers = [("Content-Type", wire == .httpJSON ? "application/json" : "application/x-protobuf"), ("User-Agent", "telemetryflow-swift")]
                    + (compression == .gzip ? [("Content-Encoding", "gzip")] : []) + headers
                let response = try await client.send(request)
                return OTLPResponseRules.result(http: response, json: wire == .httpJSON, nowUnixSeconds: Int64(time(nil)))
            }
        } catch {
            return OTLPResponseRules.result(transport: error)
        }
    }

    package func shutdown() async { client.shutdown() }
}

/// The `otlp` exporter plugin: sends traces, logs and metrics through the protocol named in the configuration
/// (default `http/protobuf`), looked up in the registry.
public struct OTLPExporterPlugin: ExporterPlugin {
    public let name = "otlp"
    public init() {}

    public func makeExporter(_ configuration: ExporterConfiguration, context: ExporterContext) throws -> any TelemetryExporter {
        guard let otlp = configuration.otlp else {
            throw TelemetryFlowError(.invalidConfiguration, "exporter \"\(configuration.name)\": the otlp plugin needs an .otlp(…) configuration")
        }
        let sender = try context.registry.protocolPlugin(named: otlp.protocol.name).makeSender(otlp, context: context)
        let signals = configuration.signals ?? sender.acceptedSignals
        let unsupported = signals.subtracting(sender.acceptedSignals)
        guard unsupported.isEmpty else {
            throw TelemetryFlowError(
                .invalidConfiguration, "exporter \"\(configuration.name)\": OTLP cannot send \(unsupported.sorted().map(\.name).joined(separator: ", "))")
        }
        return SignalSenderExporter(sender: sender, acceptedSignals: signals)
    }
}

/// An exporter that sends each signal of a batch through a ``SignalSender``. When one signal fails with a
/// retryable error, the signals already delivered for the same batch are not sent again on the retry.
package final class SignalSenderExporter: TelemetryExporter {
    package let sender: any SignalSender
    package let acceptedSignals: Set<SignalType>
    private let delivered = Locked<(end: UInt64, signals: Set<SignalType>)>((0, []))

    package init(sender: any SignalSender, acceptedSignals: Set<SignalType>) {
        self.sender = sender
        self.acceptedSignals = acceptedSignals
    }

    package func export(_ batch: EventBatch) async -> ExportResult {
        var present: Set<SignalType> = []
        for event in batch { if let s = event.type.builtInSignal { present.insert(s) } }
        var succeeded = delivered.withLock { $0.end == batch.endSequence ? $0.signals : [] }
        var results: [ExportResult] = []
        for signal in present.intersection(acceptedSignals).subtracting(succeeded).sorted() {
            let result = await sender.send(signal, batch)
            if case .retryable = result {
                let kept = succeeded
                delivered.withLock { $0 = (batch.endSequence, kept) }
                return result
            }
            if result == .success { succeeded.insert(signal) }
            results.append(result)
        }
        return ExportResult.combine(results)
    }

    package func shutdown() async { await sender.shutdown() }
}
