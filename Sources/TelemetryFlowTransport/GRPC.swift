package import TelemetryFlowCore

/// The outcome of a gRPC unary call.
package struct GRPCResponse: Sendable {
    package var status: GRPCStatusCode
    package var message: String
    /// The response message (empty unless status is OK).
    package var payload: [UInt8]
    /// `grpc-status-details-bin`, decoded from base64: a `google.rpc.Status`.
    package var statusDetails: [UInt8]?
    package var http: HTTPResponse
}

/// gRPC unary calls framed by hand over HTTP/2 (PROTOCOL-HTTP2.md): 5-byte length-prefixed messages,
/// `grpc-status`/`grpc-message` read from trailers, or from the headers of a trailers-only response.
package enum GRPC {
    /// Sends one unary call to `url` (`http(s)://host:port/package.Service/Method`).
    ///
    /// - Throws: the errors of ``HTTPClient/send(_:)``; ``TelemetryFlowError/Code/decoding`` when the response is
    ///   not gRPC.
    package static func unary(
        _ client: HTTPClient, url: String, message: [UInt8], headers: [(name: String, value: String)] = [],
        timeout: Duration, compress: Bool, tls: TLSOptions = TLSOptions()
    ) async throws(TelemetryFlowError) -> GRPCResponse {
        let payload = compress ? try Gzip.compress(message) : message
        var body: [UInt8] = [compress ? 1 : 0]
        body.reserveCapacity(payload.count + 5)
        let length = UInt32(payload.count).bigEndian
        withUnsafeBytes(of: length) { body.append(contentsOf: $0) }
        body.append(contentsOf: payload)
        var request = HTTPRequest(url: url, body: body)
        request.version = url.hasPrefix("https://") ? .http2 : .http2PriorKnowledge
        request.timeout = timeout
        request.tls = tls
        request.headers = [
            ("Content-Type", "application/grpc+proto"), ("TE", "trailers"), ("grpc-timeout", "\(timeout.wholeMilliseconds)m"),
            ("grpc-accept-encoding", "gzip"), ("User-Agent", "telemetryflow-swift grpc"),
        ] + (compress ? [("grpc-encoding", "gzip")] : []) + headers
        let response = try await client.send(request)
        return try parse(response)
    }

    static func parse(_ response: HTTPResponse) throws(TelemetryFlowError) -> GRPCResponse {
        guard response.status == 200 else {
            // Not a gRPC answer (a proxy or a plain HTTP server): map the HTTP status as gRPC's spec says.
            let code: GRPCStatusCode
            switch response.status {
            case 400: code = .internal
            case 401: code = .unauthenticated
            case 403: code = .permissionDenied
            case 404: code = .unimplemented
            case 429, 502, 503, 504: code = .unavailable
            default: code = .unknown
            }
            return GRPCResponse(status: code, message: "HTTP \(response.status)", payload: [], statusDetails: nil, http: response)
        }
        guard let statusText = response.trailer("grpc-status"), let raw = Int(statusText) else {
            throw TelemetryFlowError(.decoding, "gRPC response has no grpc-status (content-type \(response.header("content-type") ?? "none"))")
        }
        let message = (response.trailer("grpc-message") ?? "").percentDecoded
        let details = response.trailer("grpc-status-details-bin").flatMap { Base64.decode($0) }
        var payload: [UInt8] = []
        if raw == 0, response.body.count >= 5 {
            let body = response.body
            let length = Int(body[1]) << 24 | Int(body[2]) << 16 | Int(body[3]) << 8 | Int(body[4])
            guard body.count >= 5 + length else { throw TelemetryFlowError(.decoding, "gRPC response message is truncated") }
            payload = Array(body[5..<(5 + length)])
            if body[0] == 1 { payload = try Gzip.decompress(payload) }
        }
        return GRPCResponse(status: GRPCStatusCode(rawValue: raw), message: message, payload: payload, statusDetails: details, http: response)
    }
}
