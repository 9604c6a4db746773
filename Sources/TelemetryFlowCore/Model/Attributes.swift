/// One key–value attribute.
public struct Attribute: Sendable, Hashable {
    public var key: String
    public var value: AttributeValue

    public init(_ key: String, _ value: AttributeValue) {
        self.key = key
        self.value = value
    }
}

/// An ordered set of attributes, as written by the caller. Later duplicates of a key replace earlier ones
/// when the set is normalised by ``AttributeLimits/apply(to:)``.
public struct Attributes: Sendable, Hashable, ExpressibleByDictionaryLiteral, RandomAccessCollection {
    public var elements: [Attribute]

    public init(_ elements: [Attribute] = []) { self.elements = elements }

    public init(dictionaryLiteral elements: (String, AttributeValue)...) {
        self.elements = elements.map { Attribute($0.0, $0.1) }
    }

    public var startIndex: Int { elements.startIndex }
    public var endIndex: Int { elements.endIndex }
    public subscript(position: Int) -> Attribute { elements[position] }

    /// The value stored for `key`, the last one if the key repeats.
    public subscript(key: String) -> AttributeValue? {
        elements.last(where: { $0.key == key })?.value
    }

    /// Appends or replaces the value for `key`.
    public mutating func set(_ key: String, _ value: AttributeValue) {
        if let index = elements.firstIndex(where: { $0.key == key }) {
            elements[index].value = value
        } else {
            elements.append(Attribute(key, value))
        }
    }

    /// The attributes sorted by key, which makes equal sets encode to equal bytes.
    public func sortedByKey() -> Attributes {
        Attributes(elements.sorted { $0.key < $1.key })
    }
}

/// Limits applied to attribute sets before they are recorded (OpenTelemetry's attribute limits).
public struct AttributeLimits: Sendable, Hashable {
    /// The most attributes kept per record; the rest are dropped and counted. Default 128.
    public var maxCount: Int
    /// The most UTF-8 bytes kept per string or bytes value (and per array element); longer values are
    /// truncated at a character boundary. `nil` means unlimited. Default 4096.
    public var maxValueLength: Int?

    /// Creates limits.
    ///
    /// - Throws: ``TelemetryFlowError/Code/invalidConfiguration`` when a limit is negative.
    public init(maxCount: Int = 128, maxValueLength: Int? = 4096) throws {
        guard maxCount >= 0 else {
            throw TelemetryFlowError(.invalidConfiguration, "attribute maxCount is \(maxCount); use 0 or more")
        }
        if let maxValueLength, maxValueLength < 0 {
            throw TelemetryFlowError(
                .invalidConfiguration, "attribute maxValueLength is \(maxValueLength); use 0 or more, or nil")
        }
        self.maxCount = maxCount
        self.maxValueLength = maxValueLength
    }

    /// The OpenTelemetry defaults with a 4 KiB value limit.
    public static let `default` = try! AttributeLimits()

    /// Normalises `attributes`: drops empty keys, keeps the last value of a repeated key, truncates long
    /// values and keeps at most ``maxCount`` attributes.
    ///
    /// - Returns: the kept attributes and how many were dropped.
    public func apply(to attributes: Attributes) -> (attributes: Attributes, dropped: Int) {
        var kept: [Attribute] = []
        kept.reserveCapacity(Swift.min(attributes.count, maxCount))
        var dropped = 0
        for attribute in attributes.elements {
            guard !attribute.key.isEmpty else {
                dropped += 1
                continue
            }
            if let index = kept.firstIndex(where: { $0.key == attribute.key }) {
                kept[index].value = truncate(attribute.value)
                continue
            }
            guard kept.count < maxCount else {
                dropped += 1
                continue
            }
            kept.append(Attribute(attribute.key, truncate(attribute.value)))
        }
        return (Attributes(kept), dropped)
    }

    func truncate(_ value: AttributeValue) -> AttributeValue {
        guard let limit = maxValueLength else { return value }
        switch value {
        case .string(let s): return .string(Self.truncate(s, to: limit))
        case .bytes(let b): return b.count > limit ? .bytes(Array(b.prefix(limit))) : value
        case .stringArray(let a): return .stringArray(a.map { Self.truncate($0, to: limit) })
        default: return value
        }
    }

    /// `s` cut to at most `limit` UTF-8 bytes without splitting a character.
    static func truncate(_ s: String, to limit: Int) -> String {
        guard s.utf8.count > limit else { return s }
        var end = s.startIndex
        var used = 0
        for index in s.indices {
            let next = s.index(after: index)
            let size = s.utf8.distance(from: index, to: next)
            if used + size > limit { break }
            used += size
            end = next
        }
        return String(s[..<end])
    }
}

extension Attributes: CustomStringConvertible {
    /// `key=value` pairs joined by commas, in order.
    public var description: String { elements.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
}
