/// The HTTP version a request asks for.
package enum HTTPVersion: Sendable, Hashable {
    /// HTTP/1.1 with keep-alive.
    case http1_1
    /// HTTP/2 negotiated with ALPN over TLS; `http://` URLs use HTTP/1.1.
    case http2
    /// Cleartext HTTP/2 without upgrade ("prior knowledge"), as gRPC uses on `http://` endpoints.
    case http2PriorKnowledge
}

/// How a request verifies the server and authenticates itself over TLS (`https://` URLs).
package struct TLSOptions: Sendable, Hashable {
    /// Skip peer and host verification (only when explicitly asked).
    package var insecure = false
    /// PEM file of the certificate authorities to trust instead of the system's.
    package var certificateAuthorityFile: String?
    /// PEM client certificate for mutual TLS (with ``clientKeyFile``).
    package var clientCertificateFile: String?
    /// PEM private key of ``clientCertificateFile``.
    package var clientKeyFile: String?

    package init(insecure: Bool = false, certificateAuthorityFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil) {
        self.insecure = insecure
        self.certificateAuthorityFile = certificateAuthorityFile
        self.clientCertificateFile = clientCertificateFile
        self.clientKeyFile = clientKeyFile
    }
}

/// One HTTP request. The body is sent as is (compress it first when wanted).
package struct HTTPRequest: Sendable {
    package var url: String
    package var method = "POST"
    package var headers: [(name: String, value: String)] = []
    package var body: [UInt8] = []
    package var timeout: Duration = .seconds(10)
    package var version: HTTPVersion = .http1_1
    /// TLS verification and client authentication.
    package var tls = TLSOptions()
    /// Open a new connection for this request and close it afterwards.
    package var freshConnection = false

    package init(url: String, body: [UInt8] = [], headers: [(name: String, value: String)] = []) {
        self.url = url
        self.body = body
        self.headers = headers
    }
}

