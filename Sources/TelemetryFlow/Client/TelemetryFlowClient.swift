public import ServiceContextModule
public import ServiceLifecycle
public import TelemetryFlowCore
public import TelemetryFlowStorage

/// What a Swift service records telemetry through: built from a ``TelemetryFlow/Configuration``, it owns the
/// durable log, the plugin registry, the export pipeline and the metrics projection.
///
/// Recording calls (instruments, ``log(_:_:_:error:context:)``, spans) never throw and never wait for I/O: each
/// is one typed command that becomes one event in the log, or a drop counted by reason in ``statistics``.
///
/// A swift-service-lifecycle `Service`: add it to the application's `ServiceGroup`, or call ``start()`` and
/// ``shutdown(timeout:)`` yourself. Shutdown exports what it can within its deadline and keeps every event it did
/// not export on disk for the next start.
public final class TelemetryFlowClient: Service, Sendable {
    /// This SDK's version (`telemetry.sdk.version`).
    public static let version = "0.5.0"

    public let configuration: TelemetryFlow.Configuration
    /// The plugins: exporters, protocols, signal types, processors.
    public let registry: PluginRegistry
    private let engine: Engine?
    /// `engine` without reference counting on each recording call (`engine` keeps it alive with the client).
    private let unretainedEngine: Unmanaged<Engine>?
    private let lifecycle = Locked<Lifecycle>(.built)

    private enum Lifecycle {
        case built, started, shutDown
    }

    /// The parts a working client owns (none when the SDK is disabled).
    final class Engine: Sendable {
        let log: EventLog
        let bus: CommandBus
        let pipeline: ExportPipeline
        let metrics: MetricsProjection
        let openSpans: OpenSpansProjection
        let signals: Set<SignalType>
        /// `signals` read once: recording calls test a flag instead of hashing a signal type.
        let logsEnabled: Bool
        let tracesEnabled: Bool
        let sampler: CompiledSampler
        let spanLimits: SpanLimits

        init(
            log: EventLog, bus: CommandBus, pipeline: ExportPipeline, metrics: MetricsProjection, openSpans: OpenSpansProjection,
            configuration: TelemetryFlow.Configuration
        ) {
            self.log = log
            self.bus = bus
            self.pipeline = pipeline
            self.metrics = metrics
            self.openSpans = openSpans
            self.signals = configuration.signals
            logsEnabled = configuration.signals.contains(.logs)
            tracesEnabled = configuration.signals.contains(.traces)
            self.sampler = CompiledSampler(configuration.sampler)
            spanLimits = SpanLimits(configuration.limits)
        }
    }

    /// The scope of calls that name none.
    public static let defaultScope = InstrumentationScope(name: "telemetryflow-swift", version: version)

    /// Validates `configuration` (every problem at once), opens the log (recovering what a crash left), builds the
    /// exporters and the metrics projection, and records a `started` lifecycle event. Nothing is exported before
    /// ``run()`` or ``start()``.
    ///
    /// - Parameter registry: the plugins to build exporters and processors from (default: every built-in one).
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` listing every problem; the log's errors when it
    ///   cannot be opened; plugins' errors for their options.
    public init(configuration: TelemetryFlow.Configuration, registry: PluginRegistry = .standard()) async throws {
        try configuration.validate()
        self.configuration = configuration
        self.registry = registry
        guard configuration.enabled else {
            engine = nil
            unretainedEngine = nil
            return
        }
        let log = try EventLog(configuration.log)
        do {
            let processors = try ProcessorChain(configuration.processors.map { ($0.name, $0.options) }, registry: registry)
            let limits = try AttributeLimits(maxCount: configuration.limits.attributeCount, maxValueLength: configuration.limits.attributeValueLength)
            let bus = CommandBus(log: log, processors: processors, limits: limits, registry: registry, rateLimit: configuration.rateLimit)
            let pipeline = try await ExportPipeline(
                log: log, exporters: configuration.effectiveExporters, registry: registry, resource: configuration.resource,
                shutdownGracePeriod: configuration.shutdownTimeout)
            let metrics = try await MetricsProjection(log: log, configuration: configuration.metrics, interval: configuration.metricExportInterval)
            let openSpans = try await OpenSpansProjection(log: log)
            let engine = Engine(log: log, bus: bus, pipeline: pipeline, metrics: metrics, openSpans: openSpans, configuration: configuration)
            self.engine = engine
            unretainedEngine = Unmanaged.passUnretained(engine)
        } catch {
            log.close()
            throw error
        }
        lifecycleEvent(.started, [
            "service.name": .string(configuration.serviceName),
            "telemetryflow.exporters": .string(configuration.exporters.map(\.name).joined(separator: ",")),
            "telemetryflow.recovered_lost": .int(Int64(clamping: log.recoveryReport.corruptedRecords)),
        ])
        endCutOffSpans()
    }

    /// The attribute a span cut off by a crash is exported with.
    public static let cutOffAttribute = "telemetryflow.span.cut_off"

    /// Spans the previous run started and never ended (it crashed, or shut down inside them) are ended now, at
    /// the last time recorded for them, with status error and ``cutOffAttribute`` = true.
    private func endCutOffSpans() {
        guard let engine else { return }
        for (span, scope, last) in engine.openSpans.openSpans {
            var ended = span
            ended.endTimeUnixNano = max(last, span.startTimeUnixNano)
            ended.status = SpanStatus(.error, message: "cut off: the process stopped before the span ended")
            ended.attributes.set(Self.cutOffAttribute, true)
            engine.bus.dispatch(EndSpan(span: ended, scope: scope))
        }
    }

    /// The durable log (nil when the SDK is disabled).
    public var eventLog: EventLog? { engine?.log }

    /// The log's counters — recorded, committed, dropped by reason (including `sampled_out`, `rate_limited`,
    /// `after_shutdown` and processors' reasons) — and the state of each exporter.
    public var statistics: (log: LogStatistics, exporters: [ExporterStatus])? {
        engine.map { ($0.log.statistics, $0.pipeline.status) }
    }

    private func lifecycleEvent(_ kind: LifecycleEvent.Kind, _ attributes: Attributes) {
        guard let engine else { return }
        _ = engine.log.append(.lifecycle(LifecycleEvent(kind: kind, attributes: attributes)), timestampUnixNano: wallClockNanos())
    }

    // MARK: Lifecycle

    /// Starts exporting and collecting metrics in tasks of their own (for code without a `ServiceGroup`).
    /// Calling it again does nothing.
    public func start() {
        let first = lifecycle.withLock { state -> Bool in
            guard case .built = state else { return false }
            state = .started
            return true
        }
        guard first, let engine else { return }
        engine.pipeline.start()
        engine.metrics.start()
        engine.openSpans.start()
    }

    /// Runs until the `ServiceGroup` shuts down gracefully (then ``shutdown(timeout:)`` with the configured
    /// timeout) or the task is cancelled (then shuts down without waiting for exporters).
    public func run() async throws {
        start()
        do {
            try await gracefulShutdown()
            await shutdown(timeout: configuration.shutdownTimeout)
        } catch {
            await shutdown(timeout: .zero)
        }
    }

    /// Returns once everything recorded before the call is durable in the log (nil after `timeout`).
    ///
    /// - Returns: the last durable sequence, or nil when the deadline passed first or the client is shut down.
    @discardableResult
    public func flush(timeout: Duration = .seconds(5)) async -> UInt64? {
        guard let engine else { return nil }
        return await withDeadline(timeout) { try await engine.log.flush() }
    }

    /// Collects the metrics, then returns true once everything recorded before the call was also accepted (or
    /// given up as a dead letter) by every exporter; false when `timeout` passed first.
    public func forceExport(timeout: Duration = .seconds(10)) async -> Bool {
        guard let engine else { return true }
        let clock = ContinuousClock()
        let start = clock.now
        _ = try? await engine.metrics.collect()
        guard let last = await flush(timeout: timeout) else { return false }
        let left = timeout - (clock.now - start)
        return await engine.pipeline.waitUntilHandled(through: last, timeout: max(left, .zero))
    }

    /// Records a `shutdown` lifecycle event and collects the metrics once more, exports for at most `timeout`, and
    /// closes the log. What was not exported stays on disk and is exported after the next start; nothing is
    /// dropped. Recording calls after it are dropped and counted (`after_shutdown`). Calling it again does
    /// nothing.
    public func shutdown(timeout: Duration? = nil) async {
        let previous = lifecycle.withLock { state -> Lifecycle in
            defer { state = .shutDown }
            return state
        }
        if case .shutDown = previous { return }
        guard let engine else { return }
        let clock = ContinuousClock()
        let deadline = clock.now + (timeout ?? configuration.shutdownTimeout)
        lifecycleEvent(.shutdown, ["service.name": .string(configuration.serviceName)])
        engine.bus.close()
        if case .started = previous {
            await engine.metrics.stop()  // collects once more
        } else {
            _ = try? await engine.metrics.collect()
        }
        if let last = await flush(timeout: max(deadline - clock.now, .zero)), case .started = previous {
            _ = await engine.pipeline.waitUntilHandled(through: last, timeout: max(deadline - clock.now, .zero))
        }
        await engine.pipeline.stop()
        if case .started = previous { await engine.openSpans.stop() } else { try? await engine.openSpans.checkpoint() }
        engine.log.close()
    }

    private func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async -> T? {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { try? await body() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    // MARK: Instruments

    private func core(_ kind: InstrumentKind, _ name: String, _ unit: String, _ description: String, _ scope: InstrumentationScope?) -> InstrumentCore {
        if let engine, !description.isEmpty { engine.metrics.describe(instrument: name, as: description) }
        let bus = engine.flatMap { $0.signals.contains(.metrics) ? $0.bus : nil }
        return InstrumentCore(bus: bus, kind: kind, name: name, unit: unit, scope: scope ?? Self.defaultScope)
    }

    /// A monotonic counter; cache the handle (it is a small value) or ask again.
    public func counter(_ name: String, unit: String = "", description: String = "", scope: InstrumentationScope? = nil) -> Counter {
        Counter(core: core(.counter, name, unit, description, scope))
    }

    public func upDownCounter(_ name: String, unit: String = "", description: String = "", scope: InstrumentationScope? = nil) -> UpDownCounter {
        UpDownCounter(core: core(.upDownCounter, name, unit, description, scope))
    }

    public func gauge(_ name: String, unit: String = "", description: String = "", scope: InstrumentationScope? = nil) -> Gauge {
        Gauge(core: core(.gauge, name, unit, description, scope))
    }

    public func histogram(_ name: String, unit: String = "", description: String = "", scope: InstrumentationScope? = nil) -> Histogram {
        Histogram(core: core(.histogram, name, unit, description, scope))
    }

    // MARK: Logs

    /// Emits a log record carrying the current span's trace and span id (from `context`, or the task's
    /// `ServiceContext`). An `error` adds `exception.type` and `exception.message`.
    public func log(
        _ severity: Severity, _ message: String, _ attributes: consuming Attributes = [:], error: (any Error)? = nil,
        context: ServiceContext? = nil, scope: InstrumentationScope? = nil
    ) {
        guard let engine, engine.logsEnabled else { return }
        let now = wallClockNanos()
        let span = (context ?? ServiceContext.current)?.spanContext
        if let error {
            for attribute in TelemetrySpan.exceptionAttributes(error) { attributes.set(attribute.key, attribute.value) }
        }
        engine.bus.log(severity, message, attributes, span: span, timeUnixNano: now, scope: scope ?? Self.defaultScope)
    }

    // MARK: Spans

    /// Starts a span whose parent is the current span of `context` (or of the task's `ServiceContext`; a remote
    /// one extracted by ``W3CPropagation/extract(_:into:)`` counts too). End it with ``TelemetrySpan/end(at:)``;
    /// ``withSpan(_:kind:attributes:context:_:)-(_,_,_,_,(TelemetrySpan)throws->T)`` does both and sets the context
    /// for its closure.
    public func startSpan(
        _ name: String, kind: SpanKind = .internal, attributes: consuming Attributes = [:], links: [SpanLink] = [],
        context: ServiceContext? = nil, scope: InstrumentationScope? = nil, at start: UInt64? = nil
    ) -> TelemetrySpan {
        let parent = (context ?? ServiceContext.current)?.spanContext.flatMap { $0.isValid ? $0 : nil }
        let start = start ?? wallClockNanos()
        let traceID = parent?.traceID ?? IDGenerator.traceID()
        // The engine lives as long as the client: no reference counting on it per span.
        let (bus, sampled, limits) = unretainedEngine?._withUnsafeGuaranteedRef { engine -> (CommandBus?, Bool, SpanLimits) in
            guard engine.tracesEnabled else { return (nil, false, engine.spanLimits) }
            guard engine.sampler.shouldSample(traceID: traceID, parent: parent) else {
                engine.bus.drop(.sampledOut)
                return (nil, false, engine.spanLimits)
            }
            return (engine.bus, true, engine.spanLimits)
        } ?? (nil, false, SpanLimits.defaults)
        let spanContext = SpanContext(traceID: traceID, spanID: IDGenerator.spanID(), traceFlags: sampled ? 1 : 0, traceState: parent?.traceState ?? "")
        return TelemetrySpan(
            name: name, context: spanContext, parentSpanID: parent?.spanID ?? .invalid, parentIsRemote: parent?.isRemote ?? false,
            kind: kind, start: start, attributes: attributes, links: links, scope: scope ?? Self.defaultScope, bus: bus, limits: limits)
    }

    /// One key: the span carries its context (``ServiceContext/spanContext`` reads it from there).
    private func childContext(_ base: ServiceContext, _ span: TelemetrySpan) -> ServiceContext {
        base.settingSpan(span)
    }

    /// Runs `body` inside a new span, the current one in the task's `ServiceContext` for the closure, so that
    /// spans started inside (across `await`, in task groups, and in detached tasks given the context) are its
    /// children. The span ends when `body` returns or throws; a thrown error sets status error and records an
    /// `exception` event.
    public func withSpan<T>(
        _ name: String, kind: SpanKind = .internal, attributes: consuming Attributes = [:], context: ServiceContext? = nil,
        isolation: isolated (any Actor)? = #isolation, _ body: (TelemetrySpan) async throws -> T
    ) async rethrows -> T {
        // The task's context is read once, for the parent and for the child's context.
        let base = context ?? ServiceContext.current ?? .topLevel
        let span = startSpan(name, kind: kind, attributes: attributes, context: base)
        do {
            let result = try await ServiceContext.withValue(childContext(base, span)) { try await body(span) }
            span.end()
            return result
        } catch {
            span.end(throwing: error)
            throw error
        }
    }

    /// The synchronous form of ``withSpan(_:kind:attributes:context:isolation:_:)``.
    public func withSpan<T>(
        _ name: String, kind: SpanKind = .internal, attributes: consuming Attributes = [:], context: ServiceContext? = nil,
        _ body: (TelemetrySpan) throws -> T
    ) rethrows -> T {
        // The task's context is read once, for the parent and for the child's context.
        let base = context ?? ServiceContext.current ?? .topLevel
        let span = startSpan(name, kind: kind, attributes: attributes, context: base)
        do {
            let result = try ServiceContext.withValue(childContext(base, span)) { try body(span) }
            span.end()
            return result
        } catch {
            span.end(throwing: error)
            throw error
        }
    }

    // MARK: Propagation

    /// Writes the current span (of `context`, or of the task's `ServiceContext`) and baggage into outgoing
    /// request headers, in the formats of ``TelemetryFlow/Configuration/propagators``.
    public func inject(into headers: inout [String: String], context: ServiceContext? = nil) {
        W3CPropagation.inject(context ?? ServiceContext.current ?? .topLevel, into: &headers, propagators: configuration.propagators)
    }

    /// Reads an incoming request's headers into `context`: the next span started in it is a child of the caller's.
    public func extract(_ headers: [String: String], into context: inout ServiceContext) {
        W3CPropagation.extract(headers, into: &context, propagators: configuration.propagators)
    }

    // MARK: Custom signals

    /// Records one record of a registered custom signal type; its plugin validates it (an invalid record, or one
    /// of an unregistered type, is dropped and counted as `invalid_custom_record`).
    public func record(_ signal: SignalType, name: String, body: [UInt8], attributes: Attributes = [:]) {
        guard let engine else { return }
        engine.bus.dispatch(RecordCustom(
            record: CustomSignalRecord(signal: signal, name: name, attributes: attributes, body: body), timeUnixNano: wallClockNanos()))
    }
}
