import CCurl

/// What the running libcurl can do, read at run time.
package struct CurlCapabilities: Sendable, Hashable {
    /// The version as 0xXXYYZZ.
    package let versionNumber: UInt32
    package let supportsHTTP2: Bool

    package static let current = CurlCapabilities(versionNumber: UInt32(tf_curl_version_num()), supportsHTTP2: tf_curl_has_http2() != 0)

    package var versionString: String { "\(versionNumber >> 16).\((versionNumber >> 8) & 0xff).\(versionNumber & 0xff)" }

    /// libcurl before 8.0 fails the second request on a reused HTTP/2 connection ("Error in the HTTP2 framing
    /// layer", curl issue 10634); on those versions HTTP/2 requests get a fresh connection each.
    package var reusesHTTP2Connections: Bool { versionNumber >= 0x08_00_00 }
}

