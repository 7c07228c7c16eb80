@testable import Jobs
import Model
import Testing

/// The direct reader of job events against the strict decoder it stands in for: whatever the
/// reader accepts, the decoder decodes to the same value; what it declines, the decoder
/// decides (and words). Events are built from every key's plain and odd values.
@Suite(.timeLimit(.minutes(1))) struct JobEventReaderTests {
    /// Values per start key: plain ones first (the reader takes them), then odd ones.
    static let startValues: [(key: String, values: [String])] = [
        ("jobId", ["4711", "0", "9223372036854775807", "-1", "1.5", "\"7\"", "null", "12345678901234567890"]),
        ("cluster", ["\"fritz\"", "\"\"", "\"fr\\u0069tz\"", "\"fr\\u0000itz\"", "\"frïtz\"", "7", "null"]),
        ("subCluster", ["\"main\"", "\"\"", "null", "[]"]),
        ("partition", ["\"singlenode\"", "\"a\\tb\"", "null"]),
        ("project", ["\"p1\"", "\"\"", "\"\\ud800\"", "null"]),
        ("user", ["\"alice\"", "\"\"", "1", "null"]),
        ("shared", ["\"none\"", "\"single_user\"", "\"multi_user\"", "\"exclusive\"", "null", "0"]),
        ("exclusive", ["1", "0", "5"]),
        ("jobState", ["\"running\"", "\"whatever\"", "7", "{\"a\":[1,2]}", "null"]),
        ("resources", ["[{\"hostname\":\"f0101\",\"hwthreads\":[0,1,2,3]}]", "[{\"hostname\":\"f0101\"},{\"hostname\":\"f0102\",\"accelerators\":[\"0000:01:00.0\"],\"configuration\":\"c\"}]",
                       "[]", "null", "[{\"hostname\":\"f0101\",\"hwthreads\":null}]", "[{\"hostname\":\"f0101\",\"hwthreads\":[1,null]}]",
                       "[{\"Hostname\":\"f0101\"}]", "[{\"hostname\":\"f0101\",\"hostname\":\"f0102\"}]", "[7]", "[{\"hostname\":\"f0101\",\"gpu\":1}]",
                       "[{\"hostname\":\"f0101\",\"hwthreads\":[1.0]}]", "{}"]),
        ("numNodes", ["1", "2", "0", "2147483648", "-1", "null"]),
        ("numHwthreads", ["72", "0", "null", "\"72\""]),
        ("numAcc", ["0", "4", "-2147483649"]),
        ("smt", ["1", "2", "null"]),
        ("startTime", ["1700000000", "0", "1700000000000", "946684799", "4102444800", "null", "1.7e9"]),
        ("submitTime", ["1699999000", "0", "5", "null"]),
        ("walltime", ["86400", "0", "-1", "316224001", "null"]),
        ("duration", ["0", "3600", "2147483648", "null"]),
        ("arrayJobId", ["0", "4710", "-5", "null"]),
        ("monitoringStatus", ["1", "0", "3", "4", "null"]),
        ("metaData", ["{\"jobName\":\"relax\",\"jobScript\":\"#!/bin/bash\\n\\u003e out\"}", "{}", "{\"a\":null}", "{\"a\":\"1\",\"a\":\"2\"}", "{\"a\":1}", "null", "[]"]),
        ("tags", ["[]", "null", "[{\"type\":\"app\",\"name\":\"vasp\"}]", "{}"]),
        ("energy", ["0", "12.5", "-1e3", "null", "\"1\""]),
        ("footprint", ["{\"flops_any\":1.5,\"mem_bw\":2}", "{}", "{\"x\":null}", "{\"x\":\"1\"}", "null"]),
        ("requestedMemory", ["0", "1024", "null", "1.5"]),
        ("energyFootprint", ["{\"cpu\":3}", "null", "[]"]),
        ("statistics", ["{}", "{\"cpu_load\":{\"avg\":1}}", "null", "7"]),
        ("concurrentJobs", ["{\"currentJobs\":[]}", "null"]),
        ("id", ["5", "null", "\"5\""]),
        ("bogus", ["1"]),
    ]

    static let stopValues: [(key: String, values: [String])] = [
        ("jobId", ["4711", "0", "-3", "null", "\"4711\""]),
        ("cluster", ["\"fritz\"", "\"\"", "null", "\"a\\u007fb\"", "1"]),
        ("startTime", ["1700000000", "0", "null", "17", "1e9"]),
        ("stopTime", ["1700003600", "0", "null", "4102444801", "\"1700003600\""]),
        ("jobState", ["\"completed\"", "\"failed\"", "\"\"", "\"exploded\"", "null", "3"]),
        ("state", ["\"timeout\"", "\"\"", "\"failed\"", "null"]),
        ("exitCode", ["0"]),
    ]

    /// A deterministic generator (the suite's cases are the same every run).
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func chance(_ percent: UInt64) -> Bool { next() % 100 < percent }
    }

    /// An event of `values`: mostly plain values of the usual keys, sometimes odd ones, a key
    /// left out, given twice, spelled in another case, padded with spaces or followed by text.
    static func event(_ values: [(key: String, values: [String])], usual: Set<String>, _ g: inout Generator) -> String {
        var members: [String] = []
        for (key, options) in values {
            guard usual.contains(key) ? !g.chance(8) : g.chance(12) else { continue }
            let value = g.chance(97) ? options[0] : options[Int(g.next() % UInt64(options.count))]
            let spelled = g.chance(1) ? key.lowercased() : key
            members.append("\"\(spelled)\":\(g.chance(5) ? " \(value) " : value)")
            if g.chance(1) { members.append("\"\(key)\":\(options[Int(g.next() % UInt64(options.count))])") }
        }
        if g.chance(30) { members.shuffle(using: &g) }
        var text = "{" + members.joined(separator: ",") + "}"
        if g.chance(3) { text = " \n" + text + " " }
        if g.chance(2) { text += g.chance(50) ? "x" : "{}" }
        return text
    }

    func read<T>(_ text: String, _ reader: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
        Array(text.utf8).withUnsafeBufferPointer(reader)
    }

    /// `count` events of `values` through the reader and the strict decoder: equal wherever
    /// the reader took one, and both ways taken (the usual events read directly, odd ones
    /// declined).
    func compare<T: Equatable>(_ values: [(key: String, values: [String])], usual: Set<String>, seed: UInt64, count: Int,
                               reader: (UnsafeBufferPointer<UInt8>) -> T?, strict: (JSONValue) throws -> T) {
        var g = Generator(state: seed)
        var read = 0, declined = 0
        for _ in 0..<count {
            let text = Self.event(values, usual: usual, &g)
            let full = try? strict(JSONValue.parse(text))
            if let fast = self.read(text, reader) {
                read += 1
                #expect(fast == full, "\(text)")
            } else {
                declined += 1
            }
        }
        #expect(read > 500 && declined > 500, "read \(read), declined \(declined)")
    }

    @Test func whatTheReaderAcceptsTheStrictDecoderDecodesAlike() {
        compare(Self.startValues, usual: ["jobId", "cluster", "subCluster", "partition", "project", "user", "shared", "resources", "numNodes",
                                          "numHwthreads", "startTime", "walltime", "monitoringStatus", "metaData"],
                seed: 42, count: 4000, reader: JobEventReader.start, strict: JobStart.init(json:))
    }

    @Test func whatTheReaderAcceptsOfStopsTheStrictDecoderDecodesAlike() {
        compare(Self.stopValues, usual: ["jobId", "cluster", "stopTime", "jobState"], seed: 7, count: 3000,
                reader: JobEventReader.stop, strict: JobStop.init(json:))
    }

    @Test func aCcSlurmAdapterStartIsReadDirectly() throws {
        let text = ##"{"jobId":123,"user":"alice","project":"p1","cluster":"fritz","subCluster":"main","partition":"singlenode","arrayJobId":0,"numNodes":1,"numHwthreads":72,"numAcc":0,"shared":"none","monitoringStatus":1,"smt":1,"jobState":"running","startTime":1700000000,"duration":0,"walltime":86400,"resources":[{"hostname":"f0101","hwthreads":[0,1,2,3]}],"metaData":{"jobName":"relax","jobScript":"#!/bin/bash -l\n#SBATCH --ntasks=72\nsrun ./vasp_std \u003e out.log\n","slurmInfo":"JobId=123"},"energy":0}"##
        let fast = try #require(read(text, JobEventReader.start))
        #expect(fast == (try JobStart(json: JSONValue.parse(text))))
        #expect(fast.metaData?["jobScript"] == "#!/bin/bash -l\n#SBATCH --ntasks=72\nsrun ./vasp_std > out.log\n")
    }
}

/// The canonical start text, spelled out: stored starts are compared with it on every
/// redelivery, so any change to its spelling would turn redeliveries into conflicts.
@Suite(.timeLimit(.minutes(1))) struct JobStartCanonicalTests {
    @Test func theCanonicalStartIsSpelledAsEver() {
        var start = JobStart(jobId: 4711, cluster: "fritz")
        start.user = "al\"ice"
        start.project = "p1"
        start.partition = "main"
        start.arrayJobId = 4700
        start.numNodes = 2
        start.numHwthreads = 4
        start.numAcc = 1
        start.shared = .singleUser
        start.startTime = 1_700_000_000
        start.submitTime = 1_699_999_000
        start.walltime = 3600
        start.requestedMemory = 1024
        start.resources = [JobResource(hostname: "f0101", hwthreads: [0, 1]), JobResource(hostname: "f0102", accelerators: ["0000:01:00.0"], configuration: "c")]
        start.metaData = ["jobScript": "#!/bin/sh\n", "jobName": "relax"]
        start.tags = [JobTag(type: "app", name: "vasp")]
        start.energy = 12.5
        start.footprint = ["mem_bw": 2, "flops_any": 1.25]
        start.energyFootprint = ["cpu": 3]
        #expect(start.jsonText() == ##"{"jobId":4711,"user":"al\"ice","project":"p1","cluster":"fritz","subCluster":"","partition":"main","arrayJobId":4700,"numNodes":2,"numHwthreads":4,"numAcc":1,"shared":"single_user","monitoringStatus":1,"smt":1,"jobState":"running","startTime":1700000000,"duration":0,"walltime":3600,"submitTime":1699999000,"requestedMemory":1024,"resources":[{"hostname":"f0101","hwthreads":[0,1]},{"hostname":"f0102","accelerators":["0000:01:00.0"],"configuration":"c"}],"metaData":{"jobName":"relax","jobScript":"#!/bin/sh\n"},"tags":[{"type":"app","name":"vasp","scope":"global"}],"energy":12.5,"footprint":{"flops_any":1.25,"mem_bw":2},"energyFootprint":{"cpu":3}}"##)
        #expect(start.jsonText(state: .failed, duration: 60, subCluster: "main").contains(#""subCluster":"main","#))
    }
}
