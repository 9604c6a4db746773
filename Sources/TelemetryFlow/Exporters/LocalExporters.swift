import Glibc
import Synchronization
public import TelemetryFlowCore
import TelemetryFlowOTLP

extension PluginRegistry {
    /// A registry with every built-in plugin: the core signal types and processors, the OTLP exporter with its
    /// three protocols, and the console and file exporters.
    public static func standard() -> PluginRegistry {
        let registry = PluginRegistry.withCoreParts()
        try! registry.register(OTLPPlugin())
        try! registry.register(LocalExportersPlugin())
        return registry
    }
}

/// Registers the `console` and `file` exporters.
public struct LocalExportersPlugin: TelemetryFlowPlugin {
    public init() {}
    public func register(into registry: PluginRegistry) throws {
        try registry.register(exporter: ConsoleExporterPlugin())
        try registry.register(exporter: FileExporterPlugin())
    }
}

/// Renders an event for people, asking the signal-type plugin for custom records.
func describe(_ event: StoredEvent, registry: PluginRegistry) -> String {
    do {
        let decoded = try event.decode()
        if case .custom(let record) = decoded, let plugin = try? registry.signalType(record.signal) {
            return "custom \(record.signal).\(record.name) \(plugin.describe(record))"
        }
        return decoded.summary
    } catch {
        return "undecodable \(event.type) event: \(error)"
    }
}

/// `console`: one human-readable line per event, on the stream of its ``ConsoleExporterConfiguration``.
public struct ConsoleExporterPlugin: ExporterPlugin {
    public let name = "console"
    public init() {}

    public func makeExporter(_ configuration: ExporterConfiguration, context: ExporterContext) throws -> any TelemetryExporter {
        guard case .console(let console) = configuration.kind else {
            throw TelemetryFlowError(.invalidConfiguration, "exporter \"\(configuration.name)\": the console plugin needs a .console(…) configuration")
        }
        let fd: Int32 = console.stream == .standardError ? 2 : 1
        return ConsoleExporter(
            fd: fd, signals: configuration.signals ?? Set(context.registry.signalTypes), registry: context.registry, name: configuration.name)
    }
}

final class ConsoleExporter: TelemetryExporter {
    let fd: Int32
    let acceptedSignals: Set<SignalType>
    let registry: PluginRegistry
    let name: String

    init(fd: Int32, signals: Set<SignalType>, registry: PluginRegistry, name: String) {
        self.fd = fd
        self.acceptedSignals = signals
        self.registry = registry
        self.name = name
    }

    func export(_ batch: EventBatch) async -> ExportResult {
        var text = ""
        for event in batch where event.type != .counterMeasurement && event.type != .upDownCounterMeasurement
            && event.type != .gaugeMeasurement && event.type != .histogramMeasurement {
            text += "[\(name)] #\(event.sequence) \(describe(event, registry: registry))\n"
        }
        do {
            fflush(nil)
            try writeAll(fd, Array(text.utf8))
            return .success
        } catch {
            return .retryable(reason: "console: \(error)")
        }
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw TelemetryFlowError(.io, "write failed: \(String(cString: strerror(errno)))")
        }
        offset += n
    }
}

/// `file`: JSON lines (one object per event, OTLP/JSON shapes for spans, logs and metrics) appended to a file that
/// rotates, as its ``FileExporterConfiguration`` says.
public struct FileExporterPlugin: ExporterPlugin {
    public let name = "file"
    public init() {}

    public func makeExporter(_ configuration: ExporterConfiguration, context: ExporterContext) throws -> any TelemetryExporter {
        guard case .file(let file) = configuration.kind else {
            throw TelemetryFlowError(.invalidConfiguration, "exporter \"\(configuration.name)\": the file plugin needs a .file(…) configuration")
        }
        guard !file.path.isEmpty else {
            throw TelemetryFlowError(.invalidConfiguration, "file exporter \"\(configuration.name)\": path is required")
        }
        guard file.maxBytes >= 1024 else {
            throw TelemetryFlowError(.invalidConfiguration, "file exporter \"\(configuration.name)\": maxBytes must be at least 1024, got \(file.maxBytes)")
        }
        guard file.maxFiles >= 1 else {
            throw TelemetryFlowError(.invalidConfiguration, "file exporter \"\(configuration.name)\": maxFiles must be at least 1, got \(file.maxFiles)")
        }
        return try FileExporter(
            path: file.path, maxBytes: file.maxBytes, maxFiles: file.maxFiles, sync: file.fsync,
            signals: configuration.signals ?? Set(context.registry.signalTypes))
    }
}

final class FileExporter: TelemetryExporter {
    let path: String
    let maxBytes: Int
    let maxFiles: Int
    let sync: Bool
    let acceptedSignals: Set<SignalType>
    private let file = Locked<(fd: Int32, size: Int)>((-1, 0))

    init(path: String, maxBytes: Int, maxFiles: Int, sync: Bool, signals: Set<SignalType>) throws {
        self.path = path
        self.maxBytes = maxBytes
        self.maxFiles = maxFiles
        self.sync = sync
        self.acceptedSignals = signals
        try file.withLock { try open(&$0) }
    }

    private func open(_ state: inout (fd: Int32, size: Int)) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw TelemetryFlowError(.io, "file exporter cannot open \(path): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        fstat(fd, &st)
        state = (fd, Int(st.st_size))
    }

    /// One JSON object for one stored event.
    static func line(_ event: StoredEvent) -> [UInt8] {
        var j = JSONWriter()
        j.object { j in
            j.field("sequence", event.sequence)
            j.field("type", event.type.description)
            j.field("timeUnixNano", String(event.timestampUnixNano))
            if let signal = event.type.builtInSignal { j.field("signal", signal.name) }
            do {
                switch try event.decode() {
                case .spanEnded(let span, let scope), .spanStarted(let span, let scope):
                    j.key("scope"); scope.writeOTLPJSON(into: &j)
                    j.key("span"); span.writeOTLPJSON(into: &j)
                case .log(let record, let scope):
                    j.key("scope"); scope.writeOTLPJSON(into: &j)
                    j.key("logRecord"); record.writeOTLPJSON(into: &j)
                case .metricsCollected(let collected):
                    j.field("foldedThrough", collected.foldedThrough)
                    j.key("metrics")
                    j.array { j in for metric in collected.metrics { metric.writeOTLPJSON(into: &j) } }
                case .measurement(let m):
                    j.field("name", m.name)
                    j.field("kind", "\(m.kind)")
                    switch m.value {
                    case .int(let i): j.field("asInt", String(i))
                    case .double(let d): j.field("asDouble", d)
                    }
                    m.attributes.writeOTLPJSON(into: &j)
                case .spanEventAdded(let traceID, let spanID, let e):
                    j.field("traceId", traceID.hex)
                    j.field("spanId", spanID.hex)
                    j.field("name", e.name)
                    e.attributes.writeOTLPJSON(into: &j)
                case .custom(let record):
                    j.field("signal", record.signal.name)
                    j.field("name", record.name)
                    record.attributes.writeOTLPJSON(into: &j)
                    j.field("body", Base64.encode(record.body))
                case .lifecycle(let e):
                    j.field("kind", e.kind.description)
                    e.attributes.writeOTLPJSON(into: &j)
                }
            } catch {
                j.field("error", "\(error)")
            }
        }
        return j.bytes + [0x0a]
    }

    func export(_ batch: EventBatch) async -> ExportResult {
        do {
            try file.withLock { state in
                var pending: [UInt8] = []
                for event in batch {
                    let line = Self.line(event)
                    if state.size + pending.count + line.count > maxBytes && state.size + pending.count > 0 {
                        try writeAll(state.fd, pending)
                        pending.removeAll()
                        try rotate(&state)
                    }
                    pending += line
                }
                try writeAll(state.fd, pending)
                state.size += pending.count
                if sync { fsync(state.fd) }
            }
            return .success
        } catch {
            return .retryable(reason: "\(error)")
        }
    }

    /// path → path.1 → path.2 …, keeping `maxFiles` rotated files.
    private func rotate(_ state: inout (fd: Int32, size: Int)) throws {
        if sync { fsync(state.fd) }
        close(state.fd)
        unlink("\(path).\(maxFiles)")
        for i in stride(from: maxFiles - 1, through: 1, by: -1) { rename("\(path).\(i)", "\(path).\(i + 1)") }
        rename(path, "\(path).1")
        try open(&state)
    }

    func shutdown() async {
        file.withLock { state in
            if state.fd >= 0 { close(state.fd) }
            state.fd = -1
        }
    }
}
