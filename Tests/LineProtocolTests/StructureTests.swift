import LineProtocol
import Testing

@Suite("Line structure, characters and batches", .timeLimit(.minutes(3)))
struct StructureTests {
    @Test("tags and fields keep input order")
    func order() {
        let p = point("m,z=1,a=2,m=3 y=1,b=2 10")
        #expect(p?.tags == [Tag("z", "1"), Tag("a", "2"), Tag("m", "3")])
        #expect(p?.fields.map(\.key) == ["y", "b"])
    }

    @Test("structural errors name line, column and reason", arguments: [
        ("cpu", 1, 4, DecodeError.Reason.missingFields),
        ("cpu,host=a", 1, 11, .missingFields),
        ("cpu ", 1, 5, .missingFields),
        (",host=a v=1", 1, 1, .emptyMeasurement(found: UInt8(ascii: ","))),
        ("cpu, host=a v=1", 1, 5, .expectedTagKey(found: UInt8(ascii: " "))),
        ("cpu,host v=1", 1, 9, .expectedTagEquals(key: "host", found: UInt8(ascii: " "))),
        ("cpu,host= v=1", 1, 10, .emptyTagValue(key: "host")),
        ("cpu,host=a=b v=1", 1, 11, .unescapedEqualsInTagValue(key: "host")),
        ("cpu,host=a, v=1", 1, 12, .expectedTagKey(found: UInt8(ascii: " "))),
        ("cpu,a=1,b=2,a=3 v=1", 1, 13, .duplicateTagKey("a")),
        ("cpu v", 1, 6, .expectedFieldEquals(key: "v", found: nil)),
        ("cpu v=", 1, 7, .missingFieldValue(key: "v")),
        ("cpu v= 1", 1, 7, .missingFieldValue(key: "v")),
        ("cpu v=1,", 1, 9, .expectedFieldKey(found: nil)),
        ("cpu v=1, w=2", 1, 9, .expectedFieldKey(found: UInt8(ascii: " "))),
        ("cpu =1", 1, 5, .expectedFieldKey(found: UInt8(ascii: "="))),
        ("cpu v=\"abc", 1, 7, .unterminatedString(key: "v")),
        ("cpu v=\"a\"b", 1, 10, .unexpectedAfterField(found: UInt8(ascii: "b"))),
        ("cpu v=1 # comment", 1, 9, .invalidTimestamp(text: "#")),
        ("cpu v=1\rx", 1, 8, .loneCarriageReturn),
    ])
    func structuralErrors(line: String, row: Int, column: Int, reason: DecodeError.Reason) {
        let e = failure(line)
        #expect(e == DecodeError(line: row, column: column, reason: reason), "\(line.debugDescription)")
    }

    @Test("the issue's example message reads like a sentence")
    func message() {
        let e = failure("cpu,host=a value 1")
        #expect(e?.description == "line 1, column 17: expected '=' after field key \"value\", found space")
    }

    @Test("control characters outside strings are rejected, inside strings kept", arguments: [
        ("c\u{1}pu v=1", 2, DecodeError.Reason.Element.measurement),
        ("cpu,h\u{7f}=a v=1", 6, .tagKey),
        ("cpu,h=a\u{0}b v=1", 8, .tagValue),
        ("cpu v\u{1b}=1", 6, .fieldKey),
    ])
    func controls(line: String, column: Int, element: DecodeError.Reason.Element) {
        let e = failure(line)
        #expect(e?.column == column)
        if case .controlCharacter(_, let el)? = e?.reason { #expect(el == element) } else { Issue.record("\(String(describing: e))") }
        #expect(onlyValue("m s=\"a\u{1}\u{7f}b\"") == .string("a\u{1}\u{7f}b"))
    }

    @Test("tabs are not separators", arguments: ["cpu\tv=1", "\tcpu v=1", "cpu v=1\t5", "cpu,a=b\tv=1"])
    func tabs(line: String) {
        #expect(failure(line) != nil)
    }

    @Test("invalid UTF-8 is rejected in every element, with its column", arguments: [
        ([0x63, 0xFF, 0x20, 0x76, 0x3D, 0x31], 2, DecodeError.Reason.Element.measurement),
        ([0x63, 0x2C, 0x6B, 0xC3, 0x28, 0x3D, 0x61, 0x20, 0x76, 0x3D, 0x31], 4, .tagKey),
        ([0x63, 0x2C, 0x6B, 0x3D, 0xED, 0xA0, 0x80, 0x20, 0x76, 0x3D, 0x31], 5, .tagValue),
        ([0x63, 0x20, 0xC0, 0x80, 0x3D, 0x31], 3, .fieldKey),
        ([0x63, 0x20, 0x76, 0x3D, 0x22, 0x61, 0xF5, 0x22], 7, .stringValue),
    ] as [([UInt8], Int, DecodeError.Reason.Element)])
    func invalidUTF8(bytes: [UInt8], column: Int, element: DecodeError.Reason.Element) {
        let entries = decodeAll(bytes: bytes)
        #expect(entries.count == 1)
        guard case .failure(let e)? = entries.first else { Issue.record("no error"); return }
        #expect(e.reason == .invalidUTF8(in: element))
        #expect(e.column == column)
    }

    @Test("valid multi-byte UTF-8 everywhere")
    func validUTF8() {
        let p = point("m\u{e9}tric,h\u{f4}te=n\u{153}ud\u{1F5A5} v\u{e4}l=\"\u{2713}\" 1")
        #expect(p?.measurement == "m\u{e9}tric")
        #expect(p?.tags == [Tag("h\u{f4}te", "n\u{153}ud\u{1F5A5}")])
        #expect(p?.fields == [Field("v\u{e4}l", .string("\u{2713}"))])
    }

    @Test("batch: blank, space-only and comment lines, CRLF, LF in strings, bad lines in between")
    func batch() throws {
        let text = """
            # a comment\r
               # an indented comment
            \r
            cpu,host=a v=1 1\r
            bad line here
               \r
            cpu,host=b v=2 2
            mem s="multi
            line" 3
            cpu v=,x
            cpu,host=c v=3
            """
        let entries = decodeAll(text)
        #expect(entries.count == 6)
        let hosts = entries.compactMap { try? $0.get().tag("host") }
        #expect(hosts == ["a", "b", "c"])
        let errors = entries.compactMap { r -> DecodeError? in if case .failure(let e) = r { e } else { nil } }
        #expect(errors.map(\.line) == [5, 10])
        #expect(errors.map(\.column) == [9, 7])
        #expect(try entries[3].get().field("s") == .string("multi\nline"))
        #expect(try entries[3].get().timestamp == 3)
    }

    @Test("an unterminated string swallows the rest of the input and is reported at its quote")
    func unterminated() {
        let entries = decodeAll("a v=1\nb s=\"open\nc v=2\n")
        #expect(entries.count == 2)
        if case .failure(let e) = entries[1] {
            #expect(e == DecodeError(line: 2, column: 5, reason: .unterminatedString(key: "s")))
        } else {
            Issue.record("expected the error")
        }
    }

    @Test("an error after a multi-line string resumes after that string")
    func resumeAfterString() throws {
        let entries = decodeAll("a s=\"x\ny\"junk more\nb v=1\n")
        #expect(entries.count == 2)
        if case .failure(let e) = entries[0] { #expect(e.line == 2 && e.column == 3) } else { Issue.record("no error") }
        #expect(try entries[1].get().measurement == "b")
    }

    @Test("comments with control characters and lone CRs are errors; a final CR is an end of line")
    func commentsAndCR() {
        #expect(failure("# tab\there")?.reason == .controlCharacterInComment(9))
        #expect(failure("\r x")?.reason == .loneCarriageReturn)
        #expect(point("m v=1\r")?.fields.count == 1)
        #expect(decodeAll("# c\r").isEmpty)
        #expect(decodeAll("\n\n   \n# only comments\n").isEmpty)
        #expect(decodeAll("").isEmpty)
    }

    @Test("the raw text of each entry is available for dead letters")
    func rawLines() {
        let decoder = LineDecoder()
        var raws: [String] = []
        decoder.forEachLine(in: Array("  a v=1 5\r\nbad\nc v=\"x\ny\"\n".utf8)) { entry in
            switch entry {
            case .point(let v): raws.append(String(decoding: v.raw, as: UTF8.self))
            case .error(_, let raw): raws.append(String(decoding: raw, as: UTF8.self))
            }
        }
        #expect(raws == ["  a v=1 5", "bad", "c v=\"x\ny\""])
    }

    @Test("zero-copy views compare keys without allocating and unescape on demand")
    func views() {
        let decoder = LineDecoder(precision: .seconds)
        var seen = 0
        decoder.forEachLine(in: Array(#"cpu_load,cluster=fritz,hostname=f0726,type=node,ty\ pe=x value=35.2 1718001260"#.utf8)) { entry in
            guard case .point(let v) = entry else { Issue.record("error"); return }
            seen += 1
            #expect(v.measurement.equals("cpu_load"))
            #expect(v.tag("hostname")?.equals("f0726") == true)
            #expect(v.tag("ty pe")?.string == "x")
            #expect(v.tag("missing") == nil)
            #expect(v.tags[3].key.isEscaped)
            #expect(!v.tags[0].key.isEscaped)
            #expect(v.field("value")?.numericValue == 35.2)
            #expect(v.timestamp == 1_718_001_260_000_000_000)
        }
        #expect(seen == 1)
    }

    @Test("many tags and fields grow the reusable storage")
    func manyTagsAndFields() {
        let tags = (0..<100).map { "t\($0)=v\($0)" }.joined(separator: ",")
        let fields = (0..<100).map { "f\($0)=\($0)i" }.joined(separator: ",")
        let p = point("m,\(tags) \(fields) 1")
        #expect(p?.tags.count == 100)
        #expect(p?.fields.count == 100)
        #expect(p?.fields.last == Field("f99", .int(99)))
    }
}
