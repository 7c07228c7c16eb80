#if canImport(Glibc)
import Glibc
#endif
import BusTestSupport
import LineProtocol
import Testing

/// Bytes that matter to the grammar, drawn often; any other byte is drawn sometimes.
private let interesting: [UInt8] = Array(" ,=\"\\\n\r\t#-.0123456789eEiutTfFabc".utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xA9, 0xED, 0xF0, 0xFF]
private let seedLines: [[UInt8]] = [
    "cpu_load,cluster=fritz,hostname=f0726,type=node value=35.2 1718001260\n",
    #"job,function=start_job event="{\"jobId\":1,\"user\":\"u\"}" 1718004000000000000"# + "\n",
    "m,a\\ b=c\\,d f\\=1=1i,s=\"x\\\"y\\\\\",b=TRUE,u=18446744073709551615u -9223372036854775808\r\n",
    "# comment\n  \nx,t=y y=1 1602841605822791506\n",
    "m v=-.5,w=1.,x=-0i,y=7u,z=f,s=\"a,b=c d\" -1  \r\n",
    "m,t=a v=0.0000000000000000000001,w=123456789012345678901,x=9223372036854775808i 5\n",
    "nv_util,cluster=alex,hostname=a0312,type=accelerator,type-id=00000000:4F:00.0 value=12 1718001260",
].map { Array($0.utf8) }

/// One random buffer: pure noise, grammar-heavy noise, or a valid batch with mutations.
func randomBuffer(_ rng: inout SplitMix64) -> [UInt8] {
    let length = Int(rng.next() % 200)
    switch rng.next() % 3 {
    case 0:
        return (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    case 1:
        return (0..<length).map { _ in
            rng.next() % 8 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : interesting[Int(rng.next() % UInt64(interesting.count))]
        }
    default:
        var bytes = (0..<(1 + rng.next() % 4)).flatMap { _ in seedLines[Int(rng.next() % UInt64(seedLines.count))] }
        for _ in 0..<(1 + rng.next() % 4) where !bytes.isEmpty {
            let i = Int(rng.next() % UInt64(bytes.count))
            switch rng.next() % 3 {
            case 0: bytes[i] = interesting[Int(rng.next() % UInt64(interesting.count))]
            case 1: bytes.remove(at: i)
            default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: i)
            }
        }
        return bytes
    }
}

/// Decodes `bytes` and checks the decoder's invariants; returns a description of the first
/// violation, or nil.
func checkInvariants(_ bytes: [UInt8]) -> String? {
    let lineCount = bytes.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    var problem: String?
    var previousLine = 0
    LineDecoder().forEachLine(in: bytes) { entry in
        guard problem == nil else { return }
        switch entry {
        case .error(let e, _):
            if e.line < 1 || e.line > lineCount || e.column < 1 { problem = "bad position \(e)" }
            if e.line < previousLine { problem = "lines out of order at \(e)" }
            previousLine = e.line
        case .point(let view):
            if view.line < previousLine { problem = "lines out of order at line \(view.line)" }
            previousLine = view.line
            // Whatever decodes must encode and decode to the same point.
            let p = view.makePoint()
            guard let encoded = try? LineEncoder().encode(p) else { problem = "decoded point not encodable: \(p)"; return }
            let again = LineDecoder().decode(encoded)
            if again.count != 1 || (try? again[0].get()) != p { problem = "re-encoding changed \(p) into \(again)" }
        }
    }
    if problem == nil {
        let fast = describeEntries(bytes, fastPath: true)
        let full = describeEntries(bytes, fastPath: false)
        if fast != full { problem = "the fast path decoded \(fast), the full parser \(full)" }
    }
    return problem
}

/// Every entry of a decoded buffer, described exactly (line, raw text, point or error; -0.0
/// and 0.0 differ), to compare the fast path with the full parser.
func describeEntries(_ bytes: [UInt8], fastPath: Bool) -> [String] {
    var out: [String] = []
    LineDecoder(precision: .nanoseconds, fastPath: fastPath).forEachLine(in: bytes) { entry in
        switch entry {
        case .point(let view):
            let p = view.makePoint()
            let fields = p.fields.map { field -> String in
                if case .float(let v) = field.value { return "\(field.key)=float:\(v.bitPattern)" }
                return "\(field.key)=\(field.value)"
            }
            out.append("\(view.line) \(Array(view.raw)) \(p.measurement) \(p.tags) \(fields) \(String(describing: p.timestamp))")
        case .error(let error, let raw):
            out.append("\(error) \(Array(raw))")
        }
    }
    return out
}

@Suite("Random input", .timeLimit(.minutes(20)))
struct RandomInputTests {
    @Test("random and mutated bytes never crash, errors carry positions, points re-encode exactly")
    func randomBytes() {
        var rng = SplitMix64(state: 0xC1D5_7E2D)
        for iteration in 0..<20_000 {
            let bytes = randomBuffer(&rng)
            if let problem = checkInvariants(bytes) {
                Issue.record("iteration \(iteration), input \(bytes): \(problem)")
                return
            }
        }
    }

    /// The long fuzz run: `LP_FUZZ_SECONDS=600 swift test -c release --filter fuzz`.
    @Test("fuzz for LP_FUZZ_SECONDS seconds (skipped unless set)",
          .enabled(if: getenv("LP_FUZZ_SECONDS") != nil))
    func fuzz() {
        let seconds = Double(String(cString: getenv("LP_FUZZ_SECONDS"))) ?? 60
        var seed = UInt64(time(nil))
        var rng = SplitMix64(state: seed)
        let deadline = clock_seconds() + seconds
        var runs = 0
        while clock_seconds() < deadline {
            for _ in 0..<1000 {
                let bytes = randomBuffer(&rng)
                if let problem = checkInvariants(bytes) {
                    Issue.record("seed \(seed), run \(runs), input \(bytes): \(problem)")
                    return
                }
                runs += 1
            }
            seed = rng.state
        }
        print("fuzz: \(runs) inputs in \(seconds) s, no failure")
    }
}

private func clock_seconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
