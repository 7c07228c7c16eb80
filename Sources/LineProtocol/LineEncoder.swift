/// Why a point cannot be written as line protocol.
public enum EncodeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Measurement, tag key, tag value or field key is empty.
    case emptyName(DecodeError.Reason.Element)
    /// A name holds a control character, which line protocol cannot carry outside strings.
    case controlCharacter(DecodeError.Reason.Element, String)
    /// A name ends in a backslash, which would escape the delimiter after it.
    case trailingBackslash(DecodeError.Reason.Element, String)
    /// A measurement starting with `#` would read as a comment line.
    case measurementStartsWithHash(String)
    /// NaN and infinities have no line-protocol form.
    case nonFiniteFloat(key: String)
    /// A point needs at least one field.
    case noFields

    public var description: String {
        switch self {
        case .emptyName(let e): "empty \(e.rawValue)"
        case .controlCharacter(let e, let s): "\(e.rawValue) \(s.debugDescription) holds a control character"
        case .trailingBackslash(let e, let s): "\(e.rawValue) \(s.debugDescription) ends in a backslash"
        case .measurementStartsWithHash(let s): "measurement \(s.debugDescription) starts with '#'"
        case .nonFiniteFloat(let key): "field \(key.debugDescription) is not a finite number"
        case .noFields: "a point needs at least one field"
        }
    }
}

/// Writes points as line protocol with correct escaping per element.
///
/// Floats are written in their shortest round-tripping form, integers with `i`, unsigned
/// with `u`; in strings LF, CR and TAB are written as `\n` `\r` `\t` (which ClusterCockpit's
/// decoder turns back into those characters). Tags are written sorted by key (the order
/// InfluxDB recommends) or in the given order.
public struct LineEncoder: Sendable {
    /// Timestamps of the points are in nanoseconds; they are written divided by this
    /// precision's unit (truncated toward zero).
    public var precision: Precision
    /// Sort tags by key (byte order) instead of keeping the given order.
    public var sortTags: Bool

    /// Creates an encoder.
    public init(precision: Precision = .nanoseconds, sortTags: Bool = false) {
        self.precision = precision
        self.sortTags = sortTags
    }

    /// Encodes one point followed by `\n`.
    public func encode(_ point: Point) throws(EncodeError) -> [UInt8] {
        var out: [UInt8] = []
        try append(point, to: &out)
        return out
    }

    /// Encodes points, one line each.
    public func encode(_ points: [Point]) throws(EncodeError) -> [UInt8] {
        var out: [UInt8] = []
        for point in points { try append(point, to: &out) }
        return out
    }

    /// Appends one point and `\n` to `out`.
    public func append(_ point: Point, to out: inout [UInt8]) throws(EncodeError) {
        if point.fields.isEmpty { throw .noFields }
        if point.measurement.utf8.first == UInt8(ascii: "#") { throw .measurementStartsWithHash(point.measurement) }
        try appendName(point.measurement, .measurement, to: &out)
        let tags = sortTags ? point.tags.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) } : point.tags
        for tag in tags {
            out.append(UInt8(ascii: ","))
            try appendName(tag.key, .tagKey, to: &out)
            out.append(UInt8(ascii: "="))
            try appendName(tag.value, .tagValue, to: &out)
        }
        out.append(UInt8(ascii: " "))
        for (i, field) in point.fields.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            try appendName(field.key, .fieldKey, to: &out)
            out.append(UInt8(ascii: "="))
            switch field.value {
            case .float(let v):
                guard v.isFinite else { throw .nonFiniteFloat(key: field.key) }
                out.append(contentsOf: v.description.utf8)
            case .int(let v):
                out.append(contentsOf: String(v).utf8)
                out.append(UInt8(ascii: "i"))
            case .uint(let v):
                out.append(contentsOf: String(v).utf8)
                out.append(UInt8(ascii: "u"))
            case .bool(let v):
                out.append(contentsOf: (v ? "true" : "false").utf8)
            case .string(let s):
                appendString(s, to: &out)
            }
        }
        if let ts = point.timestamp {
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: String(ts / precision.nanosecondsPerUnit).utf8)
        }
        out.append(UInt8(ascii: "\n"))
    }

    private func appendName(_ name: String, _ element: DecodeError.Reason.Element, to out: inout [UInt8]) throws(EncodeError) {
        if name.isEmpty { throw .emptyName(element) }
        if name.utf8.last == UInt8(ascii: "\\") { throw .trailingBackslash(element, name) }
        for b in name.utf8 {
            switch b {
            case UInt8(ascii: ","), UInt8(ascii: " "):
                out.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "=") where element != .measurement:
                out.append(UInt8(ascii: "\\"))
            case 0..<0x20, 0x7F:
                throw .controlCharacter(element, name)
            default:
                break
            }
            out.append(b)
        }
    }

    private func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(b)
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
