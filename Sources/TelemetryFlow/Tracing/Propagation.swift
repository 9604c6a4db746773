public import ServiceContextModule
import TelemetryFlowCore
import W3CTraceContext

/// W3C `baggage` entries: name → value (with optional `;`-separated properties, kept as written).
public struct Baggage: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public var value: String
        /// Properties after the value (`;key=value`), as received.
        public var properties: String
        public init(value: String, properties: String = "") {
            self.value = value
            self.properties = properties
        }
    }

    public private(set) var entries: [String: Entry] = [:]

    public init(_ entries: [String: String] = [:]) {
        for (k, v) in entries { self.entries[k] = Entry(value: v) }
    }

    public subscript(_ key: String) -> String? {
        get { entries[key]?.value }
        set { entries[key] = newValue.map { Entry(value: $0) } }
    }

    /// The limits of the W3C specification: at most 180 entries and 8192 bytes in the header.
    static let maxEntries = 180
    static let maxHeaderBytes = 8192

    /// Parses a `baggage` header; malformed members are skipped (as the specification asks), and nothing past
    /// the size limits is read.
    public init(headerValue: String) {
        guard headerValue.utf8.count <= Self.maxHeaderBytes else { return }
        for member in headerValue.split(separator: ",") where entries.count < Self.maxEntries {
            let parts = member.split(separator: ";", maxSplits: 1)
            guard let pair = parts.first else { continue }
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            let key = String(kv[0]).trimmingWhitespace()
            guard !key.isEmpty, key.utf8.allSatisfy(Self.isTokenByte) else { continue }
            let value = String(kv[1]).trimmingWhitespace().percentDecoded
            entries[key] = Entry(value: value, properties: parts.count > 1 ? String(parts[1]).trimmingWhitespace() : "")
        }
    }

    /// The `baggage` header value (nil when empty), values percent-encoded.
    public var headerValue: String? {
        guard !entries.isEmpty else { return nil }
        var out: [String] = []
        var bytes = 0
        for key in entries.keys.sorted() {
            let entry = entries[key]!
            let member = key + "=" + Self.percentEncode(entry.value) + (entry.properties.isEmpty ? "" : ";" + entry.properties)
            bytes += member.utf8.count + 1
            if bytes > Self.maxHeaderBytes || out.count == Self.maxEntries { break }
            out.append(member)
        }
        return out.joined(separator: ",")
    }

    private static func isTokenByte(_ b: UInt8) -> Bool {
        // RFC 7230 token characters.
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
    }

    private static func percentEncode(_ value: String) -> String {
        var out = ""
        for b in value.utf8 {
            // baggage-octet: printable ASCII except space, '"', ',', ';', '\' and '%'.
            if (0x21...0x7E).contains(b) && ![0x22, 0x2C, 0x3B, 0x5C, 0x25].contains(b) {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "%" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

/// A context propagation format (`OTEL_PROPAGATORS`).
public enum Propagator: String, Sendable, Hashable, CaseIterable {
    /// W3C Trace Context: `traceparent`, `tracestate`.
    case traceContext = "tracecontext"
    /// W3C Baggage: `baggage`.
    case baggage
}

/// W3C Trace Context (`traceparent`, `tracestate`) and `baggage` across process boundaries, through any
/// carrier of string headers. Parsing is swift-w3c-trace-context's.
public enum W3CPropagation {
    public static let traceParentHeader = "traceparent"
    public static let traceStateHeader = "tracestate"
    public static let baggageHeader = "baggage"

    /// Writes the current span context and baggage of `context` into `headers`.
    public static func inject(_ context: ServiceContext, into headers: inout [String: String], propagators: Set<Propagator> = [.traceContext, .baggage]) {
        if propagators.contains(.traceContext), let span = context.spanContext, span.isValid {
            let trace = TraceContext(
                traceID: W3CTraceContext.TraceID(bytes: tuple16(span.traceID.bytes)),
                spanID: W3CTraceContext.SpanID(bytes: tuple8(span.spanID.bytes)),
                flags: TraceFlags(rawValue: span.traceFlags),
                state: TraceState())
            headers[traceParentHeader] = trace.traceParentHeaderValue
            if !span.traceState.isEmpty { headers[traceStateHeader] = span.traceState }
        }
        if propagators.contains(.baggage), let baggage = context.baggage?.headerValue { headers[baggageHeader] = baggage }
    }

    /// Reads `traceparent`, `tracestate` and `baggage` (header names case-insensitive) into `context`: the
    /// extracted span context is remote, and becomes the parent of the next span started in `context`. A
    /// malformed `traceparent` is ignored (the next span starts a new trace), as the specification asks.
    public static func extract(_ headers: [String: String], into context: inout ServiceContext, propagators: Set<Propagator> = [.traceContext, .baggage]) {
        func header(_ name: String) -> String? {
            headers[name] ?? headers.first { $0.key.lowercased() == name }?.value
        }
        if propagators.contains(.traceContext), let parent = header(traceParentHeader),
            let trace = try? TraceContext(traceParentHeaderValue: parent, traceStateHeaderValue: header(traceStateHeader)),
            let traceID = TelemetryFlowCore.TraceID(bytes: bytes(trace.traceID.bytes)),
            let spanID = TelemetryFlowCore.SpanID(bytes: bytes(trace.spanID.bytes)), traceID.isValid, spanID.isValid
        {
            context.spanContext = SpanContext(
                traceID: traceID, spanID: spanID, traceFlags: trace.flags.rawValue, traceState: trace.traceStateHeaderValue ?? "",
                isRemote: true)
            context.span = nil
        }
        if propagators.contains(.baggage), let baggage = header(baggageHeader) {
            let parsed = Baggage(headerValue: baggage)
            if !parsed.entries.isEmpty { context.baggage = parsed }
        }
    }

    private static func tuple16(_ b: [UInt8]) -> W3CTraceContext.TraceID.Bytes {
        (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])
    }

    private static func tuple8(_ b: [UInt8]) -> W3CTraceContext.SpanID.Bytes {
        (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7])
    }

    private static func bytes<T>(_ tuple: T) -> [UInt8] {
        withUnsafeBytes(of: tuple) { Array($0) }
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
