public import TelemetryFlowCore

extension ExporterConfiguration {
    /// An `otlp` exporter configured from the standard OpenTelemetry variables and TelemetryFlow's:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `OTEL_EXPORTER_OTLP_ENDPOINT` (or `TELEMETRYFLOW_ENDPOINT`) | base endpoint |
    /// | `OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_ENDPOINT` | per-signal endpoint |
    /// | `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc`, `http/protobuf` (default), `http/json` |
    /// | `OTEL_EXPORTER_OTLP_HEADERS` | `key=value,key2=value2` (values percent-decoded) |
    /// | `OTEL_EXPORTER_OTLP_COMPRESSION` | `none` or `gzip` |
    /// | `OTEL_EXPORTER_OTLP_TIMEOUT` | milliseconds |
    /// | `OTEL_EXPORTER_OTLP_INSECURE` | `true` to skip TLS verification |
    /// | `OTEL_EXPORTER_OTLP_CERTIFICATE` | PEM file of the CAs that verify the backend |
    /// | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY` | PEM files for mutual TLS |
    /// | `TELEMETRYFLOW_API_KEY_ID`, `TELEMETRYFLOW_API_KEY_SECRET` | credentials (`tfk_…`, `tfs_…`) |
    ///
    /// Returns nil when no endpoint variable is set. The resource comes from ``Resource/fromEnvironment(_:)``.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` or ``TelemetryFlowError/Code/invalidCredentials``
    ///   naming the variable that is wrong.
    public static func otlpFromEnvironment(_ env: [String: String], name: String = "otlp") throws -> ExporterConfiguration? {
        func value(_ key: String) -> String? {
            guard let v = env[key]?.trimmingWhitespace(), !v.isEmpty else { return nil }
            return v
        }
        let signalKeys: [(SignalType, String)] = [(.traces, "TRACES"), (.logs, "LOGS"), (.metrics, "METRICS")]
        let base = value("OTEL_EXPORTER_OTLP_ENDPOINT") ?? value("TELEMETRYFLOW_ENDPOINT")
        let perSignal = signalKeys.compactMap { signal, key in value("OTEL_EXPORTER_OTLP_\(key)_ENDPOINT").map { (signal, $0) } }
        guard base != nil || !perSignal.isEmpty else { return nil }
        var c = OTLPExporterConfiguration(endpoint: base)
        c.signalEndpoints = Dictionary(uniqueKeysWithValues: perSignal)
        if let protocolName = value("OTEL_EXPORTER_OTLP_PROTOCOL") {
            do {
                c.protocol = try ExportProtocol(parsing: protocolName)
            } catch {
                throw TelemetryFlowError(.invalidConfiguration, "OTEL_EXPORTER_OTLP_PROTOCOL=\(protocolName): use grpc, http/protobuf or http/json")
            }
        }
        if let headers = value("OTEL_EXPORTER_OTLP_HEADERS") { c.headers = try parseKeyValues(headers, variable: "OTEL_EXPORTER_OTLP_HEADERS") }
        if let compression = value("OTEL_EXPORTER_OTLP_COMPRESSION") { c.compression = try Compression(parsing: compression) }
        if let timeout = value("OTEL_EXPORTER_OTLP_TIMEOUT") {
            guard let ms = Int(timeout), ms > 0 else {
                throw TelemetryFlowError(.invalidConfiguration, "OTEL_EXPORTER_OTLP_TIMEOUT=\(timeout): use a positive number of milliseconds")
            }
            c.timeout = .milliseconds(ms)
        }
        if let insecure = value("OTEL_EXPORTER_OTLP_INSECURE") {
            guard ["true", "false"].contains(insecure.lowercased()) else {
                throw TelemetryFlowError(.invalidConfiguration, "OTEL_EXPORTER_OTLP_INSECURE=\(insecure): use true or false")
            }
            c.insecure = insecure.lowercased() == "true"
        }
        c.certificateFile = value("OTEL_EXPORTER_OTLP_CERTIFICATE")
        c.clientCertificateFile = value("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE")
        c.clientKeyFile = value("OTEL_EXPORTER_OTLP_CLIENT_KEY")
        switch (value("TELEMETRYFLOW_API_KEY_ID"), value("TELEMETRYFLOW_API_KEY_SECRET")) {
        case (let id?, let secret?): c.credentials = try Credentials(keyID: id, keySecret: secret)
        case (nil, nil): break
        default:
            throw TelemetryFlowError(.invalidCredentials, "set both TELEMETRYFLOW_API_KEY_ID and TELEMETRYFLOW_API_KEY_SECRET, or neither")
        }
        var exporter = ExporterConfiguration.otlp(c, name: name)
        if base == nil { exporter.signals = Set(perSignal.map(\.0)) }
        return exporter
    }

    /// Parses the W3C-baggage-like `key=value,key2=value2` lists of the OTEL variables.
    static func parseKeyValues(_ text: String, variable: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            let key = parts.first.map { String($0).percentDecoded.trimmingWhitespace() } ?? ""
            guard parts.count == 2, !key.isEmpty else {
                throw TelemetryFlowError(.invalidConfiguration, "\(variable): \"\(item)\" is not key=value")
            }
            out[key] = String(parts[1]).percentDecoded.trimmingWhitespace()
        }
        return out
    }
}

extension Resource {
    /// The resource of the process from `OTEL_RESOURCE_ATTRIBUTES` (`key=value,…`, values percent-decoded) and
    /// `OTEL_SERVICE_NAME` (or `TELEMETRYFLOW_SERVICE_NAME`, which wins over `service.name` in the attributes),
    /// plus `telemetry.sdk.name` and `telemetry.sdk.language`. Without a service name it is
    /// `unknown_service:swift`, as OpenTelemetry specifies.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` naming a malformed variable.
    public static func fromEnvironment(_ env: [String: String]) throws -> Resource {
        func value(_ key: String) -> String? {
            guard let v = env[key]?.trimmingWhitespace(), !v.isEmpty else { return nil }
            return v
        }
        var resource = Attributes()
        if let attributes = value("OTEL_RESOURCE_ATTRIBUTES") {
            let pairs = try ExporterConfiguration.parseKeyValues(attributes, variable: "OTEL_RESOURCE_ATTRIBUTES")
            for (k, v) in pairs.sorted(by: { $0.key < $1.key }) { resource.set(k, .string(v)) }
        }
        let service = value("OTEL_SERVICE_NAME") ?? value("TELEMETRYFLOW_SERVICE_NAME") ?? resource["service.name"]?.description
        resource.set("service.name", .string(service ?? "unknown_service:swift"))
        resource.set("telemetry.sdk.name", "telemetryflow-swift")
        resource.set("telemetry.sdk.language", "swift")
        return Resource(attributes: resource)
    }
}
