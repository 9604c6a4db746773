import CCurl
import CSupport
import Glibc
import Synchronization
import TelemetryFlowCore

/// The multi handle and its I/O thread.
///
/// `@unchecked Sendable`, with these invariants:
/// - `lock` lives in its own allocation (a stable address, as pthread mutexes need) and guards `pending`,
///   `cancellations`, `stopping` and `stopped`.
/// - `multi` is valid until the I/O thread cleans it up, which it does with `lock` held, after setting `stopped`.
///   Every other thread touches `multi` only through `curl_multi_wakeup`, with `lock` held and `stopped` false, so
///   no call can reach a cleaned-up handle.
/// - `inFlight`, and every easy handle in it, are touched by the I/O thread only.
/// - The thread holds a strong reference to the engine until it returns, so the engine (and `lock`) outlive it.
final class CurlEngine: @unchecked Sendable {
    private let multi: UnsafeMutableRawPointer
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private var pending: [CurlTransfer] = []
    private var cancellations: [CurlTransfer] = []
    private var stopping = false
    private var stopped = false
    private var inFlight: [UnsafeMutableRawPointer: CurlTransfer] = [:]

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    init(maxConnectionsPerHost: Int) throws {
        _ = Self.globalInit
        guard let multi = curl_multi_init() else { throw TelemetryFlowError(.transport, "curl_multi_init failed") }
        self.multi = multi
        _ = tf_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost)
        _ = tf_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        let unmanaged = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let engine = Unmanaged<CurlEngine>.fromOpaque(arg!).takeRetainedValue()
            _ = tf_set_thread_name("tflow-http")
            engine.run()
            return nil
        }, unmanaged.toOpaque())
        guard rc == 0 else {
            unmanaged.release()
            curl_multi_cleanup(multi)
            stopped = true
            throw TelemetryFlowError(.transport, "could not start the HTTP I/O thread (errno \(rc))")
        }
        pthread_detach(thread)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    /// Queues `transfer` for the I/O thread, or fails it at once when the engine is stopping.
    func submit(_ transfer: CurlTransfer) {
        pthread_mutex_lock(lock)
        let rejected = stopping
        if !rejected {
            pending.append(transfer)
            curl_multi_wakeup(multi)
        }
        pthread_mutex_unlock(lock)
        if rejected { transfer.continuation.resume(returning: .failure(Self.closedError)) }
    }

    /// Asks the I/O thread to abort `transfer` (if it has not completed yet) and fail it with `cancelled`.
    func cancel(_ transfer: CurlTransfer) {
        transfer.cancelRequested.store(true, ordering: .releasing)
        pthread_mutex_lock(lock)
        if !stopping {
            cancellations.append(transfer)
            curl_multi_wakeup(multi)
        }
        pthread_mutex_unlock(lock)
    }

    /// Fails every transfer and ends the I/O thread. Safe to call any number of times, from any thread.
    func stop() {
        pthread_mutex_lock(lock)
        if !stopping {
            stopping = true
            curl_multi_wakeup(multi)
        }
        pthread_mutex_unlock(lock)
    }

    private static let closedError = TelemetryFlowError(.closed, "the HTTP client was shut down")
    private static let cancelledError = TelemetryFlowError(.cancelled, "the request was cancelled")

    private func run() {
        var running: Int32 = 0
        while true {
            pthread_mutex_lock(lock)
            let newTransfers = pending
            let cancelled = cancellations
            pending.removeAll()
            cancellations.removeAll()
            let stop = stopping
            pthread_mutex_unlock(lock)
            if stop {
                for t in newTransfers { t.continuation.resume(returning: .failure(Self.closedError)) }
                for (easy, t) in inFlight {
                    curl_multi_remove_handle(multi, easy)
                    t.release()
                    t.continuation.resume(returning: .failure(Self.closedError))
                }
                inFlight.removeAll()
                pthread_mutex_lock(lock)
                stopped = true
                curl_multi_cleanup(multi)
                pthread_mutex_unlock(lock)
                return
            }
            for t in newTransfers { start(t) }
            for t in cancelled { abort(t) }
            curl_multi_perform(multi, &running)
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                finish(easy, code)
            }
            // libcurl shortens the wait to its own next timeout; with nothing in flight the thread sleeps until a
            // submit, a cancellation or stop wakes it.
            curl_multi_poll(multi, nil, 0, inFlight.isEmpty ? 3_600_000 : 1000, nil)
        }
    }

    /// Removes a cancelled transfer that is still in flight and fails it; one that already finished is left alone.
    private func abort(_ t: CurlTransfer) {
        guard let easy = t.easy, inFlight.removeValue(forKey: easy) != nil else { return }
        curl_multi_remove_handle(multi, easy)
        t.release()
        t.continuation.resume(returning: .failure(Self.cancelledError))
    }

    private func fail(_ t: CurlTransfer, _ message: String) {
        t.release()
        t.continuation.resume(returning: .failure(TelemetryFlowError(.transport, message)))
    }

    private func start(_ t: CurlTransfer) {
        if t.cancelRequested.load(ordering: .acquiring) {
            return t.continuation.resume(returning: .failure(Self.cancelledError))
        }
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
        ok = ok && tf_curl_easy_setopt_callback(easy, CURLOPT_WRITEFUNCTION, curlWriteCallback) == CURLE_OK
        ok = ok && tf_curl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me) == CURLE_OK
        ok = ok && tf_curl_easy_setopt_callback(easy, CURLOPT_HEADERFUNCTION, curlHeaderCallback) == CURLE_OK
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
