#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A name, key, tag value or string value inside the buffer being decoded, still escaped.
///
/// A view is only valid inside the ``LineDecoder/forEachLine(in:_:)`` callback that
/// produced it: it points into the caller's buffer. Unescaping happens on demand, and only
/// when ``isEscaped`` is true; an unescaped token is used in place.
public struct TokenView {
    /// First byte of the token as written in the buffer (escapes included).
    public let start: UnsafePointer<UInt8>
    /// Byte count as written in the buffer.
    public let count: Int
    @usableFromInline let escapes: EscapeSet

    @usableFromInline
    init(start: UnsafePointer<UInt8>, count: Int, escapes: EscapeSet) {
        self.start = start
        self.count = count
        self.escapes = escapes
    }

    /// Whether the token contains at least one escape sequence that unescaping changes.
    @inlinable public var isEscaped: Bool { escapes != .none }

    /// The bytes as written in the buffer, escapes included.
    @inlinable public var rawBytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: start, count: count) }

    /// Calls `body` with the unescaped bytes: in place when nothing is escaped, otherwise
    /// from a temporary (stack for short tokens) buffer.
    @inlinable
    public func withUnescapedBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        if escapes == .none { return try body(rawBytes) }
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { buffer in
            let n = unescape(into: buffer.baseAddress!)
            return try body(UnsafeBufferPointer(start: buffer.baseAddress!, count: n))
        }
    }

    /// The unescaped token as a String (allocates; hot paths compare with ``equals(_:)``).
    public var string: String {
        withUnescapedBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether the unescaped token equals an ASCII/UTF-8 literal, without allocating.
    @inlinable
    public func equals(_ literal: StaticString) -> Bool {
        if escapes == .none {
            return literal.utf8CodeUnitCount == count && memcmp(start, literal.utf8Start, count) == 0
        }
        return withUnescapedBytes { bytes in
            bytes.count == literal.utf8CodeUnitCount && memcmp(bytes.baseAddress!, literal.utf8Start, bytes.count) == 0
        }
    }

    /// Writes the unescaped bytes to `out` (at least `count` bytes) and returns their number.
    @usableFromInline
    func unescape(into out: UnsafeMutablePointer<UInt8>) -> Int {
        var i = 0
        var n = 0
        while i < count {
            let c = start[i]
            if c == UInt8(ascii: "\\") && i + 1 < count, let r = escapes.replacement(for: start[i + 1]) {
                out[n] = r
                n += 1
                i += 2
            } else {
                out[n] = c
                n += 1
                i += 1
            }
        }
        return n
    }
}

/// Which escape sequences apply to a token (the element kind decides it).
@usableFromInline
enum EscapeSet: UInt8, Sendable {
    /// Nothing to unescape.
    case none
    /// Measurement: `\,` and `\ `.
    case measurement
    /// Tag keys, tag values, field keys: `\,` `\=` `\ `.
    case key
    /// String field values: `\"` `\\`, and (lp-v2, as ClusterCockpit) `\n` `\r` `\t`.
    case string

    @usableFromInline
    func replacement(for c: UInt8) -> UInt8? {
        switch self {
        case .none:
            return nil
        case .measurement:
            return c == UInt8(ascii: ",") || c == UInt8(ascii: " ") ? c : nil
        case .key:
            return c == UInt8(ascii: ",") || c == UInt8(ascii: " ") || c == UInt8(ascii: "=") ? c : nil
        case .string:
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): return c
            case UInt8(ascii: "n"): return 0x0A
            case UInt8(ascii: "r"): return 0x0D
            case UInt8(ascii: "t"): return 0x09
            default: return nil
            }
        }
    }
}

/// A field value inside the buffer: numbers and booleans already parsed, strings as views.
public enum FieldValueView {
    case float(Double)
    case int(Int64)
    case uint(UInt64)
    case bool(Bool)
    case string(TokenView)

    /// The owned value (allocates for strings).
    public var value: FieldValue {
        switch self {
        case .float(let v): .float(v)
        case .int(let v): .int(v)
        case .uint(let v): .uint(v)
        case .bool(let v): .bool(v)
        case .string(let t): .string(t.string)
        }
    }

    /// The value as a Double when numeric (float, int or uint).
    @inlinable
    public var numericValue: Double? {
        switch self {
        case .float(let v): v
        case .int(let v): Double(v)
        case .uint(let v): Double(v)
        case .bool, .string: nil
        }
    }
}

/// A tag inside the buffer.
public struct TagView {
    /// The tag key.
    public let key: TokenView
    /// The tag value.
    public let value: TokenView

    @usableFromInline
    init(key: TokenView, value: TokenView) {
        self.key = key
        self.value = value
    }
}

/// A field inside the buffer.
public struct FieldView {
    /// The field key.
    public let key: TokenView
    /// The parsed value.
    public let value: FieldValueView

    @usableFromInline
    init(key: TokenView, value: FieldValueView) {
        self.key = key
        self.value = value
    }
}
