import CCurl
import Glibc
public import TelemetryFlowCore

/// The HTTP version a request asks for.
public enum HTTPVersion: Sendable, Hashable {
    /// HTTP/1.1 with keep-alive.
    case http1_1
    /// HTTP/2 negotiated with ALPN over TLS; `http://` URLs use HTTP/1.1.
    case http2
    /// Cleartext HTTP/2 without upgrade ("prior knowledge"), as gRPC uses on `http://` endpoints.
    case http2PriorKnowledge
}

/// How a request verifies the server and authenticates itself over TLS (`https://` URLs).
public struct TLSOptions: Sendable, Hashable {
    /// Skip peer and host verification (only when explicitly asked).
    public var insecure = false
    /// PEM file of the certificate authorities to trust instead of the system's.
    public var certificateAuthorityFile: String?
    /// PEM client certificate for mutual TLS (with ``clientKeyFile``).
    public var clientCertificateFile: String?
    /// PEM private key of ``clientCertificateFile``.
    public var clientKeyFile: String?

    public init(insecure: Bool = false, certificateAuthorityFile: String? = nil, clientCertificateFile: String? = nil, clientKeyFile: String? = nil) {
        self.insecure = insecure
        self.certificateAuthorityFile = certificateAuthorityFile
        self.clientCertificateFile = clientCertificateFile
        self.clientKeyFile = clientKeyFile
    }
}

/// One HTTP request. The body is sent as is (compress it first when wanted).
public struct HTTPRequest: Sendable {
    public var url: String
    public var method = "POST"
    public var headers: [(name: String, value: String)] = []
    public var body: [UInt8] = []
    public var timeout: Duration = .seconds(10)
    public var version: HTTPVersion = .http1_1
    /// TLS verification and client authentication.
    public var tls = TLSOptions()
    /// Open a new connection for this request and close it afterwards.
    public var freshConnection = false

    public init(url: String, body: [UInt8] = [], headers: [(name: String, value: String)] = []) {
        self.url = url
        self.body = body
        self.headers = headers
    }
}

/// A complete HTTP response.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Response headers, names lowercased, in order.
    public var headers: [(name: String, value: String)]
    /// Trailer fields (HTTP/2), names lowercased.
    public var trailers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The HTTP version used: 11 for HTTP/1.1, 20 for HTTP/2.
    public var httpVersion: Int
    /// Connections libcurl opened for this request: 0 when it reused one (or multiplexed onto one).
    public var newConnections: Int = 0

    /// The first header (or, failing that, trailer) named `name` (lowercase).
    public func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.value ?? trailers.first { $0.name == name }?.value
    }

    /// The first trailer (or, failing that, header) named `name`: how gRPC status is read, trailers-only
    /// responses included.
    public func trailer(_ name: String) -> String? {
        trailers.first { $0.name == name }?.value ?? headers.first { $0.name == name }?.value
    }
}

/// What the running libcurl can do, read at run time.
public struct CurlCapabilities: Sendable, Hashable {
    /// The version as 0xXXYYZZ.
    public let versionNumber: UInt32
    public let supportsHTTP2: Bool

    public static let current = CurlCapabilities(versionNumber: UInt32(tf_curl_version_num()), supportsHTTP2: tf_curl_has_http2() != 0)

    public var versionString: String { "\(versionNumber >> 16).\((versionNumber >> 8) & 0xff).\(versionNumber & 0xff)" }

    /// libcurl before 8.0 fails the second request on a reused HTTP/2 connection ("Error in the HTTP2 framing
    /// layer", curl issue 10634); on those versions HTTP/2 requests get a fresh connection each.
    public var reusesHTTP2Connections: Bool { versionNumber >= 0x08_00_00 }
}

/// An HTTP client on libcurl's multi interface: one I/O thread drives every transfer in flight, connections are
/// kept and reused across requests, and `send` suspends the caller until its transfer completes.
public final class HTTPClient: Sendable {
    private let engine: CurlEngine
    public let capabilities = CurlCapabilities.current

    /// Starts the I/O thread.
    ///
    /// - Parameter maxConnectionsPerHost: most connections opened to one host (0: no limit).
    public init(maxConnectionsPerHost: Int = 8) throws {
        engine = try CurlEngine(maxConnectionsPerHost: maxConnectionsPerHost)
    }

    deinit { engine.stop() }

    /// Sends `request` and returns the response; HTTP error statuses are responses, not errors.
    ///
    /// - Throws: ``TelemetryFlowError/Code/timedOut`` when the request timed out,
    ///   ``TelemetryFlowError/Code/transport`` for connection, TLS and protocol failures (the libcurl code is in
    ///   `underlying`), ``TelemetryFlowError/Code/closed`` after ``shutdown()``.
    public func send(_ request: HTTPRequest) async throws(TelemetryFlowError) -> HTTPResponse {
        var request = request
        if request.version != .http1_1 && !capabilities.reusesHTTP2Connections { request.freshConnection = true }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<HTTPResponse, TelemetryFlowError>, Never>) in
            engine.submit(Transfer(request: request, continuation: continuation))
        }
        return try result.get()
    }

    /// Fails the transfers in flight and stops the I/O thread.
    public func shutdown() { engine.stop() }
}

/// One transfer and the state its callbacks fill.
final class Transfer: @unchecked Sendable {
    let request: HTTPRequest
    let continuation: CheckedContinuation<Result<HTTPResponse, TelemetryFlowError>, Never>
    var easy: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    var trailers: [(name: String, value: String)] = []
    var headersDone = false
    var uploadBody: UnsafeMutableBufferPointer<UInt8>?
    /// libcurl's detailed message for a failed transfer (CURLOPT_ERRORBUFFER).
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))

    init(request: HTTPRequest, continuation: CheckedContinuation<Result<HTTPResponse, TelemetryFlowError>, Never>) {
        self.request = request
        self.continuation = continuation
        errorBuffer.initialize(to: 0)
    }

    deinit { errorBuffer.deallocate() }

    func release() {
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
        if let easy { curl_easy_cleanup(easy) }
        easy = nil
        uploadBody?.deallocate()
        uploadBody = nil
    }

    func headerLine(_ line: String) {
        var text = Substring(line)
        while let last = text.last, last.isNewline || last == " " { text = text.dropLast() }
        if text.isEmpty {
            headersDone = true
            return
        }
        if text.hasPrefix("HTTP/") {
            // A new response head (after 100 Continue or a redirect): start over.
            headers.removeAll()
            headersDone = false
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = text[..<colon].lowercased()
        var value = text[text.index(after: colon)...]
        while value.first == " " || value.first == "\t" { value = value.dropFirst() }
        if headersDone { trailers.append((name, String(value))) } else { headers.append((name, String(value))) }
    }
}

private let writeCallback: tf_curl_data_callback = { data, size, count, userdata in
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    if n > 0, let data { data.withMemoryRebound(to: UInt8.self, capacity: n) { transfer.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) } }
    if !transfer.headersDone { transfer.headersDone = true }
    return n
}

private let headerCallback: tf_curl_data_callback = { data, size, count, userdata in
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    if n > 0, let data {
        let line = data.withMemoryRebound(to: UInt8.self, capacity: n) { String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self) }
        transfer.headerLine(line)
    }
    return n
}

/// The multi handle and its I/O thread.
final class CurlEngine: @unchecked Sendable {
    private let multi: UnsafeMutableRawPointer
    private var mutex = pthread_mutex_t()
    private var pending: [Transfer] = []
    private var stopping = false
    private var stopped = false
    private var thread = pthread_t()
    private var inFlight: [UnsafeMutableRawPointer: Transfer] = [:]  // touched by the I/O thread only

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    init(maxConnectionsPerHost: Int) throws {
        _ = Self.globalInit
        guard let multi = curl_multi_init() else { throw TelemetryFlowError(.transport, "curl_multi_init failed") }
        self.multi = multi
        _ = tf_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost)
        _ = tf_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        pthread_mutex_init(&mutex, nil)
        let unmanaged = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { arg in
            let engine = Unmanaged<CurlEngine>.fromOpaque(arg!).takeRetainedValue()
            engine.run()
            return nil
        }, unmanaged.toOpaque())
        guard rc == 0 else {
            unmanaged.release()
            curl_multi_cleanup(multi)
            throw TelemetryFlowError(.transport, "could not start the HTTP I/O thread (errno \(rc))")
        }
        pthread_detach(thread)
    }

    func submit(_ transfer: Transfer) {
        pthread_mutex_lock(&mutex)
        let rejected = stopping
        if !rejected { pending.append(transfer) }
        pthread_mutex_unlock(&mutex)
        if rejected {
            transfer.continuation.resume(returning: .failure(TelemetryFlowError(.closed, "the HTTP client was shut down")))
        } else {
            curl_multi_wakeup(multi)
        }
    }

    func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_mutex_unlock(&mutex)
        curl_multi_wakeup(multi)
    }

    private func run() {
        var running: Int32 = 0
        while true {
            pthread_mutex_lock(&mutex)
            let newTransfers = pending
            pending.removeAll()
            let stop = stopping
            pthread_mutex_unlock(&mutex)
            if stop {
                for t in newTransfers { t.continuation.resume(returning: .failure(TelemetryFlowError(.closed, "the HTTP client was shut down"))) }
                for (easy, t) in inFlight {
                    curl_multi_remove_handle(multi, easy)
                    t.release()
                    t.continuation.resume(returning: .failure(TelemetryFlowError(.closed, "the HTTP client was shut down")))
                }
                inFlight.removeAll()
                curl_multi_cleanup(multi)
                return
            }
            for t in newTransfers { start(t) }
            curl_multi_perform(multi, &running)
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                finish(easy, code)
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }

    private func fail(_ t: Transfer, _ message: String) {
        t.release()
        t.continuation.resume(returning: .failure(TelemetryFlowError(.transport, message)))
    }

    private func start(_ t: Transfer) {
        guard let easy = curl_easy_init() else { return fail(t, "curl_easy_init failed") }
        t.easy = easy
        let r = t.request
        var ok = true
        func set(_ option: CURLoption, _ value: Int) { ok = ok && tf_curl_easy_setopt_long(easy, option, value) == CURLE_OK }
        ok = ok && tf_curl_easy_setopt_string(easy, CURLOPT_URL, r.url) == CURLE_OK
        set(CURLOPT_NOSIGNAL, 1)
        ok = ok && tf_curl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(t.errorBuffer)) == CURLE_OK
        let millis = r.timeout.wholeMilliseconds
        set(CURLOPT_TIMEOUT_MS, millis)
        set(CURLOPT_CONNECTTIMEOUT_MS, min(millis, 10_000))
        switch r.version {
        case .http1_1: set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        case .http2: set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        case .http2PriorKnowledge: set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE))
        }
        if r.tls.insecure {
            set(CURLOPT_SSL_VERIFYPEER, 0)
            set(CURLOPT_SSL_VERIFYHOST, 0)
        }
        let files: [(CURLoption, String?)] = [
            (CURLOPT_CAINFO, r.tls.certificateAuthorityFile), (CURLOPT_SSLCERT, r.tls.clientCertificateFile), (CURLOPT_SSLKEY, r.tls.clientKeyFile),
        ]
        for case let (option, path?) in files { ok = ok && tf_curl_easy_setopt_string(easy, option, path) == CURLE_OK }
        if r.freshConnection {
            set(CURLOPT_FRESH_CONNECT, 1)
            set(CURLOPT_FORBID_REUSE, 1)
        } else if r.version != .http1_1 {
            // Wait for an HTTP/2 connection being set up rather than opening another: requests started together
            // share one connection as streams.
            set(CURLOPT_PIPEWAIT, 1)
        }
        if r.method == "POST" {
            set(CURLOPT_POST, 1)
            let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, r.body.count))
            _ = buffer.initialize(from: r.body)
            t.uploadBody = buffer
            ok = ok && tf_curl_easy_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(r.body.count)) == CURLE_OK
            ok = ok && tf_curl_easy_setopt_pointer(easy, CURLOPT_POSTFIELDS, buffer.baseAddress) == CURLE_OK
        } else {
            ok = ok && tf_curl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, r.method) == CURLE_OK
        }
        var list: UnsafeMutablePointer<curl_slist>? = curl_slist_append(nil, "Expect:")
        for (name, value) in r.headers { list = curl_slist_append(list, "\(name): \(value)") }
        t.headerList = list
        ok = ok && tf_curl_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list)) == CURLE_OK
        let me = Unmanaged.passUnretained(t).toOpaque()
        ok = ok && tf_curl_easy_setopt_callback(easy, CURLOPT_WRITEFUNCTION, writeCallback) == CURLE_OK
        ok = ok && tf_curl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me) == CURLE_OK
        ok = ok && tf_curl_easy_setopt_callback(easy, CURLOPT_HEADERFUNCTION, headerCallback) == CURLE_OK
        ok = ok && tf_curl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, me) == CURLE_OK
        guard ok else { return fail(t, "libcurl rejected an option for \(r.url) (is libcurl built with HTTP/2?)") }
        guard curl_multi_add_handle(multi, easy) == CURLM_OK else { return fail(t, "curl_multi_add_handle failed") }
        inFlight[easy] = t
    }

    private func finish(_ easy: UnsafeMutableRawPointer, _ code: CURLcode) {
        guard let t = inFlight.removeValue(forKey: easy) else { return }
        curl_multi_remove_handle(multi, easy)
        var status = 0
        var version = 0
        _ = tf_curl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        _ = tf_curl_easy_getinfo_long(easy, CURLINFO_HTTP_VERSION, &version)
        var connects = 0
        _ = tf_curl_easy_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects)
        t.release()
        if code != CURLE_OK {
            let text = String(cString: curl_easy_strerror(code))
            let detail = String(cString: t.errorBuffer)
            let underlying = CResultCode(library: "libcurl", code: Int32(code.rawValue), text: text)
            let kind: TelemetryFlowError.Code = code == CURLE_OPERATION_TIMEDOUT ? .timedOut : .transport
            let message = detail.isEmpty || detail == text ? text : "\(text) (\(detail))"
            t.continuation.resume(returning: .failure(TelemetryFlowError(kind, "\(t.request.url): \(message)", underlying: underlying)))
            return
        }
        let httpVersion: Int
        switch version {
        case Int(CURL_HTTP_VERSION_2_0): httpVersion = 20
        case Int(CURL_HTTP_VERSION_1_0): httpVersion = 10
        default: httpVersion = 11
        }
        t.continuation.resume(returning: .success(HTTPResponse(
            status: status, headers: t.headers, trailers: t.trailers, body: t.body, httpVersion: httpVersion, newConnections: connects)))
    }
}

extension Duration {
    /// Whole milliseconds, at least 1 (libcurl and `grpc-timeout` take milliseconds; 0 would mean "no limit").
    var wholeMilliseconds: Int {
        max(1, Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000))
    }
}
