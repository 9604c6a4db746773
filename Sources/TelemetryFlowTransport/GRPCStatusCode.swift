/// gRPC status codes.
package struct GRPCStatusCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package let rawValue: Int
    package init(rawValue: Int) { self.rawValue = rawValue }

    package static let ok = Self(rawValue: 0)
    package static let cancelled = Self(rawValue: 1)
    package static let unknown = Self(rawValue: 2)
    package static let invalidArgument = Self(rawValue: 3)
    package static let deadlineExceeded = Self(rawValue: 4)
    package static let notFound = Self(rawValue: 5)
    package static let alreadyExists = Self(rawValue: 6)
    package static let permissionDenied = Self(rawValue: 7)
    package static let resourceExhausted = Self(rawValue: 8)
    package static let failedPrecondition = Self(rawValue: 9)
    package static let aborted = Self(rawValue: 10)
    package static let outOfRange = Self(rawValue: 11)
    package static let unimplemented = Self(rawValue: 12)
    package static let `internal` = Self(rawValue: 13)
    package static let unavailable = Self(rawValue: 14)
    package static let dataLoss = Self(rawValue: 15)
    package static let unauthenticated = Self(rawValue: 16)

    static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    package var description: String { Self.names.indices.contains(rawValue) ? Self.names[rawValue] : "CODE_\(rawValue)" }
}
