import LineProtocol

extension JSONValue {
    /// Compact JSON text; object members in their stored order.
    public var jsonText: String { String(decoding: jsonBytes, as: UTF8.self) }

    /// Compact JSON text as UTF-8 bytes (what is published or stored as a blob).
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return out
    }

    /// Appends compact JSON text to `out` as UTF-8 — into bytes, not a `String`: String
    /// appends (capacity checks, ASCII flags per piece) were a third of the job intake's time.
    public func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])                 // null
        case .bool(let b): out.append(contentsOf: b ? [0x74, 0x72, 0x75, 0x65] : [0x66, 0x61, 0x6C, 0x73, 0x65])
        case .integer(let v): JSONValue.writeInteger(v, to: &out)
        case .double(let d):
            if d == d.rounded(), abs(d) < 1e15 { JSONValue.writeInteger(Int64(d), to: &out) } else { out.append(contentsOf: "\(d)".utf8) }
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let items):
            out.append(0x5B)
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(0x2C) }
                item.write(to: &out)
            }
            out.append(0x5D)
        case .object(let members):
            out.append(0x7B)
            for (k, m) in members.enumerated() {
                if k > 0 { out.append(0x2C) }
                JSONValue.writeString(m.key, to: &out)
                out.append(0x3A)
                m.value.write(to: &out)
            }
            out.append(0x7D)
        }
    }

    /// Appends `s` as a JSON string literal (the line-protocol module's escaping: one
    /// implementation for every JSON clusterd writes).
    public static func writeString(_ s: String, to out: inout String) {
        DecodeJSON.appendString(s, to: &out)
    }

    /// Appends `s` as a JSON string literal, as UTF-8 bytes (``DecodeJSON/appendString(_:to:)``).
    public static func writeString(_ s: String, to out: inout [UInt8]) {
        DecodeJSON.appendString(s, to: &out)
    }

    /// `{"unreadable": "<error>"}`: a state that could not be read, said as such — not `null`,
    /// which says there was none (the audit log's `before`).
    public static func unreadable(_ error: any Error) -> JSONValue { .object([("unreadable", .string("\(error)"))]) }

    /// Appends the decimal digits of `v`.
    static func writeInteger(_ v: Int64, to out: inout [UInt8]) {
        if v < 0 { out.append(0x2D) }
        var m = v.magnitude
        if m < 10 { out.append(0x30 + UInt8(m)); return }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var n = 20
            while m > 0 {
                n -= 1
                digits[n] = 0x30 + UInt8(m % 10)
                m /= 10
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[n..<20]))
        }
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
