/// libFuzzer target: the page walker on arbitrary file contents must never trap, hang or crash, whatever the pages
/// say. The input is taken as a whole LMDB data file (short inputs are repeated to fill a few pages, so that the
/// meta pages and the tree pages both come from the fuzzer).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWalker(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if !bytes.isEmpty && bytes.count < 4 * 4096 {
        while bytes.count < 4 * 4096 { bytes += bytes.prefix(4 * 4096 - bytes.count) }
    }
    bytes.withUnsafeBytes { raw in
        let walker = LMDBPageWalker(raw)
        _ = walker.validate(subDatabases: true)
        _ = walker.validate(subDatabases: false) { _, value in value.count > 1 << 20 ? "big" : nil }
        _ = walker.salvage()
        _ = walker.recordLocations()
    }
    return 0
}
