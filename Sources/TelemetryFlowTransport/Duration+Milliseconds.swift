extension Duration {
    /// Whole milliseconds, at least 1 (libcurl and `grpc-timeout` take milliseconds; 0 would mean "no limit").
    var wholeMilliseconds: Int {
        max(1, Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000))
    }
}
