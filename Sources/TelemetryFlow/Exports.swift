// What a user of `import TelemetryFlow` names: the values, events, plugin protocols and registry (Core), the log
// and its configuration (Storage), and the OTLP plugin. Plumbing stays behind `package` access.
@_exported public import TelemetryFlowCore
@_exported public import TelemetryFlowStorage
@_exported public import TelemetryFlowOTLP
// `ServiceContext`, which carries the current span (and which swift-distributed-tracing shares).
@_exported public import ServiceContextModule
