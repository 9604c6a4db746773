import Foundation
import Testing
@testable import TelemetryFlow

/// The builder and the environment: every variable, its precedence and its invalid values, table-driven; the
/// secret is never printed.
@Suite struct ClientConfigurationTests {
    static let keyID = "tfk_abcdefgh1234"
    static let secret = "tfs_zq8Xv41kpWmark"

    func configuration(_ env: [String: String]) throws -> TelemetryFlow.Configuration {
        var c = TelemetryFlow.Configuration()
        try c.applyEnvironment(env)
        return c
    }

    var otlp: (TelemetryFlow.Configuration) -> OTLPExporterConfiguration? { { $0.exporters.first?.otlp } }

    /// Each variable, one value, and what it changes.
    @Test(arguments: [
        (["TELEMETRYFLOW_SERVICE_NAME": "svc"], "serviceName"),
        (["OTEL_SERVICE_NAME": "svc"], "serviceName"),
        (["OTEL_RESOURCE_ATTRIBUTES": "service.name=svc,team=pay%20ments"], "serviceName+team"),
        (["TELEMETRYFLOW_SERVICE_VERSION": "1.2.3"], "version"),
        (["TELEMETRYFLOW_SERVICE_NAMESPACE": "shop"], "namespace"),
        (["TELEMETRYFLOW_ENVIRONMENT": "prod"], "environment"),
        (["ENV": "prod"], "environment"),
        (["ENVIRONMENT": "prod"], "environment"),
        (["TELEMETRYFLOW_COLLECTOR_ID": "c-1"], "collectorID"),
        (["TELEMETRYFLOW_COLLECTOR_NAME": "edge"], "collectorName"),
        (["TELEMETRYFLOW_DATACENTER": "fra1"], "datacenter"),
        (["TELEMETRYFLOW_ENDPOINT": "https://api.example.com:4318"], "endpoint"),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "https://api.example.com:4318"], "endpoint"),
        (["TELEMETRYFLOW_PROTOCOL": "grpc"], "grpc"),
        (["TELEMETRYFLOW_PROTOCOL": "http"], "httpProtobuf"),
        (["OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"], "httpJSON"),
        (["TELEMETRYFLOW_INSECURE": "true"], "insecure"),
        (["OTEL_EXPORTER_OTLP_INSECURE": "true"], "insecure"),
        (["TELEMETRYFLOW_COMPRESSION": "gzip"], "gzip"),
        (["OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"], "gzip"),
        (["TELEMETRYFLOW_TIMEOUT": "2500ms"], "timeout2500"),
        (["OTEL_EXPORTER_OTLP_TIMEOUT": "2500"], "timeout2500"),
        (["OTEL_BSP_EXPORT_TIMEOUT": "2500"], "timeout2500"),
        (["OTEL_EXPORTER_OTLP_HEADERS": "x-team=pay,x-b=c%3Dd"], "headers"),
        (["TELEMETRYFLOW_RETRY_ENABLED": "false"], "noRetries"),
        (["TELEMETRYFLOW_MAX_RETRIES": "3"], "threeRetries"),
        (["TELEMETRYFLOW_RETRY_BACKOFF": "2s"], "backoff2s"),
        (["TELEMETRYFLOW_BATCH_TIMEOUT": "1s"], "delay1s"),
        (["OTEL_BSP_SCHEDULE_DELAY": "1000"], "delay1s"),
        (["OTEL_BLRP_SCHEDULE_DELAY": "1000"], "delay1s"),
        (["TELEMETRYFLOW_BATCH_MAX_SIZE": "64"], "batch64"),
        (["OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64"], "batch64"),
        (["OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "64"], "batch64"),
        (["TELEMETRYFLOW_ENABLE_TRACES": "false"], "noTraces"),
        (["OTEL_TRACES_EXPORTER": "none"], "noTraces"),
        (["TELEMETRYFLOW_ENABLE_METRICS": "false"], "noMetrics"),
        (["TELEMETRYFLOW_ENABLE_LOGS": "false"], "noLogs"),
        (["TELEMETRYFLOW_RATE_LIMIT": "500"], "rate500"),
        (["TELEMETRYFLOW_USE_V2_API": "true"], "v2"),
        (["TELEMETRYFLOW_DATA_DIR": "/var/lib/tf"], "dataDir"),
        (["TELEMETRYFLOW_DURABILITY": "always"], "durabilityAlways"),
        (["TELEMETRYFLOW_QUOTA_BYTES": "268435456"], "quota"),
        (["TELEMETRYFLOW_OVERFLOW_POLICY": "drop_oldest"], "dropOldest"),
        (["OTEL_SDK_DISABLED": "true"], "disabled"),
        (["OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"], "ratio"),
        (["OTEL_TRACES_SAMPLER": "parentbased_always_off"], "parentOff"),
        (["OTEL_PROPAGATORS": "tracecontext,baggage"], "defaults"),
        (["OTEL_PROPAGATORS": "baggage"], "baggageOnly"),
        (["OTEL_METRIC_EXPORT_INTERVAL": "15000"], "interval15s"),
        (["OTEL_ATTRIBUTE_COUNT_LIMIT": "7"], "attrCount7"),
        (["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100"], "attrLength100"),
        (["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "9"], "spanAttr9"),
        (["OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "50"], "spanLength50"),
        (["OTEL_SPAN_EVENT_COUNT_LIMIT": "3"], "events3"),
        (["OTEL_SPAN_LINK_COUNT_LIMIT": "2"], "links2"),
        (["OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "4"], "eventAttr4"),
        (["OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": "5"], "linkAttr5"),
        (["OTEL_TRACES_EXPORTER": "console"], "consoleTraces"),
        (["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/v1/traces"], "tracesEndpoint"),
        (["OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-only=traces"], "splitBySignal"),
    ] as [([String: String], String)])
    func eachVariableChangesWhatItNames(_ env: [String: String], _ effect: String) throws {
        let c = try configuration(env)
        let o = c.exporters.first { $0.otlp != nil }
        switch effect {
        case "serviceName": #expect(c.serviceName == "svc")
        case "serviceName+team":
            #expect(c.serviceName == "svc")
            #expect(c.resource.attributes["team"] == .string("pay ments"))
        case "version": #expect(c.resource.attributes["service.version"] == .string("1.2.3"))
        case "namespace": #expect(c.resource.attributes["service.namespace"] == .string("shop"))
        case "environment": #expect(c.resource.attributes["deployment.environment.name"] == .string("prod"))
        case "collectorID": #expect(c.resource.attributes["telemetryflow.collector.id"] == .string("c-1"))
        case "collectorName": #expect(c.resource.attributes["telemetryflow.collector.name"] == .string("edge"))
        case "datacenter": #expect(c.resource.attributes["telemetryflow.datacenter"] == .string("fra1"))
        case "endpoint": #expect(o?.otlp?.endpoint == "https://api.example.com:4318")
        case "grpc": #expect(o?.otlp?.protocol == .grpc)
        case "httpProtobuf": #expect(o?.otlp?.protocol == .httpProtobuf)
        case "httpJSON": #expect(o?.otlp?.protocol == .httpJSON)
        case "insecure": #expect(o?.otlp?.insecure == true)
        case "gzip": #expect(o?.otlp?.compression == .gzip)
        case "timeout2500": #expect(o?.otlp?.timeout == .milliseconds(2500))
        case "headers": #expect(o?.otlp?.headers == ["x-team": "pay", "x-b": "c=d"])
        case "noRetries": #expect(o?.policy.maxRetries == 0)
        case "threeRetries": #expect(o?.policy.maxRetries == 3)
        case "backoff2s": #expect(o?.policy.initialBackoff == .seconds(2))
        case "delay1s": #expect(o?.policy.scheduleDelay == .seconds(1))
        case "batch64": #expect(o?.policy.maxBatchCount == 64)
        case "noTraces": #expect(c.signals == [.metrics, .logs])
        case "noMetrics": #expect(c.signals == [.traces, .logs])
        case "noLogs": #expect(c.signals == [.traces, .metrics])
        case "rate500": #expect(c.rateLimit == 500)
        case "v2":
            #expect(c.useV2API)
            let client = try #require(c.effectiveExporters.first?.otlp)
            #expect(client.signalEndpoints[.traces] == "http://localhost:4318/v2/traces")
        case "dataDir": #expect(c.log.directory == "/var/lib/tf")
        case "durabilityAlways": #expect(c.log.durability == .always)
        case "quota": #expect(c.log.quotaBytes == 268_435_456)
        case "dropOldest": #expect(c.log.quotaPolicy == .dropOldest)
        case "disabled": #expect(!c.enabled)
        case "ratio": #expect(c.sampler == .traceIDRatio(0.25))
        case "parentOff": #expect(c.sampler == .parentBased(root: .alwaysOff))
        case "defaults": #expect(c.sampler == .parentBased(root: .alwaysOn) && c.exporters.count == 1 && c.propagators == [.traceContext, .baggage])
        case "baggageOnly": #expect(c.propagators == [.baggage])
        case "interval15s": #expect(c.metricExportInterval == .seconds(15))
        case "attrCount7": #expect(c.limits.attributeCount == 7)
        case "attrLength100": #expect(c.limits.attributeValueLength == 100)
        case "spanAttr9": #expect(c.limits.spanAttributeCount == 9)
        case "spanLength50": #expect(c.limits.spanAttributeValueLength == 50)
        case "events3": #expect(c.limits.spanEventCount == 3)
        case "links2": #expect(c.limits.spanLinkCount == 2)
        case "eventAttr4": #expect(c.limits.eventAttributeCount == 4)
        case "linkAttr5": #expect(c.limits.linkAttributeCount == 5)
        case "consoleTraces":
            #expect(c.exporters.first { $0.plugin == "console" }?.signals == [.traces])
            #expect(o?.signals == [.metrics, .logs])
        case "tracesEndpoint":
            #expect(c.exporters.count == 1)
            #expect(o?.otlp?.signalEndpoints[.traces] == "http://traces:4318/v1/traces")
        case "splitBySignal":
            // A setting that differs by signal needs an exporter per signal.
            #expect(c.exporters.map(\.name).sorted() == ["otlp-logs", "otlp-metrics", "otlp-traces"])
            #expect(c.exporters.first { $0.name == "otlp-traces" }?.otlp?.headers == ["x-only": "traces"])
            #expect(c.exporters.first { $0.name == "otlp-logs" }?.otlp?.headers == [:])
        default: Issue.record("no check for \(effect)")
        }
        try c.validate()
    }

    /// Invalid values: the error names the variable, the value and what is accepted.
    @Test(arguments: [
        ("TELEMETRYFLOW_PROTOCOL", "thrift", "grpc"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "http/json"),
        ("TELEMETRYFLOW_INSECURE", "maybe", "true or false"),
        ("OTEL_SDK_DISABLED", "sometimes", "true or false"),
        ("TELEMETRYFLOW_COMPRESSION", "brotli", "gzip or none"),
        ("TELEMETRYFLOW_TIMEOUT", "soon", "500ms"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5", "at least 1"),
        ("TELEMETRYFLOW_MAX_RETRIES", "-1", "at least 0"),
        ("TELEMETRYFLOW_RETRY_BACKOFF", "0s", "positive duration"),
        ("TELEMETRYFLOW_BATCH_TIMEOUT", "x", "positive duration"),
        ("TELEMETRYFLOW_BATCH_MAX_SIZE", "0", "at least 1"),
        ("TELEMETRYFLOW_RATE_LIMIT", "lots", "whole number"),
        ("TELEMETRYFLOW_DURABILITY", "sometimes", "interval(<milliseconds>)"),
        ("TELEMETRYFLOW_QUOTA_BYTES", "1GB", "whole number"),
        ("TELEMETRYFLOW_OVERFLOW_POLICY", "panic", "drop_oldest"),
        ("TELEMETRYFLOW_ENDPOINT", "collector:4317", "http:// or https://"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x", "http:// or https://"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "no readable file"),
        ("OTEL_TRACES_SAMPLER", "jaeger_remote", "parentbased_traceidratio"),
        ("OTEL_PROPAGATORS", "b3", "tracecontext"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "otlp, console or none"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "2048", "TELEMETRYFLOW_QUOTA_BYTES"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0", "at least 1"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "-3", "at least 0"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "key=value"),
        ("TELEMETRYFLOW_USE_V2", "true", "not a TelemetryFlow variable"),
        ("OTEL_EXPORTER_JAEGER_ENDPOINT", "http://j", "not supported"),
    ] as [(String, String, String)])
    func invalidValuesNameTheVariableTheValueAndWhatIsAccepted(_ variable: String, _ value: String, _ accepted: String) throws {
        let error = #expect(throws: TelemetryFlowError.self) { try configuration([variable: value]) }
        #expect(error?.code == .invalidConfiguration)
        let message = error?.message ?? ""
        #expect(message.contains(variable), "\(message)")
        #expect(message.contains(value) || variable == "OTEL_BSP_MAX_QUEUE_SIZE" || variable.hasPrefix("OTEL_EXPORTER_JAEGER") || variable == "TELEMETRYFLOW_USE_V2", "\(message)")
        #expect(message.contains(accepted), "\(message)")
    }

    @Test func everyProblemIsReportedAtOnce() throws {
        let error = #expect(throws: TelemetryFlowError.self) {
            try TelemetryFlowBuilder()
                .withEnvironment(variables: ["TELEMETRYFLOW_PROTOCOL": "thrift", "TELEMETRYFLOW_RATE_LIMIT": "0"])
                .withRateLimit(0)
                .withBatchSettings(maxSize: 0)
                .configuration()
        }
        let message = error?.message ?? ""
        #expect(message.contains("problems:"), "\(message)")
        for part in ["TELEMETRYFLOW_PROTOCOL=thrift", "TELEMETRYFLOW_RATE_LIMIT=0", "rateLimit must be at least 1", "maxBatchCount must be at least 1"] {
            #expect(message.contains(part), "missing \(part) in \(message)")
        }
    }

    /// explicit builder call > TELEMETRYFLOW_* > OTEL_* > default.
    @Test func precedenceIsExplicitThenTelemetryFlowThenOpenTelemetryThenDefault() throws {
        let both = ["TELEMETRYFLOW_SERVICE_NAME": "tf", "OTEL_SERVICE_NAME": "otel", "OTEL_RESOURCE_ATTRIBUTES": "service.name=attr",
                    "TELEMETRYFLOW_ENDPOINT": "http://tf:4318", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318",
                    "TELEMETRYFLOW_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"]
        let fromEnv = try TelemetryFlowBuilder().withEnvironment(variables: both).configuration()
        #expect(fromEnv.serviceName == "tf")
        #expect(otlp(fromEnv)?.endpoint == "http://tf:4318")
        #expect(otlp(fromEnv)?.protocol == .grpc)
        let otelOnly = try TelemetryFlowBuilder().withEnvironment(variables: both.filter { !$0.key.hasPrefix("TELEMETRYFLOW_") }).configuration()
        #expect(otelOnly.serviceName == "otel")
        #expect(otlp(otelOnly)?.endpoint == "http://otel:4318")
        #expect(otlp(otelOnly)?.protocol == .httpJSON)
        let attrOnly = try TelemetryFlowBuilder().withEnvironment(variables: ["OTEL_RESOURCE_ATTRIBUTES": "service.name=attr"]).configuration()
        #expect(attrOnly.serviceName == "attr")
        let explicit = try TelemetryFlowBuilder().withEnvironment(variables: both)
            .withService("explicit").withEndpoint("http://explicit:4318").withHTTP().configuration()
        #expect(explicit.serviceName == "explicit")
        #expect(otlp(explicit)?.endpoint == "http://explicit:4318")
        #expect(otlp(explicit)?.protocol == .httpProtobuf)
        let defaults = try TelemetryFlowBuilder().withEnvironment(variables: [:]).configuration()
        #expect(defaults.serviceName == "unknown_service:swift")
        #expect(otlp(defaults)?.endpoint == nil)
        #expect(otlp(defaults)?.protocol == .httpProtobuf)
        let ignored = try TelemetryFlowBuilder().withEnvironment(variables: both).withoutEnvironment().configuration()
        #expect(ignored.serviceName == "unknown_service:swift")
    }

    @Test func builderCallsFillTheConfiguration() throws {
        let c = try TelemetryFlowBuilder().withoutEnvironment()
            .withAPIKey(Self.keyID, Self.secret).withEndpoint("https://api.telemetryflow.id").withGRPC().withInsecure()
            .withTimeout(.seconds(3)).withCompression(.gzip).withRetry(maxRetries: 4, backoff: .seconds(1))
            .withBatchSettings(timeout: .milliseconds(50), maxSize: 10).withTracesOnly()
            .withService("api", version: "2.0").withServiceNamespace("ns").withEnvironment("staging")
            .withCustomAttribute("team", "core").withCollectorID("col").withDatacenter("dc1")
            .withDataDirectory("/tmp/tf-builder").withDurability(.never).withQuota(1 << 28, .dropNewest)
            .withProcessor("redaction", options: ["keys": "password"]).withSampler(.alwaysOff).withRateLimit(10)
            .withHistogramBoundaries("latency", [1, 2, 3]).withExporter(.console())
            .configuration()
        let o = try #require(otlp(c))
        #expect(o.credentials?.keyID == Self.keyID)
        #expect(o.endpoint == "https://api.telemetryflow.id" && o.protocol == .grpc && o.insecure && o.timeout == .seconds(3) && o.compression == .gzip)
        #expect(c.exporters[0].policy.maxRetries == 4 && c.exporters[0].policy.initialBackoff == .seconds(1))
        #expect(c.exporters[0].policy.scheduleDelay == .milliseconds(50) && c.exporters[0].policy.maxBatchCount == 10)
        #expect(c.signals == [.traces])
        #expect(c.resource.attributes["service.version"] == .string("2.0") && c.resource.attributes["team"] == .string("core"))
        #expect(c.log.directory == "/tmp/tf-builder" && c.log.durability == .never && c.log.quotaPolicy == .dropNewest)
        #expect(c.processors == [.init("redaction", options: ["keys": "password"])])
        #expect(c.sampler == .alwaysOff && c.rateLimit == 10)
        #expect(c.metrics.histogramBoundsByInstrument["latency"] == [1, 2, 3])
        #expect(c.exporters.map(\.plugin) == ["otlp", "console"])
    }

    /// Plain OTLP needs no credentials; half a key pair, or an invalid one, is refused without echoing the secret.
    @Test func theSecretIsNeverPrinted() throws {
        #expect(otlp(try configuration([:]))?.credentials == nil)
        let c = try configuration(["TELEMETRYFLOW_API_KEY_ID": Self.keyID, "TELEMETRYFLOW_API_KEY_SECRET": Self.secret,
                                   "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20\(Self.secret)"])
        for text in [String(describing: c), String(reflecting: c), String(describing: c.exporters), "\(otlp(c)!)"] {
            #expect(!text.contains("zq8Xv41kpW"), "\(text)")
        }
        var dumped = ""
        dump(c, to: &dumped)
        #expect(!dumped.contains("zq8Xv41kpW"), "\(dumped)")
        let half = #expect(throws: TelemetryFlowError.self) { try configuration(["TELEMETRYFLOW_API_KEY_SECRET": Self.secret]) }
        #expect(half?.code == .invalidCredentials)
        #expect(half?.message.contains("zq8Xv41kpW") == false)
        let bad = #expect(throws: TelemetryFlowError.self) {
            try configuration(["TELEMETRYFLOW_API_KEY_ID": Self.keyID, "TELEMETRYFLOW_API_KEY_SECRET": "zq8Xv41kpWmarkNoPrefix"])
        }
        #expect(bad?.code == .invalidCredentials)
        #expect(bad?.message.contains("zq8Xv41kpW") == false, "\(bad?.message ?? "")")
        let badHeader = #expect(throws: TelemetryFlowError.self) { try configuration(["OTEL_EXPORTER_OTLP_HEADERS": "zq8Xv41kpWmarkNoKey"]) }
        #expect(badHeader?.message.contains("zq8Xv41kpW") == false)
    }
}
