import Glibc
package import TelemetryFlowCore
package import TelemetryFlowTransport

/// The OTLP retry rules (DESIGN.md §5, OTLP specification "Failures" and "Retryable response codes").
package enum OTLPResponseRules {
    /// The HTTP statuses OTLP/HTTP retries.
    package static let retryableHTTPStatuses: Set<Int> = [429, 502, 503, 504]

    /// The gRPC codes OTLP/gRPC retries; RESOURCE_EXHAUSTED only when the server sent RetryInfo.
    package static let retryableGRPCCodes: Set<GRPCStatusCode> = [.cancelled, .deadlineExceeded, .aborted, .outOfRange, .unavailable, .dataLoss]

    /// Maps an OTLP/HTTP response to an export result.
    ///
    /// - Parameters:
    ///   - json: the body is OTLP/JSON (else protobuf).
    ///   - nowUnixSeconds: the current time, for `Retry-After` given as an HTTP date.
    package static func result(http response: HTTPResponse, json: Bool, nowUnixSeconds: Int64) -> ExportResult {
        if (200..<300).contains(response.status) {
            return partialSuccess(json ? jsonPartial(response.body) : protobufPartial(response.body[...]))
        }
        let message = errorMessage(response.body, json: json || (response.header("content-type") ?? "").contains("json"))
        let reason = "HTTP \(response.status)" + (message.isEmpty ? "" : ": \(message)")
        if retryableHTTPStatuses.contains(response.status) {
            let after = response.header("retry-after").flatMap { retryAfter($0, nowUnixSeconds: nowUnixSeconds) }
            return .retryable(reason: reason, retryAfter: after)
        }
        return .permanent(reason: reason)
    }

    /// Maps a gRPC response to an export result.
    package static func result(grpc response: GRPCResponse) -> ExportResult {
        if response.status == .ok { return partialSuccess(protobufPartial(response.payload[...])) }
        let reason = "gRPC \(response.status)" + (response.message.isEmpty ? "" : ": \(response.message)")
        let delay = response.statusDetails.flatMap { retryInfoDelay($0[...]) }
        if retryableGRPCCodes.contains(response.status) { return .retryable(reason: reason, retryAfter: delay) }
        if response.status == .resourceExhausted, let delay { return .retryable(reason: reason, retryAfter: delay) }
        return .permanent(reason: reason)
    }

    /// A transport failure (connection refused, reset, timeout, TLS): the backend may come back, so retry.
    package static func result(transport error: TelemetryFlowError) -> ExportResult {
        .retryable(reason: error.message, retryAfter: nil)
    }

    static func partialSuccess(_ partial: (rejected: Int64, message: String)?) -> ExportResult {
        guard let partial, partial.rejected > 0 else { return .success }
        return .partialSuccess(rejected: Int(partial.rejected), message: partial.message)
    }

    /// `partial_success` (field 1) of an Export*ServiceResponse: rejected count (field 1) and message (field 2).
    static func protobufPartial(_ body: ArraySlice<UInt8>) -> (rejected: Int64, message: String)? {
        var r = ProtobufReader(body)
        while let (field, value) = try? r.next() {
            guard field == 1, let bytes = try? value.asBytes() else { continue }
            var rejected: Int64 = 0
            var message = ""
            var pr = ProtobufReader(bytes)
            while let (f, v) = try? pr.next() {
                if f == 1, let n = try? v.asVarint() { rejected = Int64(bitPattern: n) }
                if f == 2, let s = try? v.asString() { message = s }
            }
            return (rejected, message)
        }
        return nil
    }

    static func jsonPartial(_ body: [UInt8]) -> (rejected: Int64, message: String)? {
        guard !body.isEmpty, let json = try? JSONValue(parsing: body), let partial = json["partialSuccess"] else { return nil }
        let rejected = (partial["rejectedSpans"] ?? partial["rejectedLogRecords"] ?? partial["rejectedDataPoints"])?.int64Value ?? 0
        return (rejected, partial["errorMessage"]?.stringValue ?? "")
    }

    /// The message of a `google.rpc.Status` error body (protobuf field 2, or JSON `message`), else the body text.
    static func errorMessage(_ body: [UInt8], json: Bool) -> String {
        guard !body.isEmpty else { return "" }
        if json, let value = try? JSONValue(parsing: body), let message = value["message"]?.stringValue { return message }
        if !json {
            var r = ProtobufReader(body[...])
            var message: String?
            var valid = true
            while valid {
                do {
                    guard let (f, v) = try r.next() else { break }
                    if f == 2 { message = try v.asString() }
                } catch { valid = false }
            }
            if valid, let message { return message }
        }
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        return text.unicodeScalars.allSatisfy { $0.value >= 0x20 || $0 == "\n" } ? text : "\(body.count) bytes"
    }

    /// `Retry-After` as delay-seconds or an HTTP date (IMF-fixdate, RFC 850 or asctime).
    package static func retryAfter(_ value: String, nowUnixSeconds: Int64) -> Duration? {
        let text = value.trimmingWhitespace()
        if let seconds = Int64(text) { return seconds >= 0 ? .seconds(seconds) : nil }
        guard let date = httpDate(text) else { return nil }
        return .seconds(max(0, date - nowUnixSeconds))
    }

    /// Seconds since the epoch of an HTTP date: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
    /// (`Sunday, 06-Nov-94 08:49:37 GMT`) or asctime (`Sun Nov  6 08:49:37 1994`).
    package static func httpDate(_ text: String) -> Int64? {
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" }).map { String($0).lowercased() }
        var day: Int?, month: Int?, year: Int?, clock: [Int]?
        for part in parts.dropFirst() {
            if part.contains(":") {
                let fields = part.split(separator: ":").compactMap { Int($0) }
                guard fields.count == 3 else { return nil }
                clock = fields
            } else if let m = months.firstIndex(of: part) {
                month = m + 1
            } else if let n = Int(part) {
                if day == nil {
                    day = n
                } else {
                    year = part.count <= 2 ? (n < 70 ? 2000 + n : 1900 + n) : n
                }
            } else if part != "gmt" && part != "utc" {
                return nil
            }
        }
        guard let d = day, let m = month, let y = year, let c = clock, (1...31).contains(d), c[0] < 24, c[1] < 60, c[2] < 61 else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm).
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Int64(days) * 86400 + Int64(c[0] * 3600 + c[1] * 60 + c[2])
    }

    /// The delay of a `google.rpc.RetryInfo` inside a `google.rpc.Status`'s details.
    static func retryInfoDelay(_ status: ArraySlice<UInt8>) -> Duration? {
        var r = ProtobufReader(status)
        while let (field, value) = try? r.next() {
            guard field == 3, let any = try? value.asBytes() else { continue }
            var typeURL = ""
            var payload: ArraySlice<UInt8> = []
            var ar = ProtobufReader(any)
            while let (f, v) = try? ar.next() {
                if f == 1 { typeURL = (try? v.asString()) ?? "" }
                if f == 2 { payload = (try? v.asBytes()) ?? [] }
            }
            guard typeURL.hasSuffix("google.rpc.RetryInfo") else { continue }
            var seconds: Int64 = 0
            var nanos: Int64 = 0
            var rr = ProtobufReader(payload)
            while let (f, v) = try? rr.next() {
                guard f == 1, let duration = try? v.asBytes() else { continue }
                var dr = ProtobufReader(duration)
                while let (df, dv) = try? dr.next() {
                    if df == 1 { seconds = Int64(bitPattern: (try? dv.asVarint()) ?? 0) }
                    if df == 2 { nanos = Int64(Int32(truncatingIfNeeded: (try? dv.asVarint()) ?? 0)) }
                }
            }
            return .seconds(max(0, seconds)) + .nanoseconds(max(0, nanos))
        }
        return nil
    }
}
