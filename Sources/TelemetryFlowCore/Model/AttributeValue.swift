/// The value of an attribute, following OpenTelemetry's `AnyValue`: scalars, homogeneous arrays and bytes.
///
/// Equality compares doubles by bit pattern, so a recorded NaN equals itself after a round trip.
public enum AttributeValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case bytes([UInt8])
    case stringArray([String])
    case boolArray([Bool])
    case intArray([Int64])
    case doubleArray([Double])

    public static func == (lhs: AttributeValue, rhs: AttributeValue) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a.bitPattern == b.bitPattern
        case (.bytes(let a), .bytes(let b)): return a == b
        case (.stringArray(let a), .stringArray(let b)): return a == b
        case (.boolArray(let a), .boolArray(let b)): return a == b
        case (.intArray(let a), .intArray(let b)): return a == b
        case (.doubleArray(let a), .doubleArray(let b)): return a.map(\.bitPattern) == b.map(\.bitPattern)
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .string(let v): hasher.combine(0); hasher.combine(v)
        case .bool(let v): hasher.combine(1); hasher.combine(v)
        case .int(let v): hasher.combine(2); hasher.combine(v)
        case .double(let v): hasher.combine(3); hasher.combine(v.bitPattern)
        case .bytes(let v): hasher.combine(4); hasher.combine(v)
        case .stringArray(let v): hasher.combine(5); hasher.combine(v)
        case .boolArray(let v): hasher.combine(6); hasher.combine(v)
        case .intArray(let v): hasher.combine(7); hasher.combine(v)
        case .doubleArray(let v): hasher.combine(8); hasher.combine(v.map(\.bitPattern))
        }
    }

    public var description: String {
        switch self {
        case .string(let v): return v
        case .bool(let v): return "\(v)"
        case .int(let v): return "\(v)"
        case .double(let v): return "\(v)"
        case .bytes(let v): return "<\(v.count) bytes>"
        case .stringArray(let v): return "\(v)"
        case .boolArray(let v): return "\(v)"
        case .intArray(let v): return "\(v)"
        case .doubleArray(let v): return "\(v)"
        }
    }
}

extension AttributeValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
