/// A TelemetryFlow API key: a key id starting with `tfk_` and a secret starting with `tfs_`.
public struct Credentials: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The public key id, `tfk_…`.
    public let keyID: String
    /// The secret, `tfs_…`. Never printed by ``description``.
    public let keySecret: String

    /// Validates and stores a key pair.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidCredentials`` when the id does not start with `tfk_`, the
    ///   secret does not start with `tfs_`, either has fewer than 8 characters after its prefix, or either
    ///   holds characters other than letters, digits, `_` and `-`.
    public init(keyID: String, keySecret: String) throws {
        try Self.validate(keyID, prefix: "tfk_", what: "API key id")
        try Self.validate(keySecret, prefix: "tfs_", what: "API key secret")
        self.keyID = keyID
        self.keySecret = keySecret
    }

    private static func validate(_ value: String, prefix: String, what: String) throws {
        let trimmed = value.utf8.count
        guard value.hasPrefix(prefix) else {
            // Nothing of a secret is ever repeated, not even its first characters.
            let shown = value.isEmpty ? "an empty string" : prefix == "tfs_" ? "a value without it" : "a value starting with \"\(value.prefix(4))\""
            throw TelemetryFlowError(.invalidCredentials, "\(what) must start with \"\(prefix)\"; got \(shown)")
        }
        guard trimmed - prefix.utf8.count >= 8 else {
            throw TelemetryFlowError(
                .invalidCredentials, "\(what) is too short: expected at least 8 characters after \"\(prefix)\"")
        }
        let allowed = value.utf8.allSatisfy { c in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
        guard allowed else {
            throw TelemetryFlowError(
                .invalidCredentials,
                "\(what) holds characters other than letters, digits, \"_\" and \"-\" (check for spaces or quotes)")
        }
    }

    /// The id in full and the secret masked.
    public var description: String { "Credentials(keyID: \(keyID), keySecret: tfs_****)" }
    public var debugDescription: String { description }
    /// `dump` and the debugger see the key id only.
    public var customMirror: Mirror { Mirror(self, children: ["keyID": keyID, "keySecret": "tfs_****"]) }
}
