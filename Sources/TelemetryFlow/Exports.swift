@_exported public import TelemetryFlowCore
@_exported public import TelemetryFlowStorage
@_exported public import TelemetryFlowOTLP
@_exported public import Synchronization
