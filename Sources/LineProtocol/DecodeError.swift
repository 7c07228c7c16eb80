/// Why a line of line protocol was rejected, with the place where the problem starts.
///
/// Line and column are 1-based; the column counts bytes from the start of the line, as
/// lp-v2 does. `description` reads "line 3, column 17: expected '=' after field key \"v\"".
public struct DecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// 1-based line number within the decoded buffer.
    public var line: Int
    /// 1-based byte column within that line.
    public var column: Int
    /// What is wrong.
    public var reason: Reason

    /// Creates an error.
    public init(line: Int, column: Int, reason: Reason) {
        self.line = line
        self.column = column
        self.reason = reason
    }

    /// "line L, column C: reason".
    public var description: String {
        "line \(line), column \(column): \(reason)"
    }

    /// The ways a line can be wrong. Each case renders as a sentence an operator can act on.
    public enum Reason: Sendable, Hashable, CustomStringConvertible {
        /// The line starts with a character that cannot start a measurement name.
        case emptyMeasurement(found: UInt8?)
        /// A control character (or DEL) outside a string value.
        case controlCharacter(UInt8, in: Element)
        /// A comment line holds a control character (lp-v2 rejects even a tab there).
        case controlCharacterInComment(UInt8)
        /// Bytes that are not valid UTF-8.
        case invalidUTF8(in: Element)
        /// `,` not followed by a tag key.
        case expectedTagKey(found: UInt8?)
        /// A tag key without `=`.
        case expectedTagEquals(key: String, found: UInt8?)
        /// `key=` with nothing after it.
        case emptyTagValue(key: String)
        /// An unescaped `=` inside a tag value.
        case unescapedEqualsInTagValue(key: String)
        /// The same tag key twice in one line.
        case duplicateTagKey(String)
        /// The line ends after the measurement or tags: there must be at least one field.
        case missingFields
        /// A field key was expected (after the tags, or after `,`).
        case expectedFieldKey(found: UInt8?)
        /// A field key without `=`.
        case expectedFieldEquals(key: String, found: UInt8?)
        /// `key=` with no value.
        case missingFieldValue(key: String)
        /// The value starts with a character no type starts with (`NaN`, `+1`, `'a'`).
        case unrecognizedFieldType(key: String, found: UInt8)
        /// A string value without its closing quote.
        case unterminatedString(key: String)
        /// A number that does not follow the grammar for its type.
        case invalidNumber(key: String, text: String, type: NumberType)
        /// A number outside the range of its type (or a float overflowing binary64).
        case numberOutOfRange(key: String, text: String, type: NumberType)
        /// A word that is not one of the ten boolean spellings.
        case invalidBoolean(key: String, text: String)
        /// Something other than `,`, space or end of line right after a field value.
        case unexpectedAfterField(found: UInt8)
        /// A timestamp that is not a decimal integer.
        case invalidTimestamp(text: String)
        /// A timestamp outside int64 nanoseconds after precision scaling.
        case timestampOutOfRange(text: String, precision: Precision)
        /// Text after the timestamp.
        case unexpectedAfterTimestamp(found: UInt8)
        /// A carriage return not followed by a newline.
        case loneCarriageReturn

        /// The elements of a line, for messages.
        public enum Element: String, Sendable, Hashable {
            case measurement = "measurement"
            case tagKey = "tag key"
            case tagValue = "tag value"
            case fieldKey = "field key"
            case stringValue = "string value"
        }

        /// The numeric types, for messages.
        public enum NumberType: String, Sendable, Hashable {
            case float, int = "integer", uint = "unsigned integer"
        }

        public var description: String {
            switch self {
            case .emptyMeasurement(let c):
                if let c { return "measurement name expected, found \(show(c))" }
                return "measurement name expected, found end of input"
            case .controlCharacter(let c, let element):
                return "invalid control character \(show(c)) in \(element.rawValue)"
            case .controlCharacterInComment(let c):
                return "invalid control character \(show(c)) in comment line"
            case .invalidUTF8(let element):
                return "invalid UTF-8 sequence in \(element.rawValue)"
            case .expectedTagKey(let c):
                return "expected tag key after ',', found \(show(c))"
            case .expectedTagEquals(let key, let c):
                return "expected '=' after tag key \(quote(key)), found \(show(c))"
            case .emptyTagValue(let key):
                return "empty value for tag key \(quote(key))"
            case .unescapedEqualsInTagValue(let key):
                return "unescaped '=' in value of tag \(quote(key)) (write \\=)"
            case .duplicateTagKey(let key):
                return "duplicate tag key \(quote(key))"
            case .missingFields:
                return "missing fields: a line needs at least one field after the measurement and tags"
            case .expectedFieldKey(let c):
                return "expected field key, found \(show(c))"
            case .expectedFieldEquals(let key, let c):
                return "expected '=' after field key \(quote(key)), found \(show(c))"
            case .missingFieldValue(let key):
                return "missing value for field \(quote(key))"
            case .unrecognizedFieldType(let key, let c):
                return "value of field \(quote(key)) has unrecognized type: starts with \(show(c)), expected a number, a quoted string or a boolean"
            case .unterminatedString(let key):
                return "string value of field \(quote(key)) has no closing quote"
            case .invalidNumber(let key, let text, let type):
                return "invalid \(type.rawValue) \(quote(text)) for field \(quote(key))"
            case .numberOutOfRange(let key, let text, let type):
                return "\(type.rawValue) \(quote(text)) for field \(quote(key)) is out of range"
            case .invalidBoolean(let key, let text):
                return "invalid boolean \(quote(text)) for field \(quote(key)) (use t, T, true, True, TRUE, f, F, false, False or FALSE)"
            case .unexpectedAfterField(let c):
                return "unexpected character \(show(c)) after field value (expected ',', space or end of line)"
            case .invalidTimestamp(let text):
                return "invalid timestamp \(quote(text)): expected a decimal integer"
            case .timestampOutOfRange(let text, let precision):
                return "timestamp \(quote(text)) at precision \(precision.rawValue) is out of the int64 nanosecond range"
            case .unexpectedAfterTimestamp(let c):
                return "unexpected character \(show(c)) after timestamp"
            case .loneCarriageReturn:
                return "carriage return not followed by a newline"
            }
        }
    }
}

/// Renders a byte for a message: printable ASCII quoted, others as hex.
private func show(_ c: UInt8?) -> String {
    guard let c else { return "end of input" }
    switch c {
    case UInt8(ascii: "\n"): return "end of line"
    case UInt8(ascii: " "): return "space"
    case 0x21...0x7E: return "'\(Character(Unicode.Scalar(c)))'"
    default: return "byte 0x" + String(c, radix: 16, uppercase: true).leftPadded(to: 2)
    }
}

/// Quotes a name for a message, cutting long ones.
private func quote(_ s: String) -> String {
    let cut = s.count > 64 ? String(s.prefix(61)) + "..." : s
    return "\"" + cut + "\""
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
