import Bus
import Foundation
@testable import Intake
import Model
@testable import Pipeline
import Testing

/// Every example in `subjects/` is exercised: line-protocol examples are processed in file
/// order and must give the outcome written after `expect=`; JSON examples must match what
/// clusterd really publishes.
@Suite(.timeLimit(.minutes(3))) struct SubjectExamplesTests {
    struct Example {
        let file: String
        let info: String
        let body: String
    }

    static func examples() throws -> [Example] {
        let dir = Repository.path("subjects")
        var out: [Example] = []
        for file in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() where file.hasSuffix(".md") {
            let text = try String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8)
            out += fences(text).map { Example(file: file, info: $0.info, body: $0.body) }
        }
        return out
    }

    /// The fenced blocks of a Markdown text: info string and body.
    static func fences(_ text: String) -> [(info: String, body: String)] {
        var out: [(info: String, body: String)] = []
        var info: String?
        var body: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                if let i = info {
                    out.append((i, body.joined(separator: "\n")))
                    info = nil
                } else {
                    info = String(line.dropFirst(3))
                    body = []
                }
            } else if info != nil {
                body.append(line)
            }
        }
        return out
    }

    /// The bodies of the fenced blocks of `text` whose info string is `info`.
    static func blocks(_ text: String, info: String) -> [String] {
        fences(text).filter { $0.info == info }.map(\.body)
    }

    @Test func jobEventExamplesGiveTheDocumentedOutcome() throws {
        let env = try TestEnvironment()
        let examples = try Self.examples().filter { $0.file == "cc.job.event.md" && $0.info.hasPrefix("lp expect=") }
        #expect(examples.count >= 25)
        for (i, example) in examples.enumerated() {
            let expected = example.info.dropFirst("lp expect=".count).split(separator: ",").map(String.init)
            let result = try env.send(example.body, messageID: "ex\(i)")
            #expect(TestEnvironment.statuses(result) == expected, "example \(i + 1): \(example.body.prefix(100))")
        }
        // The stop before its start ended in a completed job; the legacy stop cancelled.
        let states = try env.query("SELECT job_id, job_state, duration FROM job ORDER BY job_id")
        #expect(states.contains(["2001", "completed", "600", "", "", "", "", ""]))
        #expect(states.contains(["2002", "cancelled", "100", "", "", "", "", ""]))
        #expect(states.contains(["1001", "failed", "100", "", "", "", "", ""]))
        // Every example that could be decoded as LP is valid per the decoder, i.e. the docs stay honest.
        #expect(env.counters["jobs.messages"] == examples.count)
    }

    @Test func nodeStateExamplesGiveTheDocumentedOutcome() throws {
        let env = try TestEnvironment()
        let examples = try Self.examples().filter { $0.file == "cc.node.state.md" && $0.info.hasPrefix("lp expect=") }
        #expect(examples.count >= 5)
        for (i, example) in examples.enumerated() {
            let expected = example.info.dropFirst("lp expect=".count).split(separator: ",").map(String.init)
            let result = try env.sendNodes(example.body, messageID: "ns\(i)", now: 1_718_001_260 + Int64(i) * 60)
            #expect(TestEnvironment.statuses(result) == expected, "example \(i + 1): \(example.body.prefix(100))")
        }
        #expect(try env.nodes.stage.history(cluster: "fritz", hostname: "f0101").map(\.flags) == ["allocated", "allocated+drain"])
    }

    @Test func metricExamplesDecodeAsDocumented() throws {
        let examples = try Self.examples().filter { $0.file == "cc.metrics.md" && $0.info.hasPrefix("lp expect=") }
        #expect(examples.count >= 2)
        for example in examples {
            let expected = example.info.dropFirst("lp expect=".count).split(separator: ",").map(String.init)
            let (samples, letters) = MetricIntake.decode(BusMessage(subject: "cc.metrics.fritz", data: Array(example.body.utf8)),
                                                         defaultCluster: "", now: 1_718_001_999)
            var outcome = [String](repeating: "ok", count: expected.count)
            for letter in letters { outcome[letter.line - 1] = "rejected:\(letter.code)" }
            #expect(outcome == expected, "\(example.body.prefix(80))")
            #expect(samples.count == expected.filter { $0 == "ok" }.count)
            // Seconds, milliseconds or none: every time lands in seconds.
            #expect(samples.allSatisfy { $0.time == 1_718_001_260 || $0.time == 1_718_001_999 })
        }
    }

    @Test func deadLetterAndResultExamplesMatchWhatIsPublished() throws {
        let env = try TestEnvironment()
        let all = try Self.examples()
        // unknown_cluster example → the dead letter documented in clusterd.dlq.jobs.md
        let unknown = try #require(all.first { $0.info == "lp expect=rejected:unknown_cluster" })
        try env.send(unknown.body, messageID: "hook-3001")
        let published = try #require(try env.deadLetters().last)
        let documented = try JSONValue.parse(try #require(all.first { $0.info == "json example=dead-letter" }).body)
        #expect(Self.withoutVolatile(published) == Self.withoutVolatile(documented))
        // the three-line example → the result documented in clusterd.result.jobs.md
        let mixed = try #require(all.first { $0.info == "lp expect=started,rejected:invalid_json,stopped" })
        let result = try env.send(mixed.body, messageID: "hook-3007")
        let documentedResult = try JSONValue.parse(try #require(all.first { $0.info == "json example=result" }).body)
        #expect(Self.withoutVolatile(result) == Self.withoutVolatile(documentedResult))
    }

    /// Drops origin and receipt time, which differ per delivery.
    static func withoutVolatile(_ v: JSONValue) -> JSONValue {
        guard case .object(let members) = v else { return v }
        return .object(members.filter { $0.key != "origin" && $0.key != "receivedAt" })
    }
}
