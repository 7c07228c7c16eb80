import Foundation
import LineProtocol
import Testing

@Suite("clusterd lp decode", .timeLimit(.minutes(3)))
struct LPDecodeCommandTests {
    @Test("prints the issue's example point exactly")
    func examplePoint() throws {
        let r = try CLIRunner.run(["lp", "decode"], stdin: "cpu,host=a value=0.64 1434055562000000000\n")
        #expect(r.status == 0)
        #expect(r.stdout == #"{"measurement": "cpu", "tags": {"host": "a"}, "fields": {"value": {"type": "float", "value": 0.64}}, "timestamp": 1434055562000000000}"# + "\n")
    }

    @Test("one object per point or error, nothing for blank and comment lines, exit 1 on a bad line")
    func batch() throws {
        let input = "# header\n\nm a=9223372036854775807i,b=-9223372036854775808i,c=18446744073709551615u,d=t,e=\"x\\\"y\"\ncpu v 1\n  \nm f=-0,g=1e300,h=0.1\n"
        let r = try CLIRunner.run(["lp", "decode"], stdin: input)
        #expect(r.status == 1)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0] == #"{"measurement": "m", "tags": {}, "fields": {"a": {"type": "int", "value": 9223372036854775807}, "b": {"type": "int", "value": -9223372036854775808}, "c": {"type": "uint", "value": 18446744073709551615}, "d": {"type": "bool", "value": true}, "e": {"type": "string", "value": "x\"y"}}, "timestamp": null}"#)
        #expect(lines[1] == #"{"error": "expected '=' after field key \"v\", found space", "line": 4, "column": 6}"#)
        // Floats print as the shortest text that reads back to the same double.
        let json = try JSONSerialization.jsonObject(with: Data(lines[2].utf8)) as? [String: Any]
        let fields = json?["fields"] as? [String: [String: Any]]
        #expect((fields?["f"]?["value"] as? Double)?.sign == .minus)
        #expect(fields?["g"]?["value"] as? Double == 1e300)
        #expect(lines[2].contains(#""h": {"type": "float", "value": 0.1}"#))
        #expect(lines[2].contains(#""f": {"type": "float", "value": -0.0}"#))
    }

    @Test("--precision scales timestamps to nanoseconds and detects overflow", arguments: [
        ("s", "m v=1 1718001260\n", #""timestamp": 1718001260000000000"#, Int32(0)),
        ("ms", "m v=1 1718001260123\n", #""timestamp": 1718001260123000000"#, 0),
        ("us", "m v=1 1718001260123456\n", #""timestamp": 1718001260123456000"#, 0),
        ("ns", "m v=1 1\n", #""timestamp": 1"#, 0),
        ("s", "m v=1 9223372037\n", #""error": "timestamp \"9223372037\" at precision s is out of the int64 nanosecond range""#, 1),
    ])
    func precision(flag: String, input: String, expected: String, status: Int32) throws {
        let r = try CLIRunner.run(["lp", "decode", "--precision", flag], stdin: input)
        #expect(r.status == status)
        #expect(r.stdout.contains(expected), "\(r.stdout)")
    }

    @Test("the CLI agrees with the library decoder on every line of a mixed batch")
    func agreesWithLibrary() throws {
        var rng = SystemRandomNumberGenerator()
        let samples = [
            "cpu_load,cluster=fritz,hostname=f0726,type=node value=35.2 1718001260",
            "bad,line", "m s=\"multi\nline\" 5", "m\\ x,a\\=b=c\\,d f=1u", "m v=1e400", "m v=\"\u{e9}\"",
        ]
        let input = (0..<50).map { _ in samples.randomElement(using: &rng)! }.joined(separator: "\r\n") + "\n"
        let r = try CLIRunner.run(["lp", "decode"], stdin: input)
        let expected = LineDecoder().decode(input).map { entry in
            switch entry {
            case .success(let p): DecodeJSON.render(p)
            case .failure(let e): DecodeJSON.render(e)
            }
        }
        #expect(r.stdout == expected.map { $0 + "\n" }.joined())
        #expect(r.status == (expected.contains { $0.hasPrefix("{\"error\"") } ? 1 : 0))
    }

    @Test("invalid UTF-8 on standard input is reported, not a crash")
    func invalidUTF8() throws {
        let r = try CLIRunner.run(["lp", "decode"], stdinBytes: [0x6D, 0x20, 0x76, 0x3D, 0x22, 0xFF, 0x22, 0x0A, 0x6D, 0x20, 0x76, 0x3D, 0x31, 0x0A])
        #expect(r.status == 1)
        #expect(r.stdout.hasPrefix(#"{"error": "invalid UTF-8 sequence in string value", "line": 1, "column": 6}"#))
        #expect(r.stdout.split(separator: "\n").count == 2)
    }

    @Test("--help documents the command")
    func help() throws {
        let r = try CLIRunner.run(["lp", "decode", "--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("--precision"))
    }
}

/// The fuzz target built normally replays the committed corpus (scripts/fuzz grows it with
/// libFuzzer): CI runs every input through the decoders on each change.
@Suite(.timeLimit(.minutes(3))) struct FuzzCorpusTests {
    @Test func theCommittedCorpusReplaysWithoutACrash() throws {
        let binary = CLIRunner.executable.deletingLastPathComponent().appendingPathComponent("clusterd-fuzz")
        let r = try CLIRunner.runProgram(binary.path, [CLIRunner.packageRoot.appendingPathComponent("Fuzz/corpus").path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("inputs replayed, no crash"))
    }
}
