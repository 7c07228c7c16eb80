import Bus
import BusTestSupport
import Foundation
import Logging
import Model
import Pipeline
import Store
import Testing

/// Issue 16's catalogue: every kind of bad input clusterd has met, on every subject and API
/// it serves, through a real nats-server into one running service. Each must be answered —
/// the right dead letter (matched by its message id) or an error reply — while good events
/// published between them are all applied, the service stays up and the outbox drains.
@Suite(.serialized, .timeLimit(.minutes(3))) final class BadInputCatalogueTests: BusSuite {
    let fixture: BusFixture

    init() throws {
        fixture = try BusFixture("clusterd-catalogue")
    }

    /// What a bad input must produce.
    enum Expect {
        /// A dead letter on `clusterd.dlq.<stage>` with this code.
        case letter(String, code: String)
        /// An error reply (service error code, or `"ok": false`) whose text contains this.
        case refused(containing: String)
    }

    struct Case {
        let name: String
        let subject: String
        let body: [UInt8]
        let expect: Expect

        init(_ name: String, _ subject: String, _ body: String, _ expect: Expect) {
            self.init(name, subject, Array(body.utf8), expect)
        }

        init(_ name: String, _ subject: String, _ body: [UInt8], _ expect: Expect) {
            self.name = name
            self.subject = subject
            self.body = body
            self.expect = expect
        }
    }

    static let now = Int(Date().timeIntervalSince1970)

    /// A start event line with `json` as its event (quotes escaped here).
    static func job(_ function: String, _ json: String) -> String {
        "job,function=\(function) event=\"\(json.replacingOccurrences(of: "\"", with: "\\\""))\""
    }

    static func start(_ id: Int64, _ extra: String = "", startTime: Int = now - 3600, host: String = "f0101") -> String {
        job("start_job", #"{"jobId":\#(id),"user":"u","project":"p","cluster":"fritz","numNodes":1,"resources":[{"hostname":"\#(host)"}],"startTime":\#(startTime)\#(extra)}"#)
    }

    static func stop(_ id: Int64, _ extra: String = "", stopTime: Int = now - 60) -> String {
        job("stop_job", #"{"jobId":\#(id),"cluster":"fritz","stopTime":\#(stopTime)\#(extra)}"#)
    }

    static func nodes(_ json: String) -> String {
        "nodestate event=\"\(json.replacingOccurrences(of: "\"", with: "\\\""))\""
    }

    static let jobCases: [Case] = {
        let s = "cc.job.event"
        func dl(_ code: String) -> Expect { .letter("jobs", code: code) }
        return [
            Case("empty", s, "", dl("empty_message")),
            Case("blank lines", s, "\n \n\n", dl("empty_message")),
            Case("comment only", s, "# nothing here\n", dl("empty_message")),
            Case("a metric on the job subject", s, "cpu_load,hostname=f0101 value=1", dl("not_an_event")),
            Case("no function tag", s, #"job event="{}""#, dl("bad_function")),
            Case("unknown function", s, #"job,function=pause_job event="{}""#, dl("bad_function")),
            Case("event is a number", s, "job,function=start_job event=1", dl("not_an_event")),
            Case("unterminated string", s, #"job,function=start_job event="{"#, dl("syntax")),
            Case("event is not JSON", s, job("start_job", "{jobId:1"), dl("invalid_json")),
            Case("event is an array", s, job("start_job", "[]"), dl("wrong_type")),
            Case("nesting 300 deep", s, job("start_job", String(repeating: "[", count: 300)), dl("invalid_json")),
            Case("unknown key", s, start(10, #","colour":"red""#), dl("unknown_key")),
            Case("jobId missing", s, job("start_job", #"{"cluster":"fritz"}"#), dl("missing_field")),
            Case("jobId a string", s, job("start_job", #"{"jobId":"12"}"#), dl("wrong_type")),
            Case("jobId a fraction", s, job("start_job", #"{"jobId":5.5}"#), dl("wrong_type")),
            Case("jobId negative", s, start(-5), dl("out_of_range")),
            Case("jobId beyond int64", s, job("start_job", #"{"jobId":9223372036854775808}"#), dl("wrong_type")),
            Case("startTime int64 min", s, start(11, startTime: Int(Int64.min)), dl("out_of_range")),
            Case("startTime 1900", s, start(12, startTime: -2_208_988_800), dl("out_of_range")),
            Case("startTime 1999", s, start(13, startTime: 915_148_800), dl("out_of_range")),
            Case("startTime year 33658", s, start(14, startTime: 1_000_000_000_000), dl("out_of_range")),
            Case("startTime in milliseconds", s, start(15, startTime: now * 1000), dl("out_of_range")),
            Case("startTime two days ahead", s, start(16, startTime: now + 2 * 86_400), dl("in_the_future")),
            Case("submitTime int64 max", s, start(17, #","submitTime":9223372036854775807"#), dl("out_of_range")),
            Case("unknown cluster", s, job("start_job", #"{"jobId":18,"user":"u","cluster":"nowhere","numNodes":1,"resources":[{"hostname":"f0101"}],"startTime":\#(now - 60)}"#), dl("unknown_cluster")),
            Case("no resources", s, job("start_job", #"{"jobId":19,"user":"u","cluster":"fritz","numNodes":1,"resources":[],"startTime":\#(now - 60)}"#), dl("sanity_check")),
            Case("numNodes disagrees", s, start(20, #","numNodes":2"#), dl("sanity_check")),
            Case("numNodes beyond int32", s, start(21, #","numNodes":1099511627776"#), dl("out_of_range")),
            Case("user empty", s, start(22, #","user":"""#), dl("sanity_check")),
            Case("user with a NUL", s, start(37, #","user":"ro\u0000ot""#), dl("invalid_characters")),
            Case("user with a lone surrogate", s, start(38, #","user":"\ud800x""#), dl("invalid_characters")),
            Case("cluster with a newline", s, job("stop_job", #"{"jobId":39,"cluster":"fri\u000atz","stopTime":\#(now - 60)}"#), dl("invalid_characters")),
            Case("host in no subcluster", s, start(23, host: "x9999"), dl("no_subcluster")),
            Case("unknown subCluster", s, start(24, #","subCluster":"nope""#), dl("no_subcluster")),
            Case("shared unknown", s, start(25, #","shared":"sometimes""#), dl("invalid_value")),
            Case("exclusive 7", s, start(26, #","exclusive":7"#), dl("invalid_value")),
            Case("monitoringStatus 9", s, start(27, #","monitoringStatus":9"#), dl("out_of_range")),
            Case("metaData not strings", s, start(28, #","metaData":{"a":1}"#), dl("wrong_type")),
            Case("tag without a name", s, start(29, #","tags":[{"type":"app"}]"#), dl("missing_field")),
            Case("hwthreads not integers", s, job("start_job", #"{"jobId":30,"user":"u","cluster":"fritz","numNodes":1,"resources":[{"hostname":"f0101","hwthreads":["a"]}],"startTime":\#(now - 60)}"#), dl("wrong_type")),
            Case("stopTime missing", s, job("stop_job", #"{"jobId":31,"cluster":"fritz"}"#), dl("missing_field")),
            Case("stopTime int64 max", s, stop(32, stopTime: Int(Int64.max)), dl("out_of_range")),
            Case("stopTime a string", s, job("stop_job", #"{"jobId":33,"stopTime":"soon"}"#), dl("wrong_type")),
            Case("jobState unknown", s, stop(34, #","jobState":"exploded""#), dl("invalid_value")),
            Case("state contradicts jobState", s, stop(35, #","jobState":"failed","state":"completed""#), dl("invalid_value")),
            Case("stop a day ahead", s, stop(36, stopTime: now + 3 * 86_400), dl("in_the_future")),
            Case("stop before its start", s, stop(4000, stopTime: now - 7200), dl("stop_before_start")),
            Case("stop of an ended job, another time (issue 22 #10)", s, stop(4001, stopTime: now - 30), dl("conflict")),
            Case("stop 400 days after its start", s, stop(4002, stopTime: now - 60), dl("invalid_value")),
            Case("start again, different payload", s, start(4000, #","project":"other""#), dl("conflict")),
            Case("invalid UTF-8", s, Array("job,function=start_job event=\"".utf8) + [0xff, 0xfe] + Array("\"".utf8), dl("syntax")),
            Case("600 kB of quotes", s, "job,function=start_job event=" + String(repeating: "\"", count: 600_000), dl("syntax")),
            Case("a NUL byte", s, Array("job,function=start_job event=\"{}\"".utf8) + [0] + Array(" 1".utf8), dl("syntax")),
        ]
    }()

    static let nodeCases: [Case] = {
        let s = "cc.node.state"
        func dl(_ code: String) -> Expect { .letter("nodes", code: code) }
        return [
            Case("empty", s, "", dl("empty_message")),
            Case("not nodestate", s, "cpu_load value=1", dl("not_an_event")),
            Case("event not JSON", s, nodes("{"), dl("invalid_json")),
            Case("event an array", s, nodes("[]"), dl("wrong_type")),
            Case("unknown cluster", s, nodes(#"{"cluster":"emmy","nodes":[{"hostname":"e0101","states":["IDLE"]}]}"#), dl("unknown_cluster")),
            Case("unknown top-level key", s, nodes(#"{"cluster":"fritz","nodez":[]}"#), dl("unknown_key")),
            Case("unknown node key", s, nodes(#"{"cluster":"fritz","nodes":[{"hostname":"f0102","states":["IDLE"],"cpuAllocated":1}]}"#), dl("unknown_key")),
            Case("host in no subcluster", s, nodes(#"{"cluster":"fritz","nodes":[{"hostname":"x9999","states":["IDLE"]}]}"#), dl("unknown_host")),
            Case("negative count", s, nodes(#"{"cluster":"fritz","nodes":[{"hostname":"f0102","states":["IDLE"],"cpusAllocated":-1}]}"#), dl("invalid_value")),
            Case("count beyond int64", s, nodes(#"{"cluster":"fritz","nodes":[{"hostname":"f0102","states":["IDLE"],"memoryAllocated":99999999999999999999}]}"#), dl("wrong_type")),
            Case("states not strings", s, nodes(#"{"cluster":"fritz","nodes":[{"hostname":"f0102","states":[1]}]}"#), dl("wrong_type")),
            Case("syntax error", s, "nodestate event=", dl("syntax")),
            Case("hostname with a NUL", s, nodes(#"{"cluster":"fritz","nodes":[{"hostname":"f0102\u0000","states":["IDLE"]}]}"#), dl("invalid_characters")),
        ]
    }()

    static let metricCases: [Case] = {
        func dl(_ code: String) -> Expect { .letter("metrics", code: code) }
        return [
            Case("empty", "cc.metrics.fritz", "", dl("empty_message")),
            Case("syntax error", "cc.metrics.fritz", "cpu_load,hostname=f0101 value=", dl("syntax")),
            Case("no hostname", "cc.metrics.fritz", "cpu_load,cluster=fritz value=1", dl("missing_tag")),
            Case("string value", "cc.metrics.fritz", #"cpu_load,hostname=f0101,cluster=fritz value="high""#, dl("wrong_type")),
            Case("timestamp overflow", "cc.metrics.fritz", "cpu_load,hostname=f0101,cluster=fritz value=1 99999999999999999999", dl("syntax")),
            Case("a cluster without cluster.json (issue 22 #7)", "cc.metrics.emmy", "cpu_load,cluster=emmy,hostname=e0101 value=1", dl("unknown_cluster")),
            Case("invalid UTF-8", "cc.metrics.fritz", Array("cpu_load,hostname=f0101 value=1".utf8) + [0xff], dl("syntax")),
        ]
    }()

    static let fleetCases: [Case] = {
        func dl(_ code: String) -> Expect { .letter("fleet", code: code) }
        return [
            Case("empty metrics", "fleet.acme.web1.metrics", "", dl("empty_message")),
            Case("metrics syntax", "fleet.acme.web1.metrics", "cpu_percent value=", dl("syntax")),
            Case("metrics string value", "fleet.acme.web1.metrics", #"cpu_percent value="x""#, dl("wrong_type")),
            Case("server name with a dot", "fleet.acme.web1.example.metrics", "cpu_percent value=1", dl("bad_subject")),
            Case("suffix after metrics", "fleet.acme.web1.metrics.cpu", "cpu_percent value=1", dl("bad_subject")),
            Case("suffix after heartbeat", "fleet.acme.web1.heartbeat.now", "{}", dl("bad_subject")),
            Case("heartbeat not JSON", "fleet.acme.web1.heartbeat", "alive!", dl("invalid_json")),
        ]
    }()

    /// Requests: every one gets an error reply (never silence, never a timeout).
    static let requestCases: [Case] = {
        let big = String(repeating: "d", count: 900_000)
        return [
            Case("fleet api without a verb", "fleet.acme.api", "{}", .refused(containing: "fleet.<organization>.api.<verb>")),
            Case("fleet register not JSON", "fleet.acme.api.register", "{", .refused(containing: "")),
            Case("fleet register unknown key", "fleet.acme.api.register", #"{"name":"w","apiUrl":"http://127.0.0.1:1","colour":1}"#, .refused(containing: "colour")),
            Case("fleet register 900 kB description", "fleet.acme.api.register", #"{"name":"w2","apiUrl":"http://127.0.0.1:1","description":"\#(big)"}"#, .refused(containing: "description")),
            Case("fleet register foreign token", "fleet.globex.api.register", #"{"name":"w3","apiUrl":"http://127.0.0.1:1","tokenRef":"env:ACME_TOKEN"}"#, .refused(containing: "")),
            Case("fleet get unknown server", "fleet.acme.api.get", #"{"name":"nobody"}"#, .refused(containing: "")),
            Case("fleet operation on nothing", "fleet.acme.api.operation.start", #"{"action":"restart"}"#, .refused(containing: "")),
            Case("jobs get not JSON", "clusterd.api.jobs.get", "jobId=1", .refused(containing: "")),
            Case("jobs get unknown key", "clusterd.api.jobs.get", #"{"jobID2":1}"#, .refused(containing: "jobID2")),
            Case("jobs list negative limit", "clusterd.api.jobs.list", #"{"limit":-1}"#, .refused(containing: "limit")),
            Case("nodes get without a host", "clusterd.api.nodes.get", #"{"cluster":"fritz"}"#, .refused(containing: "")),
            Case("health get unknown key", "clusterd.api.health.get", #"{"planet":"mars"}"#, .refused(containing: "planet")),
            Case("dlq replay nothing named", "clusterd.api.dlq.replay", "{}", .refused(containing: "")),
            Case("alerts history wrong type", "clusterd.api.alerts.history", #"{"since":"yesterday"}"#, .refused(containing: "since")),
            Case("maintenance create not JSON", "clusterd.admin.maintenance.create", "now", .refused(containing: "")),
            Case("maintenance ends before it starts", "clusterd.admin.maintenance.create",
                 #"{"scope":"node","target":"fritz/f0101","start":\#(now),"end":\#(now - 60),"reason":"x","createdBy":"t"}"#, .refused(containing: "")),
            Case("maintenance unknown verb", "clusterd.admin.maintenance.explode", "{}", .refused(containing: "")),
        ]
    }()

    @Test func everyKindOfBadInputIsAnsweredAndTheRestIsApplied() async throws {
        let (service, config) = try ClusterdService.started(server: server.url, directory: directory.appendingPathComponent("data")) {
            $0.fleet.tokenRefs = ["acme": ["env:ACME_"], "globex": ["env:GLOBEX_"]]
        }
        defer { service.stop() }
        let letters = ServiceBusTests.Collector()
        let sub = try client.subscribe("clusterd.dlq.>") { letters.add($0) }
        try client.flush()
        let js = try JetStream(client)

        // Jobs 4000 (running), 4001 (ended) and 4002 (started 400 days ago) for the stop and conflict cases.
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(4002, startTime: Self.now - 400 * 86_400).utf8)), messageID: "setup-start-4002")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(4000).utf8)), messageID: "setup-start-4000")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(4001).utf8)), messageID: "setup-start-4001")
        _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.stop(4001).utf8)), messageID: "setup-stop-4001")

        var good = 0
        for (i, c) in (Self.jobCases + Self.nodeCases).enumerated() {
            _ = try js.publish(BusMessage(subject: c.subject, data: c.body), messageID: "case-\(i)")
            // A good event after every bad one, on the same stream.
            good += 1
            _ = try js.publish(BusMessage(subject: "cc.job.event", data: Array(Self.start(Int64(5000 + i)).utf8)), messageID: "good-\(i)")
        }
        let streamed = (Self.jobCases + Self.nodeCases).count
        for (k, c) in (Self.metricCases + Self.fleetCases).enumerated() {
            try client.publish(BusMessage(subject: c.subject, headers: ["Nats-Msg-Id": ["case-\(streamed + k)"]], data: c.body))
        }
        try client.flush()
        var failures: [String] = []
        for c in Self.requestCases {
            do {
                let reply = try client.request(BusMessage(subject: c.subject, data: c.body), timeout: .seconds(10))
                let text = String(decoding: reply.data, as: UTF8.self)
                let error = reply.header("Nats-Service-Error") ?? ((try? JSONValue.parse(reply.data))?["ok"] == .bool(false) ? text : nil)
                guard case .refused(let needle) = c.expect else { continue }
                if let error {
                    if !needle.isEmpty && !error.contains(needle) { failures.append("\(c.name): error \"\(error.prefix(200))\" lacks \"\(needle)\"") }
                } else {
                    failures.append("\(c.name): accepted (\(text.prefix(200)))")
                }
            } catch {
                failures.append("\(c.name): no reply (\(error))")
            }
        }

        // Every dead letter arrives, each with its case's code.
        let letterCases = Self.jobCases + Self.nodeCases + Self.metricCases + Self.fleetCases
        let deadline = Date().addingTimeInterval(60)
        var byID: [String: [String]] = [:]
        while Date() < deadline {
            byID = [:]
            for m in letters.messages {
                guard let json = try? JSONValue.parse(m.data), let id = json["messageId"]?.stringValue else { continue }
                byID[id, default: []].append(json["code"]?.stringValue ?? "?")
            }
            if (0..<letterCases.count).allSatisfy({ byID["case-\($0)"] != nil }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        for (i, c) in letterCases.enumerated() {
            guard case .letter(_, let code) = c.expect else { continue }
            let got = byID["case-\(i)"] ?? []
            if !got.contains(code) { failures.append("\(c.subject) \(c.name): expected \(code), got \(got.isEmpty ? "nothing" : got.joined(separator: ","))") }
        }
        #expect(failures.isEmpty, "\(failures.count) of \(letterCases.count + Self.requestCases.count) kinds:\n\(failures.joined(separator: "\n"))")

        // The good events around them all applied; the service is up; nothing waits.
        let db = try Database(path: config.databasePath, readOnly: true)
        func scalar(_ sql: String) -> Int64 { (try? db.prepare(sql).first { $0.int(0) }) ?? -1 }
        let applied = Date().addingTimeInterval(60)
        while scalar("SELECT count(*) FROM job WHERE job_id >= 5000") < good && Date() < applied { try await Task.sleep(for: .milliseconds(100)) }
        #expect(scalar("SELECT count(*) FROM job WHERE job_id >= 5000") == Int64(good))
        let drained = Date().addingTimeInterval(30)
        while scalar("SELECT count(*) FROM outbox") != 0 && Date() < drained { try await Task.sleep(for: .milliseconds(100)) }
        #expect(scalar("SELECT count(*) FROM outbox") == 0)
        #expect(scalar("SELECT count(*) FROM outbox_parked") == 0)
        #expect(letterCases.count + Self.requestCases.count >= 60)
        _ = sub
    }
}
