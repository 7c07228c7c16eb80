import Bus
import BusTestSupport
import Health
import Intake
import MetricBuffers
import Model
import Testing

/// The metric path's fast decoding (series by their bytes, samples by number) gives exactly
/// what the full decoding gives — the same samples, the same dead letters with the same
/// positions — and the health engine fed by number (values of watched series, hosts of the
/// others) raises the same transitions as fed every sample by name.
@Suite(.timeLimit(.minutes(1))) struct MetricDecoderTests {
    static let now: Int64 = 1_795_000_000

    /// Random messages of good and bad lines over a few series, with the tags in varying order.
    static func messages(seed: UInt64) -> [[UInt8]] {
        var rng = SplitMix64(state: seed)
        let hosts = ["f0101", "f0102", "f0103"], metrics = ["cpu_load", "nv_temp", "mem_used"]
        var out: [[UInt8]] = []
        for _ in 0..<300 {
            var body = ""
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                var host = hosts.randomElement(using: &rng)!, metric = metrics.randomElement(using: &rng)!
                // f0104 sends only mem_used, which no check watches: it is alive by its host alone.
                if Int.random(in: 0..<5, using: &rng) == 0 { (host, metric) = ("f0104", "mem_used") }
                var tags = ["cluster=fritz", "hostname=\(host)", metric == "nv_temp" ? "type=accelerator" : "type=node"]
                if metric == "nv_temp" { tags.append("type-id=\(Int.random(in: 0...1, using: &rng))") }
                if Int.random(in: 0..<4, using: &rng) == 0 { tags.shuffle(using: &rng) }
                var value = "value=\(Double(Int.random(in: 0...120, using: &rng)))"
                var time = " \(now - Int64.random(in: 0...600, using: &rng))"
                switch Int.random(in: 0..<26, using: &rng) {
                case 0: value = "value=true"                                  // wrong type
                case 1: value = "value=3,extra=1"                             // unknown field
                case 2: time = " \(now + 3600)"                               // from the future
                case 3: tags.removeAll { $0.hasPrefix("hostname") }           // missing tag
                case 4: tags = tags.map { $0 == "cluster=fritz" ? "cluster=emmy" : $0 }  // unknown cluster
                case 5: value = "value=7i"                                    // an integer is a number
                case 6: time = ""                                             // receive time
                case 7: value = "value=="                                     // syntax
                case 8: time = " \((now - 5) * 1_000_000_000)"                // nanoseconds
                // Number forms the fast scanner reads or leaves to the decoder.
                case 9: value = "value=\(Double.random(in: -1e6...1e6, using: &rng))"
                case 10: value = "value=-\(Int.random(in: 0...99, using: &rng)).\(Int.random(in: 0...99, using: &rng))"
                case 11: value = "value=\(Int.random(in: 0...9, using: &rng))u"
                case 12: value = "value=1.5e3"
                case 13: value = "value=0\(Int.random(in: 1...9, using: &rng))"       // leading zero
                case 14: value = "value=12345678901234567890.5"                 // many digits
                case 15: value = "value=1."
                case 16: value = "value=-0i"
                case 17: time = " -\(now)"                                    // negative time
                case 18: value = "value=\"hot\nline\""                          // a string spanning lines
                case 19: tags[0] = "cluster=fr\\ itz"                          // an escape
                case 20: body += "# a comment\n\n"
                case 21: time += "\r"                                          // CRLF
                case 22: value = "value=5,value=6"
                case 23: time += " "                                           // trailing space
                default: break
                }
                body += "\(metric),\(tags.joined(separator: ",")) \(value)\(time)\n"
            }
            if Bool.random(using: &rng), body.hasSuffix("\n") { body.removeLast() }  // no LF after the last line
            out.append(Array(body.utf8))
        }
        return out
    }

    /// A collector sends a host's series in the same order every interval, which the index
    /// guesses from; a series of the same length in a guessed one's place, another order and
    /// a new series in between are each still read as their own series.
    @Test func seriesInARepeatedOrderAndOutOfItAreEachTheirOwn() throws {
        let store = MetricStore(resolution: 60, retention: 3600)
        let decoder = MetricDecoder(defaultCluster: "", indexLimit: 1000) { s in
            store.admit(s.seriesKey, knownHost: true).mapError { .init(code: "x", reason: $0.reason) }
        }
        var keys: [Int32: SeriesKey] = [:]
        func decode(_ hosts: [String]) -> [String] {
            let body = hosts.map { "cpu_load,cluster=fritz,hostname=\($0),type=node value=1 \(Self.now)\n" }.joined()
            let out = decoder.decode(BusMessage(subject: "cc.metrics.fritz", data: Array(body.utf8)), now: Self.now)
            for (number, sample) in out.new { keys[number] = sample.seriesKey }
            #expect(out.letters.isEmpty && out.samples.count == hosts.count)
            return out.samples.map { keys[$0.series]?.host ?? "?" }
        }
        let order = ["f0101", "f0102", "f0103", "f0104"]
        #expect(decode(order) == order)
        #expect(decode(order) == order)                                  // every line guessed
        #expect(decode(["f0101", "f0109", "f0103", "f0104"]) == ["f0101", "f0109", "f0103", "f0104"])  // same length, other bytes
        #expect(decode(order.reversed()) == order.reversed())
        #expect(decode(["f0101", "f0105", "f0102", "f0102", "f0104"]) == ["f0101", "f0105", "f0102", "f0102", "f0104"])
        #expect(decode(order) == order)
        #expect(Set(keys.values.map(\.host)).count == 6)
    }

    /// With a small index (emptied and refilled: most lines decoded fully) and a large one
    /// (most lines read by the fast scanner).
    @Test(arguments: [1, 2, 3] as [UInt64], [4, 1000]) func fastDecodingEqualsFullDecoding(seed: UInt64, indexLimit: Int) throws {
        let library = try CheckLibrary(yaml: """
            checks:
              - id: gpu_hot
                scope: component
                source:
                  metric: {name: nv_temp, match: {type: accelerator}, component_tag: type-id}
                rules:
                  - {op: ">=", value: 80, severity: WARN}
                  - {op: ">=", value: 100, severity: CRIT}
                summary: "GPU {component} of {host} at {value}"
              - id: load
                scope: node
                source:
                  metric: {name: cpu_load, match: {type: node}}
                rules:
                  - {op: ">", value: 60, severity: WARN}
                summary: "load {value} on {host}"
              - id: quiet
                scope: node
                source: {silence: 2m}
                severity: CRIT
                summary: "{host} is quiet"
            """, file: "test.yaml")
        let admission: (MetricSample) -> MetricDecoder.Refusal? = { s in
            s.cluster == "fritz" ? nil : .init(code: "unknown_cluster", reason: "cluster \"\(s.cluster)\" is unknown")
        }
        let store = MetricStore(resolution: 60, retention: 3600)
        let decoder = MetricDecoder(defaultCluster: "", indexLimit: indexLimit, watches: { library.metricNames.contains($0.name) }) { s in
            if let refusal = admission(s) { return .failure(refusal) }
            return store.admit(s.seriesKey, knownHost: true).mapError { .init(code: "series_limit", reason: $0.reason) }
        }
        var keys: [Int32: SeriesKey] = [:], raised = 0
        let byName = HealthEngine(library: library, topology: Topology(), now: Self.now - 1000)
        let byNumber = HealthEngine(library: library, topology: Topology(), now: Self.now - 1000)
        for (i, body) in Self.messages(seed: seed).enumerated() {
            let message = BusMessage(subject: "cc.metrics.fritz", data: body)
            let now = Self.now + Int64(i)
            let (samples, letters) = MetricIntake.decode(message, defaultCluster: "", now: now) { s in admission(s).map { ($0.code, $0.reason) } }
            let out = decoder.decode(message, now: now)
            #expect(out.letters == letters, "message \(i)")
            for (number, sample) in out.new {
                keys[number] = sample.seriesKey
                byNumber.register(series: number, as: sample)
            }
            #expect(out.samples.map { keys[$0.series] } == samples.map(\.seriesKey), "message \(i)")
            #expect(out.samples.map(\.time) == samples.map(\.time) && out.samples.map(\.value) == samples.map(\.value), "message \(i)")
            for s in samples { byName.ingest(s, now: now) }
            #expect(out.watched.count + out.samples.filter { keys[$0.series]?.metric == "mem_used" }.count == out.samples.count)
            byNumber.ingest(series: out.watched, reported: out.reported, now: now)
            byName.tick(now: now)
            byNumber.tick(now: now)
            let transitions = byName.takeTransitions()
            #expect(transitions == byNumber.takeTransitions(), "message \(i)")
            raised += transitions.count
        }
        #expect(!keys.isEmpty && raised > 0, "\(raised) transitions")
    }
}
