import LineProtocol
import Testing

@Suite("Field value types and ranges", .timeLimit(.minutes(3)))
struct FieldValueTests {
    @Test("float forms", arguments: [
        ("1", 1.0), ("1.", 1.0), (".5", 0.5), ("-.5", -0.5), ("-1.5E-3", -0.0015), ("1.e+78", 1e78),
        ("00.42", 0.42), ("1E10", 1e10), ("1e-10", 1e-10), ("0.64", 0.64), ("-0.0", -0.0),
        ("123456789012345678901234567890", 123456789012345678901234567890.0),
        ("1.7976931348623157e308", 1.7976931348623157e308), ("5e-324", .leastNonzeroMagnitude),
        ("0.1", 0.1), ("2.2250738585072014e-308", 2.2250738585072014e-308),
        ("9007199254740993", 9007199254740993.0), ("1e23", 1e23), ("8.589973e9", 8.589973e9),
        ("0.000000000000000000000000000001", 1e-30), ("35.2", 35.2), ("1e-400", 0.0),
        ("3.141592653589793238462643383279", 3.141592653589793),
    ])
    func floats(text: String, expected: Double) {
        guard case .float(let v)? = onlyValue("m v=\(text)") else {
            Issue.record("not a float: \(text)")
            return
        }
        #expect(v.bitPattern == expected.bitPattern, "\(text) decoded to \(v), expected \(expected)")
    }

    @Test("negative zero keeps its sign")
    func negativeZero() {
        guard case .float(let v)? = onlyValue("m v=-0") else { Issue.record("not a float"); return }
        #expect(v == 0 && v.sign == .minus)
    }

    @Test("invalid floats", arguments: [
        "NaN", "nan", "Inf", "inf", "+1", "0x1p3", "1_000", "1e", "1e+", "-", ".", "-.", "1.2.3", "1e5.0", "1ee5",
        "--1", "1-", "1f", "1,5x",
    ])
    func invalidFloats(text: String) {
        let e = failure("m v=\(text)")
        #expect(e != nil)
        #expect(e?.line == 1)
    }

    @Test("float overflow is an error, with the column of the value")
    func floatOverflow() {
        let e = failure("m v=1.8e308")
        #expect(e?.reason == .numberOutOfRange(key: "v", text: "1.8e308", type: .float))
        #expect(e?.column == 5)
        #expect(failure("m v=-1e400")?.reason == .numberOutOfRange(key: "v", text: "-1e400", type: .float))
    }

    @Test("integers cover int64 exactly", arguments: [
        ("0i", 0), ("-0i", 0), ("42i", 42), ("007i", 7), ("9223372036854775807i", Int64.max),
        ("-9223372036854775808i", Int64.min), ("-1i", -1),
    ] as [(String, Int64)])
    func ints(text: String, expected: Int64) {
        #expect(onlyValue("m v=\(text)") == .int(expected))
    }

    @Test("integer range and syntax errors", arguments: [
        ("9223372036854775808i", true), ("-9223372036854775809i", true), ("99999999999999999999999i", true),
        ("1.5i", false), ("1e3i", false), ("+1i", false), ("i", false), ("-i", false), ("0x10i", false),
    ])
    func intErrors(text: String, outOfRange: Bool) {
        let e = failure("m v=\(text)")
        if outOfRange {
            #expect(e?.reason == .numberOutOfRange(key: "v", text: text, type: .int))
        } else {
            #expect(e != nil)
        }
    }

    @Test("unsigned integers cover uint64 exactly", arguments: [
        ("0u", 0), ("18446744073709551615u", UInt64.max), ("042u", 42),
    ] as [(String, UInt64)])
    func uints(text: String, expected: UInt64) {
        #expect(onlyValue("m v=\(text)") == .uint(expected))
    }

    @Test("unsigned range and syntax errors", arguments: [
        ("18446744073709551616u", true), ("-1u", false), ("1.0u", false), ("-u", false),
    ])
    func uintErrors(text: String, outOfRange: Bool) {
        let e = failure("m v=\(text)")
        if outOfRange {
            #expect(e?.reason == .numberOutOfRange(key: "v", text: text, type: .uint))
        } else {
            #expect(e?.reason == .invalidNumber(key: "v", text: text, type: .uint))
        }
    }

    @Test("the ten boolean spellings", arguments: [
        ("t", true), ("T", true), ("true", true), ("True", true), ("TRUE", true),
        ("f", false), ("F", false), ("false", false), ("False", false), ("FALSE", false),
    ])
    func bools(text: String, expected: Bool) {
        #expect(onlyValue("m v=\(text)") == .bool(expected))
    }

    @Test("other boolean spellings are errors", arguments: ["tRUE", "tr", "falsey", "FALSe", "truee", "f0"])
    func invalidBools(text: String) {
        #expect(failure("m v=\(text)")?.reason == .invalidBoolean(key: "v", text: text))
    }

    @Test("values that start with no type's first character", arguments: ["yes", "'a'", "+1", "NaN", "Inf", "_1"])
    func unrecognized(text: String) {
        let e = failure("m v=\(text)")
        #expect(e?.reason == .unrecognizedFieldType(key: "v", found: text.utf8.first!))
        #expect(e?.column == 5)
    }

    @Test("several fields of every type, in input order, duplicates kept")
    func manyFields() {
        let p = point(#"m a=1,b=2i,c=3u,d="x",e=t,a=5"#)
        #expect(p?.fields == [
            Field("a", .float(1)), Field("b", .int(2)), Field("c", .uint(3)), Field("d", .string("x")),
            Field("e", .bool(true)), Field("a", .float(5)),
        ])
    }
}
