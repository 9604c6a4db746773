import CCurl
import Synchronization
import TelemetryFlowCore

/// One transfer and the state its callbacks fill.
///
/// `@unchecked Sendable`: apart from ``cancelRequested`` (atomic) and the immutable `request`, every field is
/// touched only by the engine's I/O thread, after the transfer was handed over under the engine's lock; the
/// continuation is resumed exactly once, by whichever of the I/O thread, `submit` (engine stopped) or the stop
/// path removes the transfer from the engine's lists.
final class CurlTransfer: @unchecked Sendable {
    let request: HTTPRequest
    let continuation: CheckedContinuation<Result<HTTPResponse, TelemetryFlowError>, Never>
    /// Set when the sending task was cancelled; the I/O thread then aborts the transfer (or never starts it).
    let cancelRequested = Atomic<Bool>(false)
    var easy: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    var trailers: [(name: String, value: String)] = []
    var headersDone = false
    /// The request body in memory libcurl reads while the transfer runs (CURLOPT_POSTFIELDS keeps the pointer):
    /// allocated in `start`, freed in `release`, after the easy handle that points at it is cleaned up.
    var uploadBody: UnsafeMutableBufferPointer<UInt8>?
    /// libcurl's detailed message for a failed transfer (CURLOPT_ERRORBUFFER): libcurl writes it until the easy
    /// handle is cleaned up, and it lives as long as the transfer, which outlives the handle.
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))

    init(request: HTTPRequest, continuation: CheckedContinuation<Result<HTTPResponse, TelemetryFlowError>, Never>) {
        self.request = request
        self.continuation = continuation
        errorBuffer.initialize(to: 0)
    }

    deinit { errorBuffer.deallocate() }

    /// Frees what libcurl used: the easy handle first, then the header list and body it pointed at.
    func release() {
        if let easy { curl_easy_cleanup(easy) }
        easy = nil
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
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

// The callbacks get the transfer as an unretained pointer: the engine's `inFlight` table holds it for as long as
// its easy handle can call back.
let curlWriteCallback: tf_curl_data_callback = { data, size, count, userdata in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    if n > 0, let data { data.withMemoryRebound(to: UInt8.self, capacity: n) { transfer.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) } }
    if !transfer.headersDone { transfer.headersDone = true }
    return n
}

let curlHeaderCallback: tf_curl_data_callback = { data, size, count, userdata in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    if n > 0, let data {
        let line = data.withMemoryRebound(to: UInt8.self, capacity: n) { String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self) }
        transfer.headerLine(line)
    }
    return n
}
