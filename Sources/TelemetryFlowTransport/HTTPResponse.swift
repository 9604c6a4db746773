/// A complete HTTP response.
package struct HTTPResponse: Sendable {
    package var status: Int
    /// Response headers, names lowercased, in order.
    package var headers: [(name: String, value: String)]
    /// Trailer fields (HTTP/2), names lowercased.
    package var trailers: [(name: String, value: String)]
    package var body: [UInt8]
    /// The HTTP version used: 11 for HTTP/1.1, 20 for HTTP/2.
    package var httpVersion: Int
    /// Connections libcurl opened for this request: 0 when it reused one (or multiplexed onto one).
    package var newConnections: Int = 0

    /// The first header (or, failing that, trailer) named `name` (lowercase).
    package func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.value ?? trailers.first { $0.name == name }?.value
    }

    /// The first trailer (or, failing that, header) named `name`: how gRPC status is read, trailers-only
    /// responses included.
    package func trailer(_ name: String) -> String? {
        trailers.first { $0.name == name }?.value ?? headers.first { $0.name == name }?.value
    }
}

