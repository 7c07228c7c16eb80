import Foundation
/// Why a JSON member was refused, naming the member.
public struct JSONFieldError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Dotted path of the member (`resources[1].hostname`).
    public let path: String
    /// What was wrong.
    public let reason: String
    /// A stable machine-readable code (`unknown_key`, `wrong_type`, ...).
    public let code: String
    public var description: String { "\(path): \(reason)" }

    /// Creates an error.
    public init(path: String, reason: String, code: String) {
        self.path = path
        self.reason = reason
        self.code = code
    }
}

/// The allowed keys of an object, by their exact and their lower-cased spelling (Go's
/// `encoding/json` matches keys case-insensitively; most senders spell them exactly).
public struct StrictKeys: Sendable {
    private let names: [String: String]

    /// The keys `allowed`.
    public init(_ allowed: [String]) {
        var names: [String: String] = [:]
        for name in allowed { names[name.lowercased()] = name }
        for name in allowed { names[name] = name }
        self.names = names
    }

    /// The allowed key `key` stands for, nil when none.
    func name(of key: String) -> String? { names[key] ?? names[key.lowercased()] }
}

/// Reads a JSON object the way Go's `encoding/json` with `DisallowUnknownFields` decodes a
/// struct, which is what cc-backend does: keys match case-insensitively, the last duplicate
/// wins, `null` leaves the default, an unknown key is an error that names it.
public struct StrictObject {
    private var values: [String: (key: String, value: JSONValue)] = [:]
    /// Path prefix for error messages.
    public let path: String

    /// Reads `value`, which must be an object whose keys are all in `allowed`.
    public init(_ value: JSONValue, allowed: [String], path: String = "") throws(JSONFieldError) {
        try self.init(value, keys: StrictKeys(allowed), path: path)
    }

    /// Reads `value`, which must be an object whose keys are all in `keys` (worked out once:
    /// the job path reads every event with the same keys).
    public init(_ value: JSONValue, keys: StrictKeys, path: String = "") throws(JSONFieldError) {
        self.path = path
        guard case .object(let members) = value else {
            throw JSONFieldError(path: path.isEmpty ? "event" : path, reason: "expected a JSON object, found \(value.typeName)", code: "wrong_type")
        }
        values.reserveCapacity(members.count)
        for m in members {
            guard let name = keys.name(of: m.key) else {
                throw JSONFieldError(path: Self.join(path, m.key), reason: "unknown key \"\(m.key)\"", code: "unknown_key")
            }
            values[name] = (m.key, m.value)
        }
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Whether `name` was given with a non-null value.
    public func has(_ name: String) -> Bool {
        if let v = values[name]?.value, v != .null { return true }
        return false
    }

    /// The raw value of `name`, nil when absent or null.
    public func raw(_ name: String) -> JSONValue? {
        guard let v = values[name]?.value, v != .null else { return nil }
        return v
    }

    func mismatch(_ name: String, _ expected: String, _ found: JSONValue) -> JSONFieldError {
        JSONFieldError(path: Self.join(path, name), reason: "expected \(expected), found \(found.typeName) \(found.jsonText.prefix(40))", code: "wrong_type")
    }

    /// An integer member in `range`; nil when absent or null.
    public func int(_ name: String, _ range: ClosedRange<Int64> = Int64.min...Int64.max) throws(JSONFieldError) -> Int64? {
        guard let v = raw(name) else { return nil }
        guard case .integer(let i) = v else { throw mismatch(name, "an integer", v) }
        guard range.contains(i) else {
            throw JSONFieldError(path: Self.join(path, name), reason: "\(i) is out of range \(range.lowerBound)...\(range.upperBound)", code: "out_of_range")
        }
        return i
    }

    /// A 32-bit integer member (Go `int32`).
    public func int32(_ name: String) throws(JSONFieldError) -> Int64? { try int(name, Int64(Int32.min)...Int64(Int32.max)) }

    /// A number member.
    public func double(_ name: String) throws(JSONFieldError) -> Double? {
        guard let v = raw(name) else { return nil }
        switch v {
        case .integer(let i): return Double(i)
        case .double(let d): return d
        default: throw mismatch(name, "a number", v)
        }
    }

    /// A string member.
    public func string(_ name: String) throws(JSONFieldError) -> String? {
        guard let v = raw(name) else { return nil }
        guard case .string(let s) = v else { throw mismatch(name, "a string", v) }
        return s
    }

    /// A string member that names something (a user, cluster, host): control characters
    /// (NUL included) and U+FFFD — what a lone surrogate or invalid UTF-8 became — are
    /// refused, as no scheduler or file system name holds them.
    public func name(_ name: String) throws(JSONFieldError) -> String? {
        guard let s = try string(name) else { return nil }
        if let bad = s.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7F || $0.value == 0xFFFD }) {
            throw JSONFieldError(path: Self.join(path, name), reason: "holds U+\(String(format: "%04X", bad.value)), which no name may contain", code: "invalid_characters")
        }
        return s
    }

    /// An array member.
    public func array(_ name: String) throws(JSONFieldError) -> [JSONValue]? {
        guard let v = raw(name) else { return nil }
        guard case .array(let a) = v else { throw mismatch(name, "an array", v) }
        return a
    }

    /// An object member whose values all are strings (Go `map[string]string`).
    public func stringMap(_ name: String) throws(JSONFieldError) -> [String: String]? {
        guard let v = raw(name) else { return nil }
        guard case .object(let members) = v else { throw mismatch(name, "an object", v) }
        var out: [String: String] = [:]
        for m in members {
            if m.value == .null { out[m.key] = ""; continue }
            guard case .string(let s) = m.value else { throw mismatch("\(name).\(m.key)", "a string", m.value) }
            out[m.key] = s
        }
        return out
    }

    /// An object member whose values all are numbers (Go `map[string]float64`).
    public func numberMap(_ name: String) throws(JSONFieldError) -> [String: Double]? {
        guard let v = raw(name) else { return nil }
        guard case .object(let members) = v else { throw mismatch(name, "an object", v) }
        var out: [String: Double] = [:]
        for m in members {
            switch m.value {
            case .integer(let i): out[m.key] = Double(i)
            case .double(let d): out[m.key] = d
            case .null: out[m.key] = 0
            default: throw mismatch("\(name).\(m.key)", "a number", m.value)
            }
        }
        return out
    }

    /// The member's path, for errors raised by callers.
    public func path(of name: String) -> String { Self.join(path, name) }
}
