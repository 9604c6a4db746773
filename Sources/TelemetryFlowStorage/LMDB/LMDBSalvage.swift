import Glibc
import TelemetryFlowCore

/// Reads LMDB data files without LMDB, for files LMDB cannot open safely.
///
/// LMDB maps its file and trusts it: a truncated file makes it fault on pages past the end, and damaged page
/// headers can send it astray. Before a segment is opened its meta pages are checked here, and a segment that
/// fails the check (or that crashed an earlier open) is rebuilt from the leaf pages this scanner can still
/// read, keeping every record whose checksum holds.
enum LMDBSalvage {
    static let metaMagic: UInt32 = 0xBEEF_C0DE
    static let pageHeaderSize = 16
    static let leafFlag: UInt16 = 0x02
    static let overflowFlag: UInt16 = 0x04
    static let metaFlag: UInt16 = 0x08
    static let leaf2Flag: UInt16 = 0x20
    static let bigDataNodeFlag: UInt16 = 0x01

    struct MetaPage {
        var pageSize: Int
        var lastPage: UInt64
        var transactionID: UInt64
    }

    /// The newest valid meta page of the file at `bytes`, or nil when neither meta page is valid.
    static func newestMeta(_ bytes: UnsafeRawBufferPointer) -> MetaPage? {
        func meta(at offset: Int) -> MetaPage? {
            guard bytes.count >= offset + 152 else { return nil }
            func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + o, as: UInt32.self)) }
            func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + o, as: UInt64.self)) }
            let flags = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 10, as: UInt16.self))
            guard flags & metaFlag != 0, u32(16) == metaMagic, u32(20) == 1 else { return nil }
            let pageSize = Int(u32(40))
            guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else { return nil }
            return MetaPage(pageSize: pageSize, lastPage: u64(136), transactionID: u64(144))
        }
        guard let first = meta(at: 0) else {
            // Page 0 is damaged: try page 1 at the common page sizes.
            return [4096, 8192, 16384, 65536].lazy.compactMap { meta(at: $0) }.first
        }
        guard let second = meta(at: first.pageSize) else { return first }
        return second.transactionID > first.transactionID ? second : first
    }

    /// Why the file at `path` must not be handed to LMDB, or nil when its meta pages are sound and every page
    /// they reference is inside the file.
    static func problem(path: String) -> String? {
        guard let size = PosixFile.size(path) else { return "cannot read its size" }
        if size == 0 { return nil }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "cannot open it" }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 2 * 65536)
        let n = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return "cannot read its first pages" }
        return head.withUnsafeBytes { raw in
            guard let meta = newestMeta(UnsafeRawBufferPointer(rebasing: raw[0..<n])) else {
                return "neither LMDB meta page is valid"
            }
            let needed = (meta.lastPage + 1) * UInt64(meta.pageSize)
            return needed > size ? "it is truncated: \(size) bytes where its meta page needs \(needed)" : nil
        }
    }

    struct ScanResult {
        /// Intact records by sequence.
        var records: [UInt64: [UInt8]] = [:]
        /// Sequences seen only in records whose checksum failed.
        var damaged: Set<UInt64> = []
    }

    /// Every record that can still be read from the leaf and overflow pages of `bytes`.
    static func scan(_ bytes: UnsafeRawBufferPointer) -> ScanResult {
        var result = ScanResult()
        let pageSize = newestMeta(bytes)?.pageSize ?? 4096
        let pageCount = bytes.count / pageSize
        func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
        for page in 2..<max(2, pageCount) {
            let base = page * pageSize
            let flags = UInt16(u16(base + 10))
            guard flags & leafFlag != 0, flags & (leaf2Flag | metaFlag | overflowFlag) == 0 else { continue }
            let lower = u16(base + 12)
            let upper = u16(base + 14)
            guard lower >= pageHeaderSize, lower <= upper, upper <= pageSize else { continue }
            let keyCount = (lower - pageHeaderSize) / 2
            for i in 0..<keyCount {
                let nodeOffset = u16(base + pageHeaderSize + 2 * i)
                guard nodeOffset >= upper, nodeOffset + 16 <= pageSize else { continue }
                let node = base + nodeOffset
                let dataSize = u16(node) | (u16(node + 2) << 16)
                let nodeFlags = UInt16(u16(node + 4))
                let keySize = u16(node + 6)
                guard keySize == 8, let sequence = sequence(fromKey: UnsafeRawBufferPointer(rebasing: bytes[(node + 8)..<(node + 16)])) else {
                    continue
                }
                var dataStart = node + 16
                if nodeFlags & bigDataNodeFlag != 0 {
                    guard node + 24 <= base + pageSize else { continue }
                    let overflowPage = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: node + 16, as: UInt64.self))
                    guard overflowPage < UInt64(pageCount) else { result.damaged.insert(sequence); continue }
                    dataStart = Int(overflowPage) * pageSize + pageHeaderSize
                } else {
                    guard dataStart + dataSize <= base + pageSize else { result.damaged.insert(sequence); continue }
                }
                guard dataSize >= EventCodec.overhead, dataStart + dataSize <= bytes.count else {
                    result.damaged.insert(sequence)
                    continue
                }
                let record = UnsafeRawBufferPointer(rebasing: bytes[dataStart..<(dataStart + dataSize)])
                if (try? EventCodec.envelope(of: record)) != nil {
                    if result.records[sequence] == nil { result.records[sequence] = Array(record) }
                } else {
                    result.damaged.insert(sequence)
                }
            }
        }
        result.damaged.subtract(result.records.keys)
        return result
    }
}
