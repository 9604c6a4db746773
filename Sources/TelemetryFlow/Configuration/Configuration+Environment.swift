import Foundation
import TelemetryFlowCore
import TelemetryFlowStorage

extension TelemetryFlow.Configuration {
    /// Every variable ``applyEnvironment(_:)`` reads. Docs/Configuration.md describes each.
    public static let environmentVariables: [String] = telemetryFlowVariables + openTelemetryVariables

    static let telemetryFlowVariables = [
        "TELEMETRYFLOW_API_KEY_ID", "TELEMETRYFLOW_API_KEY_SECRET", "TELEMETRYFLOW_ENDPOINT", "TELEMETRYFLOW_SERVICE_NAME",
        "TELEMETRYFLOW_SERVICE_VERSION", "TELEMETRYFLOW_SERVICE_NAMESPACE", "TELEMETRYFLOW_ENVIRONMENT", "TELEMETRYFLOW_PROTOCOL",
        "TELEMETRYFLOW_INSECURE", "TELEMETRYFLOW_COMPRESSION", "TELEMETRYFLOW_TIMEOUT", "TELEMETRYFLOW_RETRY_ENABLED",
        "TELEMETRYFLOW_MAX_RETRIES", "TELEMETRYFLOW_RETRY_BACKOFF", "TELEMETRYFLOW_BATCH_TIMEOUT", "TELEMETRYFLOW_BATCH_MAX_SIZE",
        "TELEMETRYFLOW_ENABLE_TRACES", "TELEMETRYFLOW_ENABLE_METRICS", "TELEMETRYFLOW_ENABLE_LOGS", "TELEMETRYFLOW_RATE_LIMIT",
        "TELEMETRYFLOW_COLLECTOR_ID", "TELEMETRYFLOW_COLLECTOR_NAME", "TELEMETRYFLOW_DATACENTER", "TELEMETRYFLOW_USE_V2_API",
        "TELEMETRYFLOW_DATA_DIR", "TELEMETRYFLOW_DURABILITY", "TELEMETRYFLOW_QUOTA_BYTES", "TELEMETRYFLOW_OVERFLOW_POLICY",
    ]

    static let otlpSettings = ["ENDPOINT", "HEADERS", "PROTOCOL", "COMPRESSION", "TIMEOUT", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY", "INSECURE"]

    static let openTelemetryVariables: [String] = [
        "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_PROPAGATORS", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
        "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BLRP_SCHEDULE_DELAY", "OTEL_BLRP_EXPORT_TIMEOUT", "OTEL_BLRP_MAX_QUEUE_SIZE", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_EVENT_COUNT_LIMIT",
        "OTEL_SPAN_LINK_COUNT_LIMIT", "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
    ] + ["", "TRACES_", "METRICS_", "LOGS_"].flatMap { signal in otlpSettings.map { "OTEL_EXPORTER_OTLP_\(signal)\($0)" } }

    /// Applies the environment, with one precedence: `TELEMETRYFLOW_*` over `OTEL_*` over what the configuration
    /// holds (its defaults). Explicit settings made after this call win over both (``TelemetryFlowBuilder``
    /// applies its calls after the environment).
    ///
    /// Every variable is checked and every problem reported in one error: an invalid value names the variable,
    /// the value (never a secret's) and what is accepted; a `TELEMETRYFLOW_*` variable this engine does not know,
    /// or an `OTEL_*` setting it cannot honour (`OTEL_BSP_MAX_QUEUE_SIZE`: the durable log is the queue; a
    /// propagator or exporter it does not have), is an error, never ignored.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` listing every problem.
    public mutating func applyEnvironment() throws {
        try applyEnvironment(ProcessInfo.processInfo.environment)
    }

    /// ``applyEnvironment()`` with the variables given (tests, or an environment of the caller's choosing).
    public mutating func applyEnvironment(_ environment: [String: String]) throws {
        var env = EnvironmentReader(environment)
        apply(&env)
        try env.problems.throwIfAny()
    }

    private mutating func apply(_ env: inout EnvironmentReader) {
        // Unknown names first: a typo must not pass as a default.
        let known = Set(Self.environmentVariables)
        for name in env.names where name.hasPrefix("TELEMETRYFLOW_") && !known.contains(name) {
            env.problems.add("\(name) is not a TelemetryFlow variable (Docs/Configuration.md lists them)")
        }
        for name in env.names where name.hasPrefix("OTEL_") && !known.contains(name) && Self.refusedPrefixes.contains(where: name.hasPrefix) {
            env.problems.add("\(name) is not supported by this engine (Docs/Configuration.md lists the OTEL_* variables it honours)")
        }
        if let disabled = env.bool("OTEL_SDK_DISABLED") { enabled = !disabled }

        // Identity.
        if let attributes = env.string("OTEL_RESOURCE_ATTRIBUTES") {
            if let pairs = env.keyValues(attributes, variable: "OTEL_RESOURCE_ATTRIBUTES") {
                for (k, v) in pairs.sorted(by: { $0.key < $1.key }) {
                    switch k {
                    case "service.name": serviceName = v
                    case "service.version": serviceVersion = v
                    case "service.namespace": serviceNamespace = v
                    case "deployment.environment.name", "deployment.environment": environment = v
                    default: resourceAttributes.set(k, .string(v))
                    }
                }
            }
        }
        if let name = env.string("TELEMETRYFLOW_SERVICE_NAME") ?? env.string("OTEL_SERVICE_NAME") { serviceName = name }
        if let version = env.string("TELEMETRYFLOW_SERVICE_VERSION") { serviceVersion = version }
        if let namespace = env.string("TELEMETRYFLOW_SERVICE_NAMESPACE") { serviceNamespace = namespace }
        if let value = env.string("TELEMETRYFLOW_ENVIRONMENT") ?? env.string("ENV") ?? env.string("ENVIRONMENT") { environment = value }
        if let id = env.string("TELEMETRYFLOW_COLLECTOR_ID") { collectorID = id }
        if let name = env.string("TELEMETRYFLOW_COLLECTOR_NAME") { collectorName = name }
        if let dc = env.string("TELEMETRYFLOW_DATACENTER") { datacenter = dc }

        // The log.
        if let dir = env.string("TELEMETRYFLOW_DATA_DIR") { log.directory = dir }
        if let text = env.string("TELEMETRYFLOW_DURABILITY") {
            if let d = try? Durability(parsing: text) { log.durability = d } else {
                env.problems.add("TELEMETRYFLOW_DURABILITY=\(text): use always, never, interval or interval(<milliseconds>)")
            }
        }
        if let bytes = env.integer("TELEMETRYFLOW_QUOTA_BYTES", atLeast: 1) { log.quotaBytes = UInt64(bytes) }
        if let text = env.string("TELEMETRYFLOW_OVERFLOW_POLICY") {
            if let p = try? QuotaPolicy(parsing: text) { log.quotaPolicy = p } else {
                env.problems.add("TELEMETRYFLOW_OVERFLOW_POLICY=\(text): use block, drop_oldest or drop_newest")
            }
        }

        // Signals.
        for (signal, name) in [(SignalType.traces, "TRACES"), (.metrics, "METRICS"), (.logs, "LOGS")] {
            if let on = env.bool("TELEMETRYFLOW_ENABLE_\(name)") {
                if on { signals.insert(signal) } else { signals.remove(signal) }
            }
        }
        if let limit = env.integer("TELEMETRYFLOW_RATE_LIMIT", atLeast: 1) { rateLimit = limit }
        if let v2 = env.bool("TELEMETRYFLOW_USE_V2_API") { useV2API = v2 }

        // Sampling, limits, metrics.
        if let name = env.string("OTEL_TRACES_SAMPLER") {
            do { sampler = try Sampler(name: name, argument: env.string("OTEL_TRACES_SAMPLER_ARG")) } catch let error as TelemetryFlowError {
                env.problems.add(error.message)
            } catch {}
        } else if env.string("OTEL_TRACES_SAMPLER_ARG") != nil {
            env.problems.add("OTEL_TRACES_SAMPLER_ARG is set without OTEL_TRACES_SAMPLER")
        }
        if let text = env.string("OTEL_PROPAGATORS") {
            var chosen: Set<Propagator> = []
            for name in text.split(separator: ",").map({ String($0).trimmingWhitespace().lowercased() }) {
                if let p = Propagator(rawValue: name) { chosen.insert(p) } else if name != "none" {
                    env.problems.add("OTEL_PROPAGATORS=\(text): \(name) is not supported; use tracecontext, baggage or none")
                }
            }
            propagators = chosen
        }
        if let ms = env.integer("OTEL_METRIC_EXPORT_INTERVAL", atLeast: 1) { metricExportInterval = .milliseconds(ms) }
        if let n = env.integer("OTEL_ATTRIBUTE_COUNT_LIMIT", atLeast: 0) { limits.attributeCount = n }
        if let n = env.integer("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", atLeast: 1) { limits.attributeValueLength = n }
        if let n = env.integer("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", atLeast: 0) { limits.spanAttributeCount = n }
        if let n = env.integer("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", atLeast: 1) { limits.spanAttributeValueLength = n }
        if let n = env.integer("OTEL_SPAN_EVENT_COUNT_LIMIT", atLeast: 0) { limits.spanEventCount = n }
        if let n = env.integer("OTEL_SPAN_LINK_COUNT_LIMIT", atLeast: 0) { limits.spanLinkCount = n }
        if let n = env.integer("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", atLeast: 0) { limits.eventAttributeCount = n }
        if let n = env.integer("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", atLeast: 0) { limits.linkAttributeCount = n }

        applyExporters(&env)
    }

    /// Prefixes of OpenTelemetry variables this engine recognises: an unknown name under one is refused.
    static let refusedPrefixes = [
        "OTEL_EXPORTER_OTLP_", "OTEL_BSP_", "OTEL_BLRP_", "OTEL_TRACES_", "OTEL_METRIC", "OTEL_SPAN_", "OTEL_ATTRIBUTE_",
        "OTEL_LOGS_", "OTEL_EXPORTER_ZIPKIN_", "OTEL_EXPORTER_JAEGER_", "OTEL_EXPORTER_PROMETHEUS_", "OTEL_EVENT_", "OTEL_LINK_",
    ]

    /// The OTLP exporters, their policies and the per-signal exporter choice.
    private mutating func applyExporters(_ env: inout EnvironmentReader) {
        // OTEL_{TRACES,METRICS,LOGS}_EXPORTER: otlp (default), console, none.
        var consoleSignals: Set<SignalType> = []
        for (signal, name) in [(SignalType.traces, "TRACES"), (.metrics, "METRICS"), (.logs, "LOGS")] {
            guard let choice = env.string("OTEL_\(name)_EXPORTER") else { continue }
            let choices = choice.split(separator: ",").map { String($0).trimmingWhitespace().lowercased() }
            for c in choices where !["otlp", "console", "none"].contains(c) {
                env.problems.add("OTEL_\(name)_EXPORTER=\(choice): \(c) is not supported; use otlp, console or none")
            }
            if choices == ["none"] { signals.remove(signal) }
            if choices.contains("console") { consoleSignals.insert(signal) }
            if !choices.contains("otlp") {
                for i in exporters.indices where exporters[i].otlp != nil {
                    exporters[i].signals = (exporters[i].signals ?? [.traces, .metrics, .logs]).subtracting([signal])
                }
            }
        }
        if !consoleSignals.isEmpty && !exporters.contains(where: { $0.plugin == "console" }) {
            var console = ExporterConfiguration.console()
            console.signals = consoleSignals
            exporters.append(console)
        }

        // Batching and retry, for every exporter.
        let bspDelay = env.integer("OTEL_BSP_SCHEDULE_DELAY", atLeast: 0)
        let blrpDelay = env.integer("OTEL_BLRP_SCHEDULE_DELAY", atLeast: 0)
        let bspSize = env.integer("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", atLeast: 1)
        let blrpSize = env.integer("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", atLeast: 1)
        let bspTimeout = env.integer("OTEL_BSP_EXPORT_TIMEOUT", atLeast: 1)
        let blrpTimeout = env.integer("OTEL_BLRP_EXPORT_TIMEOUT", atLeast: 1)
        for (bsp, blrp, what) in [(bspDelay, blrpDelay, "SCHEDULE_DELAY"), (bspSize, blrpSize, "MAX_EXPORT_BATCH_SIZE"), (bspTimeout, blrpTimeout, "EXPORT_TIMEOUT")] {
            if let bsp, let blrp, bsp != blrp {
                env.problems.add("OTEL_BSP_\(what)=\(bsp) and OTEL_BLRP_\(what)=\(blrp) differ: an exporter batches every signal together here, so set one value")
            }
        }
        for name in ["OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BLRP_MAX_QUEUE_SIZE"] where env.string(name) != nil {
            env.problems.add("\(name) cannot be honoured: the durable log is the queue here; size it with TELEMETRYFLOW_QUOTA_BYTES")
        }
        let batchTimeout = env.duration("TELEMETRYFLOW_BATCH_TIMEOUT")
        let batchSize = env.integer("TELEMETRYFLOW_BATCH_MAX_SIZE", atLeast: 1)
        let retryEnabled = env.bool("TELEMETRYFLOW_RETRY_ENABLED")
        let maxRetries = env.integer("TELEMETRYFLOW_MAX_RETRIES", atLeast: 0)
        let backoff = env.duration("TELEMETRYFLOW_RETRY_BACKOFF")
        for i in exporters.indices {
            if let delay = batchTimeout ?? (bspDelay ?? blrpDelay).map({ Duration.milliseconds($0) }) { exporters[i].policy.scheduleDelay = delay }
            if let size = batchSize ?? bspSize ?? blrpSize { exporters[i].policy.maxBatchCount = size }
            if let maxRetries { exporters[i].policy.maxRetries = maxRetries }
            if retryEnabled == false { exporters[i].policy.maxRetries = 0 }
            if let backoff {
                exporters[i].policy.initialBackoff = backoff
                if exporters[i].policy.maxBackoff < backoff { exporters[i].policy.maxBackoff = backoff }
            }
        }

        // OTLP settings: TELEMETRYFLOW_* over OTEL_EXPORTER_OTLP_* over each exporter's own; per-signal
        // OTEL_EXPORTER_OTLP_<SIGNAL>_* settings that differ split the exporter by signal.
        guard let index = exporters.firstIndex(where: { $0.otlp != nil }) else {
            for name in env.names where name.hasPrefix("OTEL_EXPORTER_OTLP_") || ["TELEMETRYFLOW_ENDPOINT", "TELEMETRYFLOW_PROTOCOL"].contains(name) {
                env.problems.add("\(name) is set but the configuration has no OTLP exporter")
            }
            return
        }
        let exporter = exporters[index]
        var base = exporter.otlp!
        applyOTLP(&base, signal: "", env: &env, exportTimeout: bspTimeout ?? blrpTimeout)
        var perSignal: [(SignalType, OTLPExporterConfiguration)] = []
        for (signal, name) in [(SignalType.traces, "TRACES_"), (.metrics, "METRICS_"), (.logs, "LOGS_")] {
            var c = base
            applyOTLP(&c, signal: name, env: &env, exportTimeout: nil)
            perSignal.append((signal, c))
        }
        // Per-signal endpoints are full URLs; other per-signal differences need an exporter of their own.
        func withoutEndpoints(_ c: OTLPExporterConfiguration) -> OTLPExporterConfiguration {
            var c = c
            c.signalEndpoints = [:]
            return c
        }
        let groups = Dictionary(grouping: perSignal, by: { withoutEndpoints($0.1) })
        if groups.count == 1 {
            var merged = base
            for (signal, c) in perSignal { if let url = c.signalEndpoints[signal] { merged.signalEndpoints[signal] = url } }
            exporters[index].otlp = merged
        } else {
            exporters.remove(at: index)
            for (signal, c) in perSignal where exporter.signals?.contains(signal) ?? true {
                var split = exporter
                split.name = exporter.name + "-" + signal.name
                split.otlp = c
                split.signals = [signal]
                exporters.insert(split, at: index)
            }
        }
    }

    private func applyOTLP(_ c: inout OTLPExporterConfiguration, signal: String, env: inout EnvironmentReader, exportTimeout: Int?) {
        let prefix = "OTEL_EXPORTER_OTLP_" + signal
        let isBase = signal.isEmpty
        if isBase {
            let variable = env.string("TELEMETRYFLOW_ENDPOINT") != nil ? "TELEMETRYFLOW_ENDPOINT" : prefix + "ENDPOINT"
            if let endpoint = env.string(variable), let url = env.url(endpoint, variable: variable) { c.endpoint = url }
        } else if let endpoint = env.string(prefix + "ENDPOINT"), let s = SignalType.builtIn(named: signal.dropLast().lowercased()),
            let url = env.url(endpoint, variable: prefix + "ENDPOINT")
        {
            c.signalEndpoints[s] = url
        }
        let protocolVariable = isBase && env.string("TELEMETRYFLOW_PROTOCOL") != nil ? "TELEMETRYFLOW_PROTOCOL" : prefix + "PROTOCOL"
        if let text = env.string(protocolVariable) {
            let name = text.lowercased() == "http" ? "http/protobuf" : text
            if let p = try? ExportProtocol(parsing: name) { c.protocol = p } else {
                env.problems.add("\(protocolVariable)=\(text): use grpc, http/protobuf (or http) or http/json")
            }
        }
        if let headers = env.string(prefix + "HEADERS") {
            if let parsed = env.keyValues(headers, variable: prefix + "HEADERS", secret: true) { for (k, v) in parsed { c.headers[k] = v } }
        }
        let compressionVariable = isBase && env.string("TELEMETRYFLOW_COMPRESSION") != nil ? "TELEMETRYFLOW_COMPRESSION" : prefix + "COMPRESSION"
        if let text = env.string(compressionVariable) {
            if let compression = try? Compression(parsing: text) { c.compression = compression } else {
                env.problems.add("\(compressionVariable)=\(text): use gzip or none")
            }
        }
        if isBase, let timeout = env.duration("TELEMETRYFLOW_TIMEOUT") {
            c.timeout = timeout
        } else if let ms = env.integer(prefix + "TIMEOUT", atLeast: 1) {
            c.timeout = .milliseconds(ms)
        } else if let exportTimeout {
            c.timeout = .milliseconds(exportTimeout)
        }
        let insecureVariable = isBase && env.string("TELEMETRYFLOW_INSECURE") != nil ? "TELEMETRYFLOW_INSECURE" : prefix + "INSECURE"
        if let insecure = env.bool(insecureVariable) { c.insecure = insecure }
        for (suffix, path) in [("CERTIFICATE", \OTLPExporterConfiguration.certificateFile), ("CLIENT_CERTIFICATE", \.clientCertificateFile), ("CLIENT_KEY", \.clientKeyFile)] {
            if let file = env.string(prefix + suffix) {
                if FileManager.default.isReadableFile(atPath: file) { c[keyPath: path] = file } else {
                    env.problems.add("\(prefix + suffix)=\(file): no readable file there")
                }
            }
        }
        if isBase {
            switch (env.string("TELEMETRYFLOW_API_KEY_ID"), env.string("TELEMETRYFLOW_API_KEY_SECRET")) {
            case (let id?, let secret?):
                do { c.credentials = try Credentials(keyID: id, keySecret: secret) } catch let error as TelemetryFlowError {
                    env.problems.add("TELEMETRYFLOW_API_KEY_ID / TELEMETRYFLOW_API_KEY_SECRET: \(error.message)", code: error.code)
                } catch {}
            case (nil, nil): break
            default: env.problems.add("set both TELEMETRYFLOW_API_KEY_ID and TELEMETRYFLOW_API_KEY_SECRET, or neither", code: .invalidCredentials)
            }
        }
    }
}

extension SignalType {
    static func builtIn(named name: String) -> SignalType? {
        [SignalType.traces, .metrics, .logs].first { $0.name == name }
    }
}

/// Reads variables and keeps every problem (values of secrets are never repeated in a message).
struct EnvironmentReader {
    let values: [String: String]
    var problems = ConfigurationProblems()

    init(_ values: [String: String]) { self.values = values }

    var names: [String] { values.keys.sorted() }

    func string(_ name: String) -> String? {
        guard let v = values[name]?.trimmingWhitespace(), !v.isEmpty else { return nil }
        return v
    }

    mutating func bool(_ name: String) -> Bool? {
        guard let text = string(name) else { return nil }
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default:
            problems.add("\(name)=\(text): use true or false")
            return nil
        }
    }

    mutating func integer(_ name: String, atLeast minimum: Int) -> Int? {
        guard let text = string(name) else { return nil }
        guard let n = Int(text), n >= minimum else {
            problems.add("\(name)=\(text): use a whole number of at least \(minimum)")
            return nil
        }
        return n
    }

    /// Go-style durations as the TelemetryFlow SDKs write them: `500ms`, `10s`, `1m`, `1h`, or a plain number
    /// of seconds.
    mutating func duration(_ name: String) -> Duration? {
        guard let text = string(name) else { return nil }
        let units: [(String, Double)] = [("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
        var number = text.lowercased()
        var scale = 1.0
        for (suffix, factor) in units where number.hasSuffix(suffix) {
            number.removeLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value.isFinite, value > 0 else {
            problems.add("\(name)=\(text): use a positive duration such as 500ms, 10s or 1m")
            return nil
        }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    mutating func url(_ text: String, variable: String) -> String? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(), ["http", "https"].contains(scheme),
            components.host?.isEmpty == false
        else {
            problems.add("\(variable)=\(text): use an http:// or https:// URL with a host")
            return nil
        }
        return text
    }

    /// `key=value,key2=value2`, values percent-decoded. With `secret`, values never appear in a message.
    mutating func keyValues(_ text: String, variable: String, secret: Bool = false) -> [String: String]? {
        var out: [String: String] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            let key = parts.first.map { String($0).percentDecoded.trimmingWhitespace() } ?? ""
            guard parts.count == 2, !key.isEmpty else {
                problems.add("\(variable): \(secret ? "an entry" : "\"\(item)\"") is not key=value")
                return nil
            }
            out[key] = String(parts[1]).percentDecoded.trimmingWhitespace()
        }
        return out
    }
}
