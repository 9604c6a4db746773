import Synchronization

/// Builds exporters of one kind (`otlp`, `console`, `file`, or a third party's).
public protocol ExporterPlugin: Sendable {
    /// The name configuration selects it by.
    var name: String { get }
    /// Builds an exporter. Throws ``TelemetryFlowError/Code/invalidConfiguration`` for a bad or unknown setting,
    /// or a configuration of another kind.
    func makeExporter(_ configuration: ExporterConfiguration, context: ExporterContext) throws -> any TelemetryExporter
}

/// A wire protocol an exporter can speak (`grpc`, `http/protobuf`, `http/json`, or a third party's).
public protocol ProtocolPlugin: Sendable {
    /// The name configuration selects it by.
    var name: String { get }
    /// Builds a sender for the endpoint, headers, timeout, compression and TLS settings of `configuration`.
    func makeSender(_ configuration: OTLPExporterConfiguration, context: ExporterContext) throws -> any SignalSender
}

/// Sends the events of one signal over a protocol; made by a ``ProtocolPlugin``.
public protocol SignalSender: Sendable {
    /// The signals this sender can encode.
    var acceptedSignals: Set<SignalType> { get }
    /// Sends `batch`, whose events all belong to `signal`.
    func send(_ signal: SignalType, _ batch: EventBatch) async -> ExportResult
    /// Closes connections.
    func shutdown() async
}

/// A signal type: its name, how to check and show its records. Built-in signals are registered as plugins too.
public protocol SignalTypePlugin: Sendable {
    var signal: SignalType { get }
    /// Checks a custom record before it is appended. Throws ``TelemetryFlowError/Code/invalidArgument``.
    func validate(_ record: CustomSignalRecord) throws
    /// A one-line rendering of a record's body for human-readable exporters.
    func describe(_ record: CustomSignalRecord) -> String
}

extension SignalTypePlugin {
    public func validate(_ record: CustomSignalRecord) throws {}
    public func describe(_ record: CustomSignalRecord) -> String { "\(record.body.count) bytes" }
}

/// What a processor decides for one event.
public enum ProcessorDecision: Sendable, Hashable {
    case keep
    /// Drop the event; the caller counts it under `reason` (`EventLog.countDrop(_:count:)`).
    case drop(reason: DropReason)
}

/// A step before the append: limits, redaction, sampling, enrichment. Runs on the recording thread, so it
/// must be fast and must not block.
public protocol TelemetryProcessor: Sendable {
    func process(_ event: inout TelemetryEvent) -> ProcessorDecision
}

/// Builds processors of one kind from string options.
public protocol ProcessorPlugin: Sendable {
    var name: String { get }
    /// Throws ``TelemetryFlowError/Code/invalidConfiguration`` for a bad or unknown option.
    func makeProcessor(options: [String: String]) throws -> any TelemetryProcessor
}

/// A bundle of plugin parts that registers itself.
public protocol TelemetryFlowPlugin: Sendable {
    func register(into registry: PluginRegistry) throws
}

/// The one registry of exporters, protocols, signal types and processors. Thread-safe.
///
/// Names are unique per kind; registering a taken name throws ``TelemetryFlowError/Code/duplicatePlugin`` and
/// looking up a missing one throws ``TelemetryFlowError/Code/unknownPlugin`` listing what is registered.
public final class PluginRegistry: Sendable {
    private struct State {
        var exporters: [String: any ExporterPlugin] = [:]
        var protocols: [String: any ProtocolPlugin] = [:]
        var signals: [SignalType: any SignalTypePlugin] = [:]
        var processors: [String: any ProcessorPlugin] = [:]
    }

    private let state = Locked(State())

    /// An empty registry.
    public init() {}

    /// A registry with the built-in signal types (metrics, logs, traces) and processors (`attribute_limits`,
    /// `redaction`). Exporter and protocol plugins live in their own modules and register themselves.
    public static func withCoreParts() -> PluginRegistry {
        let registry = PluginRegistry()
        try! registry.register(CorePlugin())
        return registry
    }

    public func register(_ plugin: some TelemetryFlowPlugin) throws { try plugin.register(into: self) }

    public func register(exporter plugin: some ExporterPlugin) throws {
        try insert(plugin, named: plugin.name, kind: "exporter", \.exporters)
    }

    public func register(protocol plugin: some ProtocolPlugin) throws {
        try insert(plugin, named: plugin.name, kind: "protocol", \.protocols)
    }

    public func register(processor plugin: some ProcessorPlugin) throws {
        try insert(plugin, named: plugin.name, kind: "processor", \.processors)
    }

    public func register(signalType plugin: some SignalTypePlugin) throws {
        try state.withLock { state in
            guard state.signals[plugin.signal] == nil else {
                throw TelemetryFlowError(.duplicatePlugin, "a signal type named \"\(plugin.signal)\" is already registered")
            }
            state.signals[plugin.signal] = plugin
        }
    }

    public func exporter(named name: String) throws -> any ExporterPlugin {
        try lookup(name, kind: "exporter", \.exporters)
    }

    public func protocolPlugin(named name: String) throws -> any ProtocolPlugin {
        try lookup(name, kind: "protocol", \.protocols)
    }

    public func processor(named name: String) throws -> any ProcessorPlugin {
        try lookup(name, kind: "processor", \.processors)
    }

    public func signalType(_ signal: SignalType) throws -> any SignalTypePlugin {
        try state.withLock { state in
            guard let plugin = state.signals[signal] else {
                throw TelemetryFlowError(
                    .unknownPlugin,
                    "no signal type named \"\(signal)\" is registered (registered: \(state.signals.keys.sorted().map(\.name).joined(separator: ", ")))")
            }
            return plugin
        }
    }

    /// Registered names of each kind, sorted.
    public var exporterNames: [String] { state.withLock { $0.exporters.keys.sorted() } }
    public var protocolNames: [String] { state.withLock { $0.protocols.keys.sorted() } }
    public var processorNames: [String] { state.withLock { $0.processors.keys.sorted() } }
    public var signalTypes: [SignalType] { state.withLock { $0.signals.keys.sorted() } }

    /// Builds the exporter `configuration` names, after checking its policy; its batches are attributed to
    /// `resource` (the process's).
    public func makeExporter(_ configuration: ExporterConfiguration, resource: Resource = Resource()) throws -> any TelemetryExporter {
        try configuration.policy.validate()
        let context = ExporterContext(exporterName: configuration.name, resource: resource, registry: self)
        return try exporter(named: configuration.plugin).makeExporter(configuration, context: context)
    }

    private func insert<P: Sendable>(
        _ plugin: P, named name: String, kind: String, _ path: WritableKeyPath<State, [String: P]>
    ) throws {
        guard !name.isEmpty else { throw TelemetryFlowError(.invalidArgument, "a \(kind) plugin needs a name") }
        try state.withLock { state in
            guard state[keyPath: path][name] == nil else {
                throw TelemetryFlowError(.duplicatePlugin, "a \(kind) plugin named \"\(name)\" is already registered")
            }
            state[keyPath: path][name] = plugin
        }
    }

    private func lookup<P: Sendable>(_ name: String, kind: String, _ path: KeyPath<State, [String: P]>) throws -> P {
        try state.withLock { state in
            guard let plugin = state[keyPath: path][name] else {
                let known = state[keyPath: path].keys.sorted()
                throw TelemetryFlowError(
                    .unknownPlugin,
                    "no \(kind) plugin named \"\(name)\" is registered (registered: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
            }
            return plugin
        }
    }
}

/// A chain of processors applied in order; the first drop wins.
///
/// The client runs the chain of its configuration (`TelemetryFlow.Configuration.processors`) on every recording
/// call before the append, after the attribute limits; a drop is counted under the processor's reason.
public struct ProcessorChain: Sendable {
    public let processors: [any TelemetryProcessor]

    public init(_ processors: [any TelemetryProcessor]) { self.processors = processors }

    /// Builds processors by name with their options, in order.
    public init(_ specs: [(name: String, options: [String: String])], registry: PluginRegistry) throws {
        processors = try specs.map { try registry.processor(named: $0.name).makeProcessor(options: $0.options) }
    }

    public func process(_ event: inout TelemetryEvent) -> ProcessorDecision {
        for processor in processors {
            if case .drop(let reason) = processor.process(&event) { return .drop(reason: reason) }
        }
        return .keep
    }
}
