import CZlib
public import TelemetryFlowCore

/// gzip compression through zlib.
public enum Gzip {
    /// `bytes` as one gzip member.
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) throws(TelemetryFlowError) -> [UInt8] {
        var capacity = tf_gzip_bound(bytes.count)
        var out = [UInt8](repeating: 0, count: capacity)
        let rc = bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                tf_gzip(input.baseAddress, input.count, output.baseAddress, &capacity, level)
            }
        }
        guard rc == Z_OK else { throw TelemetryFlowError(.io, "gzip compression failed (zlib \(rc))") }
        out.removeSubrange(capacity...)
        return out
    }

    /// Decompresses a gzip or zlib stream of at most `limit` bytes.
    public static func decompress(_ bytes: some Collection<UInt8>, limit: Int = 64 << 20) throws(TelemetryFlowError) -> [UInt8] {
        let input = Array(bytes)
        var capacity = max(1024, input.count * 4)
        while true {
            var length = capacity
            var out = [UInt8](repeating: 0, count: capacity)
            let rc = input.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in tf_gunzip(i.baseAddress, i.count, o.baseAddress, &length) } }
            if rc == Z_OK {
                out.removeSubrange(length...)
                return out
            }
            guard rc == Z_BUF_ERROR, capacity < limit else {
                throw TelemetryFlowError(.decoding, rc == Z_BUF_ERROR ? "gzip body exceeds \(limit) bytes" : "gzip body is damaged (zlib \(rc))")
            }
            capacity = min(limit, capacity * 4)
        }
    }
}

/// gRPC status codes.
public struct GRPCStatusCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let ok = Self(rawValue: 0)
    public static let cancelled = Self(rawValue: 1)
    public static let unknown = Self(rawValue: 2)
    public static let invalidArgument = Self(rawValue: 3)
    public static let deadlineExceeded = Self(rawValue: 4)
    public static let notFound = Self(rawValue: 5)
    public static let alreadyExists = Self(rawValue: 6)
    public static let permissionDenied = Self(rawValue: 7)
    public static let resourceExhausted = Self(rawValue: 8)
    public static let failedPrecondition = Self(rawValue: 9)
    public static let aborted = Self(rawValue: 10)
    public static let outOfRange = Self(rawValue: 11)
    public static let unimplemented = Self(rawValue: 12)
    public static let `internal` = Self(rawValue: 13)
    public static let unavailable = Self(rawValue: 14)
    public static let dataLoss = Self(rawValue: 15)
    public static let unauthenticated = Self(rawValue: 16)

    static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    public var description: String { Self.names.indices.contains(rawValue) ? Self.names[rawValue] : "CODE_\(rawValue)" }
}

/// The outcome of a gRPC unary call.
public struct GRPCResponse: Sendable {
    public var status: GRPCStatusCode
    public var message: String
    /// The response message (empty unless status is OK).
    public var payload: [UInt8]
    /// `grpc-status-details-bin`, decoded from base64: a `google.rpc.Status`.
    public var statusDetails: [UInt8]?
    public var http: HTTPResponse
}

/// gRPC unary calls framed by hand over HTTP/2 (PROTOCOL-HTTP2.md): 5-byte length-prefixed messages,
/// `grpc-status`/`grpc-message` read from trailers, or from the headers of a trailers-only response.
public enum GRPC {
    /// Sends one unary call to `url` (`http(s)://host:port/package.Service/Method`).
    ///
    /// - Throws: the errors of ``HTTPClient/send(_:)``; ``TelemetryFlowError/Code/decoding`` when the response is
    ///   not gRPC.
    public static func unary(
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
