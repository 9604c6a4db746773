public import TelemetryFlowCore
public import TelemetryFlowStorage

/// Fills a ``TelemetryFlow/Configuration`` with the TelemetryFlow SDKs' names. Calls are kept in order and
/// applied after the environment (unless ``withoutEnvironment()``), so an explicit call always wins:
/// explicit call > `TELEMETRYFLOW_*` > `OTEL_*` > default. ``build()`` validates everything at once and reports
/// every problem; ``configuration()`` returns the configuration without building a client.
///
/// ```swift
/// let telemetry = try await TelemetryFlowBuilder()
///     .withService("checkout", version: "1.4.2")
///     .withAPIKey("tfk_…", "tfs_…")
///     .withGRPC()
///     .build()
/// ```
public struct TelemetryFlowBuilder: Sendable {
    private var steps: [@Sendable (inout TelemetryFlow.Configuration) throws -> Void] = []
    private var environment: [String: String]?
    private var readsEnvironment = true
    private var registry: PluginRegistry?

    public init() {}

    private func adding(_ step: @escaping @Sendable (inout TelemetryFlow.Configuration) throws -> Void) -> Self {
        var copy = self
        copy.steps.append(step)
        return copy
    }

    /// The OTLP exporter the network calls configure (created when the configuration has none).
    private func otlp(_ change: @escaping @Sendable (inout OTLPExporterConfiguration) throws -> Void) -> Self {
        adding { c in
            if !c.exporters.contains(where: { $0.otlp != nil }) { c.exporters.insert(.otlp(), at: 0) }
            let i = c.exporters.firstIndex { $0.otlp != nil }!
            var otlp = c.exporters[i].otlp!
            try change(&otlp)
            c.exporters[i].otlp = otlp
        }
    }

    private func policy(_ change: @escaping @Sendable (inout ExportPolicy) -> Void) -> Self {
        adding { c in for i in c.exporters.indices { change(&c.exporters[i].policy) } }
    }

    // MARK: Environment

    /// Reads the environment (the default): the explicit calls still win.
    public func withAutoConfiguration() -> Self {
        var copy = self
        copy.readsEnvironment = true
        return copy
    }

    /// Reads these variables instead of the process's (tests, or a configuration of the caller's choosing).
    public func withEnvironment(variables: [String: String]) -> Self {
        var copy = self
        copy.environment = variables
        copy.readsEnvironment = true
        return copy
    }

    /// Ignores the environment: only defaults and explicit calls.
    public func withoutEnvironment() -> Self {
        var copy = self
        copy.readsEnvironment = false
        return copy
    }

    // MARK: Backend and transport

    /// TelemetryFlow credentials (`tfk_…`, `tfs_…`); needed only when the TelemetryFlow backend is the target.
    public func withAPIKey(_ keyID: String, _ keySecret: String) -> Self {
        otlp { $0.credentials = try Credentials(keyID: keyID, keySecret: keySecret) }
    }

    /// The OTLP endpoint (`http://collector:4318`, `https://…:4317`).
    public func withEndpoint(_ endpoint: String) -> Self { otlp { $0.endpoint = endpoint } }
    public func withGRPC() -> Self { withProtocol(.grpc) }
    /// OTLP over HTTP, protobuf bodies (or JSON with `.httpJSON` through ``withProtocol(_:)``).
    public func withHTTP() -> Self { withProtocol(.httpProtobuf) }
    public func withProtocol(_ exportProtocol: ExportProtocol) -> Self { otlp { $0.protocol = exportProtocol } }
    /// Skips TLS verification (only for testing against a self-signed collector).
    public func withInsecure(_ insecure: Bool = true) -> Self { otlp { $0.insecure = insecure } }
    public func withTimeout(_ timeout: Duration) -> Self { otlp { $0.timeout = timeout } }
    public func withCompression(_ compression: Compression) -> Self { otlp { $0.compression = compression } }
    public func withHeaders(_ headers: [String: String]) -> Self { otlp { for (k, v) in headers { $0.headers[k] = v } } }
    /// Send to the TelemetryFlow backend's `/v2/…` paths.
    public func withV2API(_ on: Bool = true) -> Self { adding { $0.useV2API = on } }

    /// Retries: off, or at most `maxRetries` per batch (nil: until accepted), starting at `backoff`.
    public func withRetry(enabled: Bool = true, maxRetries: Int? = nil, backoff: Duration? = nil) -> Self {
        policy { p in
            p.maxRetries = enabled ? maxRetries : 0
            if let backoff {
                p.initialBackoff = backoff
                p.maxBackoff = max(p.maxBackoff, backoff)
            }
        }
    }

    /// How long a batch waits to fill, and how many events it holds.
    public func withBatchSettings(timeout: Duration? = nil, maxSize: Int? = nil) -> Self {
        policy { p in
            if let timeout { p.scheduleDelay = timeout }
            if let maxSize { p.maxBatchCount = maxSize }
        }
    }

    // MARK: Signals

    public func withSignals(metrics: Bool, logs: Bool, traces: Bool) -> Self {
        adding { c in
            c.signals = Set([metrics ? SignalType.metrics : nil, logs ? .logs : nil, traces ? .traces : nil].compactMap { $0 })
        }
    }

    public func withMetricsOnly() -> Self { withSignals(metrics: true, logs: false, traces: false) }
    public func withLogsOnly() -> Self { withSignals(metrics: false, logs: true, traces: false) }
    public func withTracesOnly() -> Self { withSignals(metrics: false, logs: false, traces: true) }

    // MARK: Identity

    public func withService(_ name: String, version: String? = nil) -> Self {
        adding { c in
            c.serviceName = name
            if let version { c.serviceVersion = version }
        }
    }

    public func withServiceNamespace(_ namespace: String) -> Self { adding { $0.serviceNamespace = namespace } }
    public func withEnvironment(_ environment: String) -> Self { adding { $0.environment = environment } }
    public func withCustomAttribute(_ key: String, _ value: AttributeValue) -> Self { adding { $0.resourceAttributes.set(key, value) } }
    public func withCustomAttributes(_ attributes: Attributes) -> Self {
        adding { c in for a in attributes { c.resourceAttributes.set(a.key, a.value) } }
    }
    public func withCollectorID(_ id: String) -> Self { adding { $0.collectorID = id } }
    public func withCollectorName(_ name: String) -> Self { adding { $0.collectorName = name } }
    public func withDatacenter(_ datacenter: String) -> Self { adding { $0.datacenter = datacenter } }

    // MARK: The log

    public func withDataDirectory(_ path: String) -> Self { adding { $0.log.directory = path } }
    public func withDurability(_ durability: Durability) -> Self { adding { $0.log.durability = durability } }
    public func withQuota(_ bytes: UInt64, _ policy: QuotaPolicy = .block) -> Self {
        adding { c in
            c.log.quotaBytes = bytes
            c.log.quotaPolicy = policy
        }
    }

    // MARK: Exporters, processors, sampling, limits

    /// Adds an exporter (by value: `.otlp(…)`, `.console()`, `.file(…)`, `.plugin(name:options:)`).
    public func withExporter(_ exporter: ExporterConfiguration) -> Self { adding { $0.exporters.append(exporter) } }
    /// Replaces the exporters.
    public func withExporters(_ exporters: [ExporterConfiguration]) -> Self { adding { $0.exporters = exporters } }
    /// Adds a processor plugin by name with its options.
    public func withProcessor(_ name: String, options: [String: String] = [:]) -> Self {
        adding { $0.processors.append(.init(name, options: options)) }
    }
    public func withSampler(_ sampler: Sampler) -> Self { adding { $0.sampler = sampler } }
    public func withLimits(_ limits: TelemetryFlow.Limits) -> Self { adding { $0.limits = limits } }
    public func withRateLimit(_ perSecond: Int) -> Self { adding { $0.rateLimit = perSecond } }
    public func withMetricExportInterval(_ interval: Duration) -> Self { adding { $0.metricExportInterval = interval } }
    /// Explicit bucket boundaries for one histogram instrument.
    public func withHistogramBoundaries(_ instrument: String, _ boundaries: [Double]) -> Self {
        adding { $0.metrics.histogramBoundsByInstrument[instrument] = boundaries }
    }
    /// The plugins the client builds exporters and processors from (default: every built-in one).
    public func withRegistry(_ registry: PluginRegistry) -> Self {
        var copy = self
        copy.registry = registry
        return copy
    }

    // MARK: Building

    /// The configuration: defaults, then the environment, then every call in order; validated.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` listing every problem (environment and calls).
    public func configuration() throws -> TelemetryFlow.Configuration {
        var configuration = TelemetryFlow.Configuration()
        var problems = ConfigurationProblems()
        if readsEnvironment {
            problems.check {
                if let environment { try configuration.applyEnvironment(environment) } else { try configuration.applyEnvironment() }
            }
        }
        for step in steps { problems.check { try step(&configuration) } }
        problems.check { try configuration.validate() }
        try problems.throwIfAny()
        return configuration
    }

    /// Builds the client (nothing is exported before `run()` or `start()`).
    public func build() async throws -> TelemetryFlowClient {
        try await TelemetryFlowClient(configuration: configuration(), registry: registry ?? .standard())
    }
}
