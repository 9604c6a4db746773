// What a user of `import TelemetryFlow` names: the values, events, plugin protocols and registry (Core), the log
// and its configuration (Storage), and the OTLP plugin. Plumbing stays behind `package` access.
@_exported public import TelemetryFlowCore
@_exported public import TelemetryFlowStorage
@_exported public import TelemetryFlowOTLP
