import Synchronization
package import TelemetryFlowCore

/// An HTTP client on libcurl's multi interface: one I/O thread drives every transfer in flight, connections are
/// kept and reused across requests, and `send` suspends the caller until its transfer completes.
///
/// Shutting down is safe in any order: ``shutdown()`` may be called any number of times, concurrently with
/// ``send(_:)``, and before the client is released.
package final class HTTPClient: Sendable {
    private let engine: CurlEngine
    package let capabilities = CurlCapabilities.current

    /// Starts the I/O thread.
    ///
    /// - Parameter maxConnectionsPerHost: most connections opened to one host (0: no limit).
    package init(maxConnectionsPerHost: Int = 8) throws {
        engine = try CurlEngine(maxConnectionsPerHost: maxConnectionsPerHost)
    }

    deinit { engine.stop() }

    /// Sends `request` and returns the response; HTTP error statuses are responses, not errors.
    ///
    /// - Throws: ``TelemetryFlowError/Code/timedOut`` when the request timed out,
    ///   ``TelemetryFlowError/Code/transport`` for connection, TLS and protocol failures (the libcurl code is in
    ///   `underlying`), ``TelemetryFlowError/Code/closed`` after ``shutdown()``, and
    ///   ``TelemetryFlowError/Code/cancelled`` when the calling task is cancelled (the transfer is aborted).
    package func send(_ request: HTTPRequest) async throws(TelemetryFlowError) -> HTTPResponse {
        var request = request
        if request.version != .http1_1 && !capabilities.reusesHTTP2Connections { request.freshConnection = true }
        let handle = Locked<(transfer: CurlTransfer?, cancelled: Bool)>((nil, false))
        let engine = self.engine
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<HTTPResponse, TelemetryFlowError>, Never>) in
                let transfer = CurlTransfer(request: request, continuation: continuation)
                let cancelledAlready = handle.withLock { state -> Bool in
                    state.transfer = transfer
                    return state.cancelled
                }
                if cancelledAlready { transfer.cancelRequested.store(true, ordering: .releasing) }
                engine.submit(transfer)
            }
        } onCancel: {
            let transfer = handle.withLock { state -> CurlTransfer? in
                state.cancelled = true
                return state.transfer
            }
            if let transfer { engine.cancel(transfer) }
        }
        return try result.get()
    }

    /// Fails the transfers in flight with ``TelemetryFlowError/Code/closed`` and stops the I/O thread. Later sends
    /// fail the same way. Calling it again does nothing.
    package func shutdown() { engine.stop() }
}
