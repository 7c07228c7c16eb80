import Model
import Testing

/// Shared values: content hashes that ids are built from, reloadable values.
@Suite(.timeLimit(.minutes(1))) struct ModelTests {
    /// FNV-1a 64 of known inputs: the ids derived from it must not change between releases.
    @Test func contentHashIsFNV1a64() {
        #expect(ContentHash.hex("") == "cbf29ce484222325")
        #expect(ContentHash.hex("a") == "af63dc4c8601ec8c")
        #expect(ContentHash.hex("foobar") == "85944171f73967e8")
    }

    @Test func aReloadableValueIsReplacedForLaterReaders() {
        let value = Reloadable(1)
        let first = value.current
        value.replace(with: 2)
        #expect(first == 1 && value.current == 2)
    }

    @Test func stringsAreEscapedOnceForEveryJSON() {
        #expect(JSONValue.string("a\"b\\c\n\u{01}\u{7F}").jsonText == #""a\"b\\c\n\u0001\u007f""#)
    }

    /// Integers up to 18 digits are summed from their digits; longer ones, fractions and exponents
    /// go through the text: either way the value is what `Int64(text)` / `Double(text)` read.
    @Test func numbersParseToTheirValues() throws {
        for text in ["0", "-0", "7", "-7", "10", "123456789012345678", "-999999999999999999", "1234567890123456789",
                     "9223372036854775807", "-9223372036854775808", "9223372036854775808", "1.5", "-2.25", "1e3", "12E-2"] {
            let parsed = try JSONValue.parse(text)
            if let i = Int64(text) { #expect(parsed == .integer(i), "\(text)") } else { #expect(parsed == .double(Double(text)!), "\(text)") }
        }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let v = Int64.random(in: Int64.min...Int64.max, using: &random) >> Int64.random(in: 0...62, using: &random)
            #expect(try JSONValue.parse(String(v)) == .integer(v))
        }
    }

    /// The byte writer gives the text of writing piece by piece into a `String` (`String(i)` for
    /// integers, the one string escaping), and that text parses back to the value: every control
    /// character, quotes, backslashes, multi-byte UTF-8, integers to both ends, nested containers.
    @Test func theByteWriterWritesWhatTheStringWriterWrites() throws {
        let controls = String((0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) }) + "\u{7F}"
        let value = JSONValue.object([
            ("s", .string("plain")), ("controls", .string(controls)), ("quoted", .string("say \"hi\" \\ bye")),
            ("utf8", .string("Grüße, 東京 🚀")), ("empty", .string("")),
            ("ints", .array([.integer(0), .integer(7), .integer(-7), .integer(10), .integer(Int64.max), .integer(Int64.min)])),
            ("doubles", .array([.double(1.5), .double(-2), .double(1e20)])), ("flags", .array([.bool(true), .bool(false), .null])),
            ("nested", .object([("a", .array([.object([])]))])),
        ])
        // The string path, piece by piece, as before the byte writer (doubles and flags as written).
        func write(_ v: JSONValue, _ out: inout String) {
            switch v {
            case .string(let s): JSONValue.writeString(s, to: &out)
            case .integer(let i): out += String(i)
            case .object(let members):
                out += "{"
                for (i, m) in members.enumerated() { if i > 0 { out += "," }; JSONValue.writeString(m.key, to: &out); out += ":"; write(m.value, &out) }
                out += "}"
            case .array(let items):
                out += "["
                for (i, item) in items.enumerated() { if i > 0 { out += "," }; write(item, &out) }
                out += "]"
            default: out += String(decoding: v.jsonBytes, as: UTF8.self)
            }
        }
        var viaString = ""
        write(value, &viaString)
        #expect(value.jsonText == viaString)
        // Parsed back: the same value (a whole double reads back as an integer, written alike).
        #expect(try JSONValue.parse(value.jsonBytes).jsonText == value.jsonText)
        #expect(try JSONValue.parse(value.jsonBytes)["controls"] == .string(controls))
    }
}
