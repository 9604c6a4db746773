/// One key–value attribute.
public struct Attribute: Sendable, Hashable {
    public var key: String
    public var value: AttributeValue

    @inlinable
    public init(_ key: String, _ value: AttributeValue) {
        self.key = key
        self.value = value
    }
}

/// An ordered set of attributes, as written by the caller. Later duplicates of a key replace earlier ones
/// when the set is normalised by ``AttributeLimits/apply(to:)``.
///
/// Up to three attributes are held in the value itself, so that the literal of a recording call
/// (`counter.add(1, ["http.route": "/api/items"])`) allocates nothing; larger sets keep an array.
public struct Attributes: Sendable, Hashable, ExpressibleByDictionaryLiteral, RandomAccessCollection {
    /// The attributes, inline while there are at most three. Every initialiser and mutation keeps `many` for
    /// four or more, so equal sequences have equal storage (and the synthesised `Hashable` is the sequence's).
    @usableFromInline
    enum Storage: Sendable, Hashable {
        case none
        case one(Attribute)
        case two(Attribute, Attribute)
        case three(Attribute, Attribute, Attribute)
        case many([Attribute])

        @inlinable
        init(_ elements: [Attribute]) {
            switch elements.count {
            case 0: self = .none
            case 1: self = .one(elements[0])
            case 2: self = .two(elements[0], elements[1])
            case 3: self = .three(elements[0], elements[1], elements[2])
            default: self = .many(elements)
            }
        }
    }

    @usableFromInline var storage: Storage

    @inlinable
    public init(_ elements: [Attribute] = []) { storage = Storage(elements) }

    /// Inlined into the caller, where the literal's keys and values are known, so that building the set copies
    /// no strings and retains nothing.
    @inlinable @inline(__always)
    public init(dictionaryLiteral elements: (String, AttributeValue)...) {
        switch elements.count {
        case 0: storage = .none
        case 1: storage = .one(Attribute(elements[0].0, elements[0].1))
        case 2: storage = .two(Attribute(elements[0].0, elements[0].1), Attribute(elements[1].0, elements[1].1))
        case 3:
            storage = .three(
                Attribute(elements[0].0, elements[0].1), Attribute(elements[1].0, elements[1].1), Attribute(elements[2].0, elements[2].1))
        default: storage = .many(elements.map { Attribute($0.0, $0.1) })
        }
    }

    /// The attributes as an array (built on each read while there are at most three).
    public var elements: [Attribute] {
        get {
            switch storage {
            case .none: return []
            case .one(let a): return [a]
            case .two(let a, let b): return [a, b]
            case .three(let a, let b, let c): return [a, b, c]
            case .many(let all): return all
            }
        }
        set { storage = Storage(newValue) }
    }

    @inlinable
    public var count: Int {
        switch storage {
        case .none: 0
        case .one: 1
        case .two: 2
        case .three: 3
        case .many(let all): all.count
        }
    }

    @inlinable public var isEmpty: Bool { if case .none = storage { true } else { false } }
    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { count }

    public subscript(position: Int) -> Attribute {
        get {
            switch (storage, position) {
            case (.one(let a), 0), (.two(let a, _), 0), (.three(let a, _, _), 0): return a
            case (.two(_, let b), 1), (.three(_, let b, _), 1): return b
            case (.three(_, _, let c), 2): return c
            case (.many(let all), _): return all[position]
            default: preconditionFailure("attribute index \(position) out of range 0..<\(count)")
            }
        }
        set {
            var all = elements
            all[position] = newValue
            storage = Storage(all)
        }
    }

    /// The value stored for `key`, the last one if the key repeats.
    public subscript(key: String) -> AttributeValue? {
        last(where: { $0.key == key })?.value
    }

    /// Appends an attribute (a repeated key is kept: see ``AttributeLimits/apply(to:)``).
    public mutating func append(_ attribute: Attribute) {
        switch storage {
        case .none: storage = .one(attribute)
        case .one(let a): storage = .two(a, attribute)
        case .two(let a, let b): storage = .three(a, b, attribute)
        case .three(let a, let b, let c): storage = .many([a, b, c, attribute])
        case .many(var all):
            storage = .none  // `all` is the only reference: appending does not copy the array
            all.append(attribute)
            storage = .many(all)
        }
    }

    /// Appends or replaces the value for `key`.
    public mutating func set(_ key: String, _ value: AttributeValue) {
        if let index = firstIndex(where: { $0.key == key }) {
            self[index].value = value
        } else {
            append(Attribute(key, value))
        }
    }

    /// The attributes sorted by key, which makes equal sets encode to equal bytes.
    public func sortedByKey() -> Attributes {
        Attributes(sorted { $0.key < $1.key })
    }

    /// Calls `body` with each attribute in order, read in place (not copied out and retained).
    @inlinable @inline(__always)
    package func forEachInPlace(_ body: (borrowing Attribute) -> Void) {
        switch storage {
        case .none: break
        case .one(let a): body(a)
        case .two(let a, let b):
            body(a)
            body(b)
        case .three(let a, let b, let c):
            body(a)
            body(b)
            body(c)
        case .many(let all):
            all.withUnsafeBufferPointer { buffer in
                for index in buffer.indices { body(buffer[index]) }
            }
        }
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

    /// Limits already validated (counts and lengths not negative): for limits resolved from a checked configuration.
    package init(validatedMaxCount maxCount: Int, maxValueLength: Int?) {
        self.maxCount = Swift.max(0, maxCount)
        self.maxValueLength = maxValueLength.map { Swift.max(0, $0) }
    }

    /// The OpenTelemetry defaults with a 4 KiB value limit.
    public static let `default` = try! AttributeLimits()

    /// Whether ``apply(to:)`` would change `attributes`: too many, an empty or repeated key, or a value longer
    /// than ``maxValueLength``. A recording call checks this first, so that a set within the limits (nearly
    /// every one) is recorded as it is instead of being rebuilt.
    public func needsApplying(to attributes: Attributes) -> Bool {
        let count = attributes.count
        if count > maxCount { return true }
        // Beyond a few attributes the repeated-key check costs more than applying.
        if count > 8 { return true }
        switch attributes.storage {
        case .none: return false
        case .one(let a): return violates(a)
        case .two(let a, let b): return violates(a) || violates(b) || Self.sameKey(a, b)
        case .three(let a, let b, let c):
            return violates(a) || violates(b) || violates(c) || Self.sameKey(a, b) || Self.sameKey(a, c) || Self.sameKey(b, c)
        case .many(let all):
            for i in all.indices {
                if violates(all[i]) { return true }
                for j in 0..<i where Self.sameKey(all[j], all[i]) { return true }
            }
            return false
        }
    }

    /// Whether two attributes have the same key: the same UTF-8 bytes, as OTLP compares keys. Keys of different
    /// lengths (most pairs) are told apart at once, without a string comparison.
    @inline(__always)
    private static func sameKey(_ a: borrowing Attribute, _ b: borrowing Attribute) -> Bool {
        a.key.utf8.count == b.key.utf8.count && a.key.utf8.elementsEqual(b.key.utf8)
    }

    /// An empty key or a value longer than ``maxValueLength``.
    @inline(__always)
    private func violates(_ attribute: borrowing Attribute) -> Bool {
        if attribute.key.isEmpty { return true }
        guard let limit = maxValueLength else { return false }
        return Self.exceeds(attribute.value, limit)
    }

    private static func exceeds(_ value: AttributeValue, _ limit: Int) -> Bool {
        switch value {
        case .string(let s): return s.utf8.count > limit
        case .bytes(let b): return b.count > limit
        case .stringArray(let a): return a.contains { $0.utf8.count > limit }
        default: return false
        }
    }

    /// Normalises `attributes`: drops empty keys, keeps the last value of a repeated key, truncates long
    /// values and keeps at most ``maxCount`` attributes.
    ///
    /// - Returns: the kept attributes and how many were dropped.
    public func apply(to attributes: Attributes) -> (attributes: Attributes, dropped: Int) {
        var kept: [Attribute] = []
        kept.reserveCapacity(Swift.min(attributes.count, maxCount))
        var dropped = 0
        for attribute in attributes {
            guard !attribute.key.isEmpty else {
                dropped += 1
                continue
            }
            if let index = kept.firstIndex(where: { Self.sameKey($0, attribute) }) {
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

    /// `value` cut to ``maxValueLength`` (strings at a character boundary; bytes; each element of a string array).
    package func truncate(_ value: AttributeValue) -> AttributeValue {
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
