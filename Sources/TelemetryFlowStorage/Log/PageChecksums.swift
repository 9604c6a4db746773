import Glibc
import TelemetryFlowCore

/// A CRC-32C for every 4 KiB block of a sealed segment file, computed when it is sealed and checked before the
/// first read of the file in a process: LMDB has no checksums of its own and follows whatever a page says.
///
/// Stored in the metadata database `page_checksums` under the segment id, as: file size (u64 LE), block size
/// (u32 LE, 4096), then one u32 LE per block (the last block may be short).
struct PageChecksums: Equatable {
    static let blockSize = 4096
    var fileSize: UInt64
    var checksums: [UInt32]

    /// Reads `path` and checksums it.
    static func compute(path: String) throws(TelemetryFlowError) -> PageChecksums {
        var result = PageChecksums(fileSize: 0, checksums: [])
        try forEachBlock(path) { (block) throws(TelemetryFlowError) in result.checksums.append(CRC32C.checksum(block)) } size: { result.fileSize = $0 }
        return result
    }

    /// Why `path` does not match these checksums, or nil when every block does.
    func mismatch(path: String) -> String? {
        var index = 0
        var bad: [Int] = []
        var size: UInt64 = 0
        do throws(TelemetryFlowError) {
            try Self.forEachBlock(path) { (block) throws(TelemetryFlowError) in
                if index >= checksums.count || CRC32C.checksum(block) != checksums[index] { bad.append(index) }
                index += 1
            } size: { size = $0 }
        } catch {
            return error.message
        }
        if size != fileSize { return "it is \(size) bytes; it was \(fileSize) when sealed" }
        if !bad.isEmpty {
            return "\(bad.count) of its \(checksums.count) 4 KiB blocks fail their checksum (first at byte \(bad[0] * Self.blockSize))"
        }
        return nil
    }

    private static func forEachBlock(
        _ path: String, _ body: (UnsafeRawBufferPointer) throws(TelemetryFlowError) -> Void, size: (UInt64) -> Void
    ) throws(TelemetryFlowError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PosixFile.errnoError("cannot open \(path)") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw PosixFile.errnoError("cannot read the size of \(path)") }
        size(UInt64(max(0, st.st_size)))
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var offset: off_t = 0
        while true {
            var filled = 0
            while filled < chunk {
                let n = pread(fd, buffer.baseAddress! + filled, chunk - filled, offset + off_t(filled))
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw PosixFile.errnoError("cannot read \(path)") }
                if n == 0 { break }
                filled += n
            }
            var at = 0
            while at < filled {
                let n = min(blockSize, filled - at)
                try body(UnsafeRawBufferPointer(rebasing: buffer[at..<(at + n)]))
                at += n
            }
            offset += off_t(filled)
            if filled < chunk { return }
        }
    }

    var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12 + 4 * checksums.count)
        withUnsafeBytes(of: fileSize.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(Self.blockSize).littleEndian) { out.append(contentsOf: $0) }
        for crc in checksums { withUnsafeBytes(of: crc.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    init(fileSize: UInt64, checksums: [UInt32]) {
        self.fileSize = fileSize
        self.checksums = checksums
    }

    init?(encoded bytes: [UInt8]) {
        guard bytes.count >= 12, (bytes.count - 12) % 4 == 0 else { return nil }
        let values = bytes.withUnsafeBytes { raw -> (UInt64, UInt32, [UInt32]) in
            let size = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
            let block = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            let crcs = stride(from: 12, to: raw.count, by: 4).map { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: UInt32.self)) }
            return (size, block, crcs)
        }
        guard values.1 == UInt32(Self.blockSize), values.0 <= UInt64(values.2.count) * UInt64(Self.blockSize),
            values.0 + UInt64(Self.blockSize) > UInt64(values.2.count) * UInt64(Self.blockSize) || values.0 == 0
        else { return nil }
        fileSize = values.0
        checksums = values.2
    }
}

extension PageChecksums {
    /// The checksums of a file already read into memory.
    init(bytes: UnsafeRawBufferPointer) {
        var sums: [UInt32] = []
        var at = 0
        while at < bytes.count {
            let n = Swift.min(Self.blockSize, bytes.count - at)
            sums.append(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)])))
            at += n
        }
        self.init(fileSize: UInt64(bytes.count), checksums: sums)
    }
}
