import TelemetryFlowCore

/// Reads an LMDB data file without LMDB, with every page number, offset and length bounds-checked.
///
/// LMDB maps its file and follows whatever its pages say: a damaged page header sends it past the end of the map
/// (SIGSEGV/SIGBUS), a damaged branch page hides whole subtrees, and `mdb.c` asserts on pages of the wrong kind.
/// So no file goes to LMDB before it passed a check: a sealed segment its page checksums, the active segment and
/// the metadata file ``validate(_:)`` here — a walk of every tree from the newest meta page that checks each page
/// LMDB could visit (its number, kind, bounds, key order, depth, the entry and page counts of its tree, the free
/// list). Files that fail are read by ``salvage(_:)`` instead: the same walk tolerating damage, then a scan of
/// every page for leaves the tree no longer reaches. Every loop here is bounded by the file's page count.
///
/// Layout (little-endian, 64-bit LMDB 0.9): a page starts with `pgno` (u64), `pad` (u16), `flags` (u16), then
/// `lower`/`upper` (u16 each; an overflow page holds its page count as u32 there) and the node offsets (u16
/// each). A node is `lo`/`hi` (u16 each: the data size, or the low 32 bits of a branch child's page number),
/// `flags` (u16; the child's bits 32–47 in a branch), `ksize` (u16), the key, then the data.
struct LMDBPageWalker {
    static let metaMagic: UInt32 = 0xBEEF_C0DE
    static let dataVersion: UInt32 = 1
    static let pageHeaderSize = 16
    static let nodeHeaderSize = 8
    static let invalidPage = UInt64.max

    struct PageFlags {
        static let branch: UInt16 = 0x01
        static let leaf: UInt16 = 0x02
        static let overflow: UInt16 = 0x04
        static let meta: UInt16 = 0x08
        static let leaf2: UInt16 = 0x20
        static let subpage: UInt16 = 0x40
    }

    struct NodeFlags {
        static let bigData: UInt16 = 0x01
        static let subData: UInt16 = 0x02
        static let dupData: UInt16 = 0x04
    }

    /// One tree's record in a meta page or a sub-database node (`MDB_db`, 48 bytes).
    struct Tree: Equatable {
        var flags: UInt16
        var depth: UInt16
        var branchPages: UInt64
        var leafPages: UInt64
        var overflowPages: UInt64
        var entries: UInt64
        var root: UInt64

        static let size = 48
        static let integerKey: UInt16 = 0x08
        static let dupSort: UInt16 = 0x04
    }

    struct Meta {
        var page: Int
        var pageSize: Int
        var lastPage: UInt64
        var transactionID: UInt64
        var free: Tree
        var main: Tree
    }

    /// What a walk found in one tree.
    struct Walk {
        var problems: [String] = []
        var entries: UInt64 = 0
        var branchPages: UInt64 = 0
        var leafPages: UInt64 = 0
        var overflowPages: UInt64 = 0
    }

    let bytes: UnsafeRawBufferPointer
    let pageSize: Int
    let pageCount: Int
    /// Valid meta pages, newest first.
    let metas: [Meta]

    /// - Parameter bytes: the whole file.
    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        // The page size is the one at which the most pages carry their own number (a damaged meta page can name
        // any size); the meta pages count only when they agree with it.
        var size = 4096
        var best = 0
        for candidate in [4096, 512, 1024, 2048, 8192, 16384, 32768, 65536] {
            let pages = bytes.count / candidate
            var matches = 0
            var page = 2
            while page < pages {
                if UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: page * candidate, as: UInt64.self)) == UInt64(page) { matches += 1 }
                page += 1
            }
            if matches > best { best = matches; size = candidate }
        }
        if best == 0, let first = Self.meta(in: bytes, page: 0, pageSize: nil) { size = first.pageSize }
        var found: [Meta] = []
        if let first = Self.meta(in: bytes, page: 0, pageSize: nil), first.pageSize == size { found.append(first) }
        if let second = Self.meta(in: bytes, page: 1, pageSize: size) { found.append(second) }
        metas = found.sorted { $0.transactionID > $1.transactionID }
        pageSize = size
        pageCount = bytes.count / pageSize
    }

    // MARK: Reading fields

    @inline(__always) func u16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) func u32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inline(__always) func u64(_ offset: Int) -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    static func meta(in bytes: UnsafeRawBufferPointer, page: Int, pageSize: Int?) -> Meta? {
        let base = page * (pageSize ?? 0)
        guard bytes.count >= base + 160 else { return nil }
        func u16(_ o: Int) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: base + o, as: UInt16.self)) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: base + o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: base + o, as: UInt64.self)) }
        guard u64(0) == UInt64(page), u16(10) & PageFlags.meta != 0, u32(16) == metaMagic, u32(20) == dataVersion else { return nil }
        let size = Int(u32(40))
        guard size >= 512, size <= 65536, size & (size - 1) == 0, pageSize == nil || pageSize == size else { return nil }
        func tree(_ o: Int) -> Tree {
            Tree(flags: u16(o + 4), depth: u16(o + 6), branchPages: u64(o + 8), leafPages: u64(o + 16),
                 overflowPages: u64(o + 24), entries: u64(o + 32), root: u64(o + 40))
        }
        let lastPage = u64(136)
        guard lastPage >= 1, lastPage < UInt64(Int32.max) else { return nil }
        // LMDB writes transaction n to meta page n % 2 and picks the page by that parity from the transaction id
        // it finds, so a meta page whose id has the other parity is damaged (a new file has id 0 in both).
        let transaction = u64(144)
        guard transaction == 0 || transaction & 1 == UInt64(page) else { return nil }
        return Meta(page: page, pageSize: size, lastPage: lastPage, transactionID: u64(144), free: tree(40), main: tree(88))
    }

    // MARK: Validation

    /// Why LMDB must not be given this file, or nil when every page it could visit is sound: the newest meta page,
    /// its free list and main tree and, with `subDatabases`, every named database in it. `leaf` sees every entry
    /// of the main tree (or of each sub-database) and may report a problem with it.
    func validate(
        subDatabases: Bool, fileSize: Int? = nil, leaf: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> String? = { _, _ in nil }
    ) -> String? {
        guard let meta = metas.first else { return "neither LMDB meta page is valid" }
        // LMDB reads both meta pages when it opens a file and refuses it when either is not a meta page.
        guard metas.count == 2 else { return "meta page \(metas[0].page == 0 ? 1 : 0) is not valid" }
        guard meta.lastPage < UInt64(pageCount) else {
            return "it is truncated: \(bytes.count) bytes where its meta page needs \((meta.lastPage + 1) * UInt64(pageSize))"
        }
        var visited = [Bool](repeating: false, count: Int(meta.lastPage) + 1)
        visited[0] = true
        visited[1] = true
        func check(_ tree: Tree, name: String, integerKeys: Bool, _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UInt16) -> String?) -> String? {
            guard tree.flags & Tree.dupSort == 0 else { return "\(name) uses duplicate keys, which no TelemetryFlow database does" }
            var walk = Walk()
            walkTree(tree, meta: meta, integerKeys: integerKeys, tolerant: false, visited: &visited, into: &walk, visit: visit)
            if let problem = walk.problems.first { return "\(name): \(problem)" }
            guard walk.entries == tree.entries, walk.leafPages == tree.leafPages, walk.branchPages == tree.branchPages,
                walk.overflowPages == tree.overflowPages
            else {
                return "\(name): its pages hold \(walk.entries) entries in \(walk.leafPages)/\(walk.branchPages)/\(walk.overflowPages) leaf/branch/overflow pages; its record says \(tree.entries) in \(tree.leafPages)/\(tree.branchPages)/\(tree.overflowPages)"
            }
            return nil
        }
        var freePages: [UInt64] = []
        if let problem = check(meta.free, name: "the free list", integerKeys: true, { key, value, flags in
            guard key.count == 8, value.count >= 8, value.count % 8 == 0 else { return "a free-list entry is malformed" }
            let count = UInt64(littleEndian: value.loadUnaligned(as: UInt64.self))
            guard count == UInt64(value.count / 8 - 1) else { return "a free-list entry counts \(count) pages in \(value.count) bytes" }
            for i in 1..<(value.count / 8) {
                freePages.append(UInt64(littleEndian: value.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
            }
            return nil
        }) { return problem }
        var subTrees: [(String, Tree)] = []
        if let problem = check(meta.main, name: "the main database", integerKeys: false, { key, value, flags in
            if flags & NodeFlags.subData != 0 {
                guard subDatabases, value.count == Tree.size else { return "an entry is a sub-database where none belongs" }
                func f16(_ o: Int) -> UInt16 { UInt16(littleEndian: value.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
                func f64(_ o: Int) -> UInt64 { UInt64(littleEndian: value.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
                let tree = Tree(flags: f16(4), depth: f16(6), branchPages: f64(8), leafPages: f64(16), overflowPages: f64(24), entries: f64(32), root: f64(40))
                subTrees.append((String(decoding: key, as: UTF8.self), tree))
                return nil
            }
            return leaf(key, value)
        }) { return problem }
        for (name, tree) in subTrees {
            if let problem = check(tree, name: "database \(name)", integerKeys: false, { key, value, flags in
                flags & NodeFlags.subData != 0 ? "a nested sub-database" : leaf(key, value)
            }) { return problem }
        }
        for page in freePages {
            guard page <= meta.lastPage, page >= 2 else { return "the free list names page \(page), outside the file's \(meta.lastPage + 1) pages" }
            guard !visited[Int(page)] else { return "the free list names page \(page), which a tree still uses" }
        }
        return nil
    }

    /// Validates a segment file: every page as ``validate(subDatabases:fileSize:leaf:)`` does, every key a sequence;
    /// also returns the first and last sequence, the record count and the sequences whose record fails its checksum
    /// (those do not make the structure invalid).
    func validateSegment() -> (problem: String?, first: UInt64?, last: UInt64?, count: Int, damaged: [UInt64]) {
        var first: UInt64?
        var last: UInt64?
        var count = 0
        var damaged: [UInt64] = []
        let problem = validate(subDatabases: false) { key, value in
            guard let sequence = sequence(fromKey: key) else { return "a key is not a sequence" }
            if first == nil { first = sequence }
            last = sequence
            count += 1
            if (try? EventCodec.envelope(of: value, sequence: sequence)) == nil { damaged.append(sequence) }
            return nil
        }
        return (problem, first, last, count, damaged)
    }

    /// Walks `tree` depth first. In tolerant mode a bad page is noted and its subtree skipped; otherwise the walk
    /// stops at the first problem.
    func walkTree(
        _ tree: Tree, meta: Meta, integerKeys: Bool, tolerant: Bool, visited: inout [Bool], into walk: inout Walk,
        visit: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ flags: UInt16) -> String?
    ) {
        if tree.root == Self.invalidPage {
            if tree.depth != 0 || tree.entries != 0 { walk.problems.append("an empty tree records \(tree.entries) entries") }
            return
        }
        guard tree.depth >= 1, tree.depth <= 32 else { walk.problems.append("its depth \(tree.depth) is out of range"); return }
        var lowerBound: [UInt8]? = nil
        var lastKey: [UInt8]? = nil
        walkPage(tree.root, depth: 1, tree: tree, meta: meta, integerKeys: integerKeys, tolerant: tolerant, low: &lowerBound, high: nil,
                 lastKey: &lastKey, visited: &visited, walk: &walk, visit: visit)
    }

    private func keyLess(_ a: UnsafeRawBufferPointer, _ b: [UInt8], integer: Bool) -> Bool {
        if integer, a.count == 8, b.count == 8 {
            return a.loadUnaligned(as: UInt64.self) < b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        }
        return b.withUnsafeBytes { bb in
            let n = min(a.count, bb.count)
            for i in 0..<n where a[i] != bb[i] { return a[i] < bb[i] }
            return a.count < bb.count
        }
    }

    private func walkPage(
        _ pgno: UInt64, depth: Int, tree: Tree, meta: Meta, integerKeys: Bool, tolerant: Bool, low: inout [UInt8]?, high: [UInt8]?,
        lastKey: inout [UInt8]?, visited: inout [Bool], walk: inout Walk,
        visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UInt16) -> String?
    ) {
        func fail(_ problem: String) { walk.problems.append(problem) }
        guard walk.problems.isEmpty || tolerant else { return }
        guard pgno >= 2, pgno <= meta.lastPage, pgno < UInt64(pageCount) else { return fail("a tree names page \(pgno), outside the file") }
        let page = Int(pgno)
        guard !visited[page] else { return fail("page \(pgno) is reached twice") }
        visited[page] = true
        let base = page * pageSize
        guard u64(base) == pgno else { return fail("page \(pgno) carries the number \(u64(base))") }
        let flags = u16(base + 10)
        let isLeaf = flags & PageFlags.leaf != 0
        let isBranch = flags & PageFlags.branch != 0
        guard isLeaf != isBranch, flags & (PageFlags.overflow | PageFlags.meta | PageFlags.leaf2 | PageFlags.subpage) == 0 else {
            return fail("page \(pgno) has flags \(flags), not a branch or leaf page")
        }
        guard isLeaf == (depth == Int(tree.depth)) else { return fail("page \(pgno) is a \(isLeaf ? "leaf" : "branch") page at depth \(depth) of \(tree.depth)") }
        let lower = Int(u16(base + 12))
        let upper = Int(u16(base + 14))
        guard lower >= Self.pageHeaderSize, lower <= upper, upper <= pageSize, (lower - Self.pageHeaderSize) % 2 == 0 else {
            return fail("page \(pgno) has bounds \(lower)…\(upper)")
        }
        let count = (lower - Self.pageHeaderSize) / 2
        if isLeaf { walk.leafPages += 1 } else { walk.branchPages += 1 }
        guard count >= (isBranch ? 1 : 0), !(isLeaf && count == 0 && depth > 1) else { return fail("page \(pgno) holds no nodes") }
        var previousKey: UnsafeRawBufferPointer? = nil
        for i in 0..<count {
            let offset = Int(u16(base + Self.pageHeaderSize + 2 * i))
            guard offset >= upper, offset % 2 == 0, offset + Self.nodeHeaderSize <= pageSize else {
                fail("page \(pgno) node \(i) is at offset \(offset), outside \(upper)…\(pageSize)")
                if tolerant { continue } else { return }
            }
            let node = base + offset
            let lo = UInt64(u16(node))
            let hi = UInt64(u16(node + 2))
            let nodeFlags = u16(node + 4)
            let keySize = Int(u16(node + 6))
            let keyStart = node + Self.nodeHeaderSize
            guard keyStart + keySize <= base + pageSize, keySize <= 511 else {
                fail("page \(pgno) node \(i) has a \(keySize)-byte key past the page")
                if tolerant { continue } else { return }
            }
            let key = UnsafeRawBufferPointer(rebasing: bytes[keyStart..<(keyStart + keySize)])
            // Keys ascend within a page and stay inside the range the parent gave (a branch's first key is implicit).
            if !(isBranch && i == 0) {
                if let previousKey, !keyLess(previousKey, Array(key), integer: integerKeys) {
                    fail("page \(pgno) keys are out of order")
                    if tolerant { continue } else { return }
                }
                if let low, keyLess(key, low, integer: integerKeys) { fail("page \(pgno) holds a key below its parent's range"); if !tolerant { return } }
                if let high, !keyLess(key, high, integer: integerKeys) { fail("page \(pgno) holds a key above its parent's range"); if !tolerant { return } }
                previousKey = key
            }
            if isBranch {
                let child = lo | (hi << 16) | (UInt64(nodeFlags) << 32)
                var childLow: [UInt8]? = i == 0 ? low : Array(key)
                var childHigh = high
                if i + 1 < count {
                    let nextOffset = Int(u16(base + Self.pageHeaderSize + 2 * (i + 1)))
                    if nextOffset >= upper, nextOffset + Self.nodeHeaderSize <= pageSize {
                        let nextSize = Int(u16(base + nextOffset + 6))
                        let nextStart = base + nextOffset + Self.nodeHeaderSize
                        if nextStart + nextSize <= base + pageSize { childHigh = Array(bytes[nextStart..<(nextStart + nextSize)]) }
                    }
                }
                walkPage(child, depth: depth + 1, tree: tree, meta: meta, integerKeys: integerKeys, tolerant: tolerant, low: &childLow,
                         high: childHigh, lastKey: &lastKey, visited: &visited, walk: &walk, visit: visit)
                if !walk.problems.isEmpty && !tolerant { return }
                continue
            }
            guard nodeFlags & ~(NodeFlags.bigData | NodeFlags.subData) == 0 else {
                fail("page \(pgno) node \(i) has flags \(nodeFlags)")
                if tolerant { continue } else { return }
            }
            let dataSize = Int(lo | (hi << 16))
            let dataStart = keyStart + keySize
            let value: UnsafeRawBufferPointer
            if nodeFlags & NodeFlags.bigData != 0 {
                guard dataStart + 8 <= base + pageSize, let range = overflow(at: u64(dataStart), size: dataSize, meta: meta, visited: &visited) else {
                    fail("page \(pgno) node \(i) names a bad overflow page")
                    if tolerant { continue } else { return }
                }
                walk.overflowPages += UInt64(range.pages)
                value = UnsafeRawBufferPointer(rebasing: bytes[range.data])
            } else {
                guard dataStart + dataSize <= base + pageSize else {
                    fail("page \(pgno) node \(i) has \(dataSize) bytes of data past the page")
                    if tolerant { continue } else { return }
                }
                value = UnsafeRawBufferPointer(rebasing: bytes[dataStart..<(dataStart + dataSize)])
            }
            if let problem = visit(key, value, nodeFlags) {
                fail("page \(pgno) node \(i): \(problem)")
                if tolerant { continue } else { return }
            }
            walk.entries += 1
        }
        if let previousKey { lastKey = Array(previousKey) }
    }

    /// The data range of the overflow run starting at `pgno`, marking its pages visited; nil when it is not sound.
    private func overflow(at pgno: UInt64, size: Int, meta: Meta, visited: inout [Bool]) -> (data: Range<Int>, pages: Int)? {
        guard let run = overflowRun(at: pgno, size: size, lastPage: meta.lastPage) else { return nil }
        let page = Int(pgno)
        for p in page..<(page + run.pages) {
            guard !visited[p] else { return nil }
            visited[p] = true
        }
        return run
    }

    /// The data range and page count of the overflow run starting at `pgno`; nil when it is not sound.
    private func overflowRun(at pgno: UInt64, size: Int, lastPage: UInt64) -> (data: Range<Int>, pages: Int)? {
        guard pgno >= 2, pgno <= lastPage, pgno < UInt64(pageCount) else { return nil }
        let page = Int(pgno)
        let base = page * pageSize
        guard u64(base) == pgno, u16(base + 10) & PageFlags.overflow != 0 else { return nil }
        let pages = Int(u32(base + 12))
        guard pages >= 1, page + pages <= Int(lastPage) + 1, page + pages <= pageCount,
            size <= pages * pageSize - Self.pageHeaderSize
        else { return nil }
        return ((base + Self.pageHeaderSize)..<(base + Self.pageHeaderSize + size), pages)
    }

    // MARK: The page scan

    /// Every node with an 8-byte key in every leaf page whose header is sound, stale copies included, in page order:
    /// its page, its key, and its value with the pages the value occupies (the leaf page, or its overflow run) —
    /// nil when the value runs past its page or names an overflow run that is not sound.
    private func forEachLeafNode(_ body: (_ key: UnsafeRawBufferPointer, _ value: (data: UnsafeRawBufferPointer, pages: Range<Int>)?, _ page: Int) -> Void) {
        for page in 2..<max(2, pageCount) {
            let base = page * pageSize
            guard u64(base) == UInt64(page) else { continue }
            let flags = u16(base + 10)
            guard flags & PageFlags.leaf != 0, flags & (PageFlags.branch | PageFlags.leaf2 | PageFlags.meta | PageFlags.overflow | PageFlags.subpage) == 0 else {
                continue
            }
            let lower = Int(u16(base + 12))
            let upper = Int(u16(base + 14))
            guard lower >= Self.pageHeaderSize, lower <= upper, upper <= pageSize else { continue }
            // A key is not covered by the record's checksum. Sequences in a leaf page are consecutive (the log only
            // appends), so a node whose key is one apart from neither neighbour's is a damaged key, not a record.
            var nodes: [(node: Int, sequence: UInt64)] = []
            for i in 0..<((lower - Self.pageHeaderSize) / 2) {
                let offset = Int(u16(base + Self.pageHeaderSize + 2 * i))
                guard offset >= upper, offset + Self.nodeHeaderSize + 8 <= pageSize, u16(base + offset + 6) == 8 else { continue }
                nodes.append((base + offset, UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: base + offset + 8, as: UInt64.self))))
            }
            for (i, entry) in nodes.enumerated() {
                let node = entry.node
                let adjacent = nodes.count == 1 || (i > 0 && nodes[i - 1].sequence &+ 1 == entry.sequence)
                    || (i + 1 < nodes.count && entry.sequence &+ 1 == nodes[i + 1].sequence)
                guard adjacent else { continue }
                let dataSize = Int(u16(node)) | (Int(u16(node + 2)) << 16)
                let key = UnsafeRawBufferPointer(rebasing: bytes[(node + 8)..<(node + 16)])
                let dataStart = node + 16
                if u16(node + 4) & NodeFlags.bigData != 0 {
                    guard dataStart + 8 <= base + pageSize,
                        let run = overflowRun(at: u64(dataStart), size: dataSize, lastPage: UInt64(pageCount - 1))
                    else {
                        body(key, nil, page)
                        continue
                    }
                    let first = run.data.lowerBound / pageSize
                    body(key, (UnsafeRawBufferPointer(rebasing: bytes[run.data]), first..<(first + run.pages)), page)
                } else if dataStart + dataSize <= base + pageSize {
                    body(key, (UnsafeRawBufferPointer(rebasing: bytes[dataStart..<(dataStart + dataSize)]), page..<(page + 1)), page)
                } else {
                    body(key, nil, page)
                }
            }
        }
    }

    // MARK: Locations (for tests and tools)

    /// Every record the page scan can reach, stale copies included, with the pages it occupies (its leaf page, then
    /// any overflow pages).
    func recordLocations() -> [(sequence: UInt64, pages: [Int])] {
        var out: [(sequence: UInt64, pages: [Int])] = []
        forEachLeafNode { key, value, page in
            guard let value, let sequence = sequence(fromKey: key) else { return }
            out.append((sequence, value.pages.lowerBound == page ? [page] : [page] + Array(value.pages)))
        }
        return out
    }

    // MARK: Salvage

    /// Every record of a segment file that can still be read, by sequence: first those the newest sound tree still
    /// reaches, then any other leaf page whose header is sound (LMDB's copy-on-write leaves older copies of
    /// pages behind; an append-only log never changes a record, so an older copy holds the same bytes).
    /// `damaged` lists sequences seen only in records whose checksum failed.
    func salvage() -> (records: [UInt64: UnsafeRawBufferPointer], damaged: Set<UInt64>) {
        var records: [UInt64: UnsafeRawBufferPointer] = [:]
        var damaged: Set<UInt64> = []
        func take(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
            guard let sequence = sequence(fromKey: key) else { return }
            if (try? EventCodec.envelope(of: value, sequence: sequence)) != nil {
                if records[sequence] == nil { records[sequence] = value }
            } else {
                damaged.insert(sequence)
            }
        }
        for meta in metas where meta.lastPage < UInt64(pageCount) {
            var visited = [Bool](repeating: false, count: Int(meta.lastPage) + 1)
            var walk = Walk()
            walkTree(meta.main, meta: meta, integerKeys: false, tolerant: true, visited: &visited, into: &walk) { key, value, _ in
                take(key, value)
                return nil
            }
        }
        // Pages no sound tree reached.
        forEachLeafNode { key, value, _ in
            if let value { take(key, value.data) } else if let s = sequence(fromKey: key) { damaged.insert(s) }
        }
        damaged.subtract(records.keys)
        return (records, damaged)
    }
}


/// The sequence an 8-byte key names, or nil for a key of another size.
func sequence(fromKey raw: UnsafeRawBufferPointer) -> UInt64? {
    guard raw.count == 8 else { return nil }
    return UInt64(bigEndian: raw.loadUnaligned(as: UInt64.self))
}
