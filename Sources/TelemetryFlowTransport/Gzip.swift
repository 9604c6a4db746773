import CZlib
package import TelemetryFlowCore

/// gzip compression through zlib.
package enum Gzip {
    /// `bytes` as one gzip member.
    package static func compress(_ bytes: [UInt8], level: Int32 = 6) throws(TelemetryFlowError) -> [UInt8] {
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
    package static func decompress(_ bytes: some Collection<UInt8>, limit: Int = 64 << 20) throws(TelemetryFlowError) -> [UInt8] {
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
