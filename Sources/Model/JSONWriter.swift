import LineProtocol

extension JSONValue {
    /// Compact JSON text; object members in their stored order.
    public var jsonText: String {
        var out = ""
        write(to: &out)
        return out
    }

    /// Appends compact JSON text to `out`.
    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .integer(let v): out += String(v)
        case .double(let d):
            if d == d.rounded(), abs(d) < 1e15 { out += String(Int64(d)) } else { out += "\(d)" }
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (k, item) in items.enumerated() {
                if k > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (k, m) in members.enumerated() {
                if k > 0 { out += "," }
                JSONValue.writeString(m.key, to: &out)
                out += ":"
                m.value.write(to: &out)
            }
            out += "}"
        }
    }

    /// Appends `s` as a JSON string literal (the line-protocol module's escaping: one
    /// implementation for every JSON clusterd writes).
    public static func writeString(_ s: String, to out: inout String) {
        DecodeJSON.appendString(s, to: &out)
    }
}

/// Builds JSON objects in a fixed key order without intermediate dictionaries.
public struct JSONObjectBuilder {
    /// The members so far.
    public private(set) var members: [(key: String, value: JSONValue)] = []

    /// An empty object.
    public init() {}

    /// Adds `key: value`.
    public mutating func add(_ key: String, _ value: JSONValue) { members.append((key, value)) }
    /// Adds a string member.
    public mutating func add(_ key: String, _ value: String) { members.append((key, .string(value))) }
    /// Adds an integer member.
    public mutating func add(_ key: String, _ value: Int64) { members.append((key, .integer(value))) }
    /// Adds an integer member.
    public mutating func add(_ key: String, _ value: Int) { members.append((key, .integer(Int64(value)))) }
    /// Adds a boolean member.
    public mutating func add(_ key: String, _ value: Bool) { members.append((key, .bool(value))) }
    /// Adds the member only when `value` is not nil.
    public mutating func addIfPresent(_ key: String, _ value: JSONValue?) { if let value { members.append((key, value)) } }

    /// The object.
    public var value: JSONValue { .object(members) }
}
