public import TelemetryFlowCore
public import TelemetryFlowStorage

/// The namespace of the client layer's value types: ``TelemetryFlow/Configuration``.
public enum TelemetryFlow {}

extension TelemetryFlow {
    /// Everything a ``TelemetryFlowClient`` is built from, with documented defaults. Fill it directly, through
    /// ``TelemetryFlowBuilder``, or from the environment with ``applyEnvironment(_:)``; ``validate()`` reports
    /// every problem at once. Docs/Configuration.md lists every field with its builder call and variables.
    ///
    /// ```swift
    /// var configuration = TelemetryFlow.Configuration(service: "checkout")
    /// try configuration.applyEnvironment()
    /// configuration.exporters = [.otlp(.init(endpoint: "http://collector:4317", protocol: .grpc))]
    /// ```
    public struct Configuration: Sendable {
        // MARK: Identity (the resource of the process)

        /// `service.name`. Default `unknown_service:swift`, as OpenTelemetry specifies.
        public var serviceName: String
        /// `service.version`.
        public var serviceVersion: String?
        /// `service.namespace`.
        public var serviceNamespace: String?
        /// `deployment.environment.name` (`production`, `staging`, …).
        public var environment: String?
        /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`, `withCustomAttribute`); the fields above win
        /// over the same keys here.
        public var resourceAttributes: Attributes = [:]
        /// `telemetryflow.collector.id`: which TelemetryFlow collector identity this process reports as.
        public var collectorID: String?
        /// `telemetryflow.collector.name`.
        public var collectorName: String?
        /// `cloud.region`-like datacenter label, `telemetryflow.datacenter`.
        public var datacenter: String?

        // MARK: The log

        /// The durable log: directory (default `./.telemetryflow`), durability (default `interval(1000)`), quota
        /// (default 1 GiB, `block`), queue. The client drops (and counts) rather than blocks when the in-memory
        /// queue is full (``LogConfiguration/queuePolicy`` `dropNewest`), so that recording never waits.
        public var log: LogConfiguration

        // MARK: Export

        /// Where telemetry goes. Default: one OTLP exporter (`http/protobuf` to `http://localhost:4318`, or what
        /// `OTEL_EXPORTER_OTLP_*` say).
        public var exporters: [ExporterConfiguration] = [.otlp()]
        /// Which built-in signals are recorded at all. Default: metrics, logs and traces. A disabled signal's
        /// calls are no-ops (not counted as drops).
        public var signals: Set<SignalType> = [.metrics, .logs, .traces]
        /// How often the metrics projection collects and exports aggregated points. Default 60 s
        /// (`OTEL_METRIC_EXPORT_INTERVAL`).
        public var metricExportInterval: Duration = .seconds(60)
        /// Aggregation: temporality, histogram boundaries (per instrument too), cardinality limit.
        public var metrics = MetricAggregationConfiguration()
        /// How long ``TelemetryFlowClient/shutdown(timeout:)`` keeps exporting by default. Default 5 s.
        public var shutdownTimeout: Duration = .seconds(5)
        /// TelemetryFlow backend: send to the `/v2/…` OTLP/HTTP paths instead of `/v1/…`.
        public var useV2API = false

        // MARK: The recording path

        /// Processors run before each append, in order (plugins by name, e.g. `redaction`); the attribute
        /// limits below always run first.
        public var processors: [ProcessorConfiguration] = []
        /// Attribute, event and link limits (`OTEL_ATTRIBUTE_*`, `OTEL_SPAN_*_LIMIT`).
        public var limits = Limits()
        /// What ``TelemetryFlowClient/inject(into:context:)`` and ``TelemetryFlowClient/extract(_:into:)`` carry
        /// (`OTEL_PROPAGATORS`). Default: W3C trace context and baggage; empty: nothing.
        public var propagators: Set<Propagator> = [.traceContext, .baggage]
        /// Which traces are recorded. Default `parentbased_always_on`.
        public var sampler: Sampler = .parentBased(root: .alwaysOn)
        /// Most recording calls per second (token bucket, burst of one second); beyond it calls are dropped and
        /// counted as `rate_limited`. nil (default): no limit.
        public var rateLimit: Int?
        /// false: every call is a no-op and nothing is opened (`OTEL_SDK_DISABLED=true`).
        public var enabled = true

        /// Defaults, with `service` as `service.name` (nil: `unknown_service:swift`).
        public init(service: String? = nil, version: String? = nil) {
            serviceName = service ?? "unknown_service:swift"
            serviceVersion = version
            log = LogConfiguration(directory: "./.telemetryflow")
            log.queuePolicy = .dropNewest
        }

        /// The resource of the process: the resource attributes, then the identity fields over them, then the
        /// SDK's own attributes.
        public var resource: Resource {
            var attributes = resourceAttributes
            attributes.set("service.name", .string(serviceName))
            if let serviceVersion { attributes.set("service.version", .string(serviceVersion)) }
            if let serviceNamespace { attributes.set("service.namespace", .string(serviceNamespace)) }
            if let environment { attributes.set("deployment.environment.name", .string(environment)) }
            if let collectorID { attributes.set("telemetryflow.collector.id", .string(collectorID)) }
            if let collectorName { attributes.set("telemetryflow.collector.name", .string(collectorName)) }
            if let datacenter { attributes.set("telemetryflow.datacenter", .string(datacenter)) }
            attributes.set("telemetry.sdk.name", "telemetryflow-swift")
            attributes.set("telemetry.sdk.language", "swift")
            attributes.set("telemetry.sdk.version", .string(TelemetryFlowClient.version))
            return Resource(attributes: attributes)
        }

        /// The exporters as the pipeline gets them: `/v2/…` paths applied when ``useV2API`` is set.
        public var effectiveExporters: [ExporterConfiguration] {
            guard useV2API else { return exporters }
            return exporters.map { exporter in
                guard var otlp = exporter.otlp, otlp.protocol != .grpc else { return exporter }
                let base = (otlp.endpoint ?? "http://localhost:4318").trimmingSuffix("/")
                for (signal, path) in [(SignalType.traces, "traces"), (.metrics, "metrics"), (.logs, "logs")] where otlp.signalEndpoints[signal] == nil {
                    otlp.signalEndpoints[signal] = base + "/v2/" + path
                }
                var copy = exporter
                copy.otlp = otlp
                return copy
            }
        }

        /// Checks every field and reports every problem in one error.
        ///
        /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` whose message lists each problem on a line.
        public func validate() throws {
            var problems = ConfigurationProblems()
            problems.check { try log.validate() }
            problems.check { try metrics.validate() }
            if serviceName.isEmpty { problems.add("serviceName must not be empty") }
            if metricExportInterval <= .zero { problems.add("metricExportInterval must be positive (got \(metricExportInterval))") }
            if shutdownTimeout < .zero { problems.add("shutdownTimeout must not be negative (got \(shutdownTimeout))") }
            if let rateLimit, rateLimit < 1 { problems.add("rateLimit must be at least 1 call per second (got \(rateLimit))") }
            problems.check { try limits.validate() }
            problems.check { try sampler.validate() }
            var names: Set<String> = []
            for exporter in exporters {
                if !names.insert(exporter.name).inserted { problems.add("exporter name \"\(exporter.name)\" is used twice") }
                problems.check { try exporter.policy.validate() }
                if useV2API, exporter.otlp?.protocol == .grpc {
                    problems.add("useV2API applies to OTLP/HTTP paths; exporter \"\(exporter.name)\" uses gRPC, whose paths have no v2")
                }
            }
            for signal in signals where ![SignalType.metrics, .logs, .traces].contains(signal) {
                problems.add("signals: \(signal) is not a built-in signal (custom signals are always on once registered)")
            }
            try problems.throwIfAny()
        }
    }

    /// A processor by plugin name with its options, as ``Configuration/processors`` lists them.
    public struct ProcessorConfiguration: Sendable, Hashable {
        public var name: String
        public var options: [String: String]
        public init(_ name: String, options: [String: String] = [:]) {
            self.name = name
            self.options = options
        }
        /// The built-in redaction processor: the values of `keys` are replaced everywhere.
        public static func redaction(keys: [String], replacement: String = "[REDACTED]") -> Self {
            Self("redaction", options: ["keys": keys.joined(separator: ","), "replacement": replacement])
        }
    }

    /// OpenTelemetry's limits on what one span or log record carries. Over a limit, attributes, events and links
    /// are dropped (the dropped counts are exported, as OTLP has fields for them) and long values truncated.
    public struct Limits: Sendable, Hashable {
        /// Attributes per span, log record and measurement (`OTEL_ATTRIBUTE_COUNT_LIMIT`). Default 128.
        public var attributeCount = 128
        /// Longest string value, in bytes (`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`). Default nil: no limit.
        public var attributeValueLength: Int?
        /// Attributes per span (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`); nil: ``attributeCount``.
        public var spanAttributeCount: Int?
        /// Longest span attribute value (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`); nil: ``attributeValueLength``.
        public var spanAttributeValueLength: Int?
        /// Events per span (`OTEL_SPAN_EVENT_COUNT_LIMIT`). Default 128.
        public var spanEventCount = 128
        /// Links per span (`OTEL_SPAN_LINK_COUNT_LIMIT`). Default 128.
        public var spanLinkCount = 128
        /// Attributes per span event (`OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`). Default 128.
        public var eventAttributeCount = 128
        /// Attributes per span link (`OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`). Default 128.
        public var linkAttributeCount = 128

        public init() {}

        func validate() throws {
            var problems = ConfigurationProblems()
            for (name, value) in [
                ("attributeCount", attributeCount), ("spanEventCount", spanEventCount), ("spanLinkCount", spanLinkCount),
                ("eventAttributeCount", eventAttributeCount), ("linkAttributeCount", linkAttributeCount),
                ("spanAttributeCount", spanAttributeCount ?? 0), ("attributeValueLength", attributeValueLength ?? 1),
                ("spanAttributeValueLength", spanAttributeValueLength ?? 1),
            ] where value < 0 {
                problems.add("limits.\(name) must not be negative (got \(value))")
            }
            if let length = attributeValueLength, length < 1 { problems.add("limits.attributeValueLength must be at least 1") }
            if let length = spanAttributeValueLength, length < 1 { problems.add("limits.spanAttributeValueLength must be at least 1") }
            try problems.throwIfAny()
        }
    }
}

/// Collects configuration problems so that one error reports them all.
struct ConfigurationProblems {
    private(set) var messages: [String] = []
    /// The code of a lone problem that came with its own (``TelemetryFlowError/Code/invalidCredentials``).
    private var codes: [TelemetryFlowError.Code] = []

    mutating func add(_ message: String, code: TelemetryFlowError.Code = .invalidConfiguration) {
        messages.append(message)
        codes.append(code)
    }

    /// Runs a validation that throws; its message (possibly several lines) is kept.
    mutating func check(_ body: () throws -> Void) {
        do { try body() } catch let error as TelemetryFlowError {
            for line in error.message.split(separator: "\n") where !(line.hasSuffix(" problems:") && line.first?.isNumber == true) {
                add(line.hasPrefix("- ") ? String(line.dropFirst(2)) : String(line), code: error.code)
            }
        } catch {
            add("\(error)")
        }
    }

    func throwIfAny() throws {
        guard !messages.isEmpty else { return }
        throw TelemetryFlowError(
            messages.count == 1 ? codes[0] : .invalidConfiguration,
            messages.count == 1 ? messages[0] : "\(messages.count) problems:\n" + messages.map { "- " + $0 }.joined(separator: "\n"))
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var s = self
        while s.hasSuffix(suffix) && !s.isEmpty { s.removeLast(suffix.count) }
        return s
    }
}
