import LineProtocol
import Testing

@Suite("Escaping per element", .timeLimit(.minutes(3)))
struct EscapingTests {
    @Test("measurement: comma and space are escapable, = and quotes are literal", arguments: [
        (#"c\,pu v=1"#, "c,pu"),
        (#"c\ pu v=1"#, "c pu"),
        (#"c=pu v=1"#, "c=pu"),
        (#""cpu" v=1"#, "\"cpu\""),
        (#"c\=pu v=1"#, #"c\=pu"#),
        (#"c\"pu v=1"#, #"c\"pu"#),
        (#"c\pu v=1"#, #"c\pu"#),
        (#"two\\ words v=1"#, #"two\ words"#),
        ("caf\u{e9} v=1", "caf\u{e9}"),
        (#"c\\\,x v=1"#, #"c\\,x"#),
    ])
    func measurement(line: String, expected: String) {
        #expect(point(line)?.measurement == expected)
    }

    @Test("tag keys and values: comma, equals and space are escapable", arguments: [
        (#"m,k\ 1=v\ 1 f=1"#, "k 1", "v 1"),
        (#"m,k\,1=v\,1 f=1"#, "k,1", "v,1"),
        (#"m,k\=1=v\=1 f=1"#, "k=1", "v=1"),
        (#"m,k"1=v"1 f=1"#, "k\"1", "v\"1"),
        (#"m,k\"1=v\"1 f=1"#, #"k\"1"#, #"v\"1"#),
        (#"m,k\x=v\y f=1"#, #"k\x"#, #"v\y"#),
        (#"m,k=two\\ words f=1"#, "k", #"two\ words"#),
        (#"m,k=a\\\=b f=1"#, "k", #"a\\=b"#),
    ])
    func tags(line: String, key: String, value: String) {
        let p = point(line)
        #expect(p?.tags == [Tag(key, value)])
    }

    @Test("field keys: comma, equals and space are escapable", arguments: [
        (#"m f\ 1=1"#, "f 1"),
        (#"m f\,1=1"#, "f,1"),
        (#"m f\=1=1"#, "f=1"),
        (#"m f\"1=1"#, #"f\"1"#),
        (#"m f\q=1"#, #"f\q"#),
    ])
    func fieldKeys(line: String, key: String) {
        #expect(point(line)?.fields.first?.key == key)
    }

    @Test("string values: \\\" and \\\\ and, as ClusterCockpit, \\n \\r \\t", arguments: [
        (#"m s="a\"b""#, "a\"b"),
        (#"m s="a\\b""#, #"a\b"#),
        (#"m s="a\nb""#, "a\nb"),
        (#"m s="a\rb""#, "a\rb"),
        (#"m s="a\tb""#, "a\tb"),
        (#"m s="C:\dir""#, #"C:\dir"#),
        (#"m s="a\\nb""#, #"a\nb"#),
        (#"m s="""#, ""),
        (#"m s="a,b c=d""#, "a,b c=d"),
        ("m s=\"line1\nline2\"", "line1\nline2"),
        ("m s=\"tab\there\"", "tab\there"),
        (#"m s="ends with \\""#, #"ends with \"#),
        ("m s=\"gr\u{fc}\u{df}e \u{1F600}\"", "gr\u{fc}\u{df}e \u{1F600}"),
    ])
    func strings(line: String, expected: String) {
        #expect(onlyValue(line) == .string(expected))
    }

    @Test("a backslash at the very end of the input is kept")
    func trailingBackslash() {
        // `m\` then EOF: the backslash escapes nothing, so it stays, and the line lacks fields.
        #expect(failure(#"m\"#)?.reason == .missingFields)
        #expect(point(#"m v=1,k\==2"#)?.fields.map(\.key) == ["v", "k="])
    }

    @Test("ClusterCockpit job event JSON survives LP string escaping")
    func jobEventJSON() {
        let line = #"job,function=start_job event="{\"jobId\":1001,\"script\":\"a\\nb \\u003e c\"}" 1718004000000000000"#
        let p = point(line)
        #expect(p?.tag("function") == "start_job")
        #expect(p?.field("event") == .string(#"{"jobId":1001,"script":"a\nb \u003e c"}"#))
        #expect(p?.timestamp == 1_718_004_000_000_000_000)
    }
}
