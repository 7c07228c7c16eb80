/// The typed value of a line-protocol field.
public enum FieldValue: Sendable {
    /// A float (no suffix): `1`, `1.`, `.5`, `-1.5E-3`.
    case float(Double)
    /// A signed integer with the `i` suffix: `-42i`.
    case int(Int64)
    /// An unsigned integer with the `u` suffix: `42u`.
    case uint(UInt64)
    /// A double-quoted string, unescaped.
    case string(String)
    /// A boolean: `t T true True TRUE f F false False FALSE`.
    case bool(Bool)

    /// The type name used in JSON output and error messages.
    public var typeName: String {
        switch self {
        case .float: "float"
        case .int: "int"
        case .uint: "uint"
        case .string: "string"
        case .bool: "bool"
        }
    }

    /// The value as a Double when it is numeric (float, int or uint), nil otherwise.
    public var numericValue: Double? {
        switch self {
        case .float(let v): v
        case .int(let v): Double(v)
        case .uint(let v): Double(v)
        case .string, .bool: nil
        }
    }
}

extension FieldValue: Hashable {
    // Floats compare by bit pattern so that -0.0 and 0.0 are distinct and a decoded value
    // equals its source exactly (NaN never occurs: the decoder rejects it).
    public static func == (lhs: FieldValue, rhs: FieldValue) -> Bool {
        switch (lhs, rhs) {
        case (.float(let a), .float(let b)): a.bitPattern == b.bitPattern
        case (.int(let a), .int(let b)): a == b
        case (.uint(let a), .uint(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .float(let v): hasher.combine(0); hasher.combine(v.bitPattern)
        case .int(let v): hasher.combine(1); hasher.combine(v)
        case .uint(let v): hasher.combine(2); hasher.combine(v)
        case .string(let v): hasher.combine(3); hasher.combine(v)
        case .bool(let v): hasher.combine(4); hasher.combine(v)
        }
    }
}
