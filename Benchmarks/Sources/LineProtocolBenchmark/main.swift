// Line-protocol decoder throughput: single core, whole buffer in memory, full decode
// (measurement, every tag, typed fields, timestamp), best of several runs.
// Run with scripts/bench-lp (release build, malloc interposer preloaded for allocation counts).
#if canImport(Glibc)
import Glibc
#endif
@_spi(Benchmark) import LineProtocol
import MallocInterposerSwift

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The unescaped length of a token, as a consumer reading its text sees it (lp-v2 unescapes
/// every token it returns, so the Go comparison checksums the same numbers).
@inline(__always)
func textLength(_ token: TokenView) -> Int {
    token.isEscaped ? token.withUnescapedBytes { $0.count } : token.count
}

/// Decodes the buffer once, touching every part of every point; returns a checksum so the
/// optimizer cannot drop work, and the number of points and errors. The checksum is the one
/// `Benchmarks/GoLineProtocol` computes, so equal checksums mean equal decoded values.
@inline(never)
func decodeOnce(_ decoder: LineDecoder, _ buffer: UnsafeRawBufferPointer) -> (checksum: UInt64, points: Int, errors: Int) {
    var checksum: UInt64 = 0
    var points = 0
    var errors = 0
    decoder.forEachLine(in: buffer) { entry in
        switch entry {
        case .point(let p):
            points += 1
            checksum &+= UInt64(textLength(p.measurement))
            for tag in p.tags { checksum &+= UInt64(textLength(tag.key) &+ textLength(tag.value)) }
            for field in p.fields {
                switch field.value {
                case .float(let v): checksum &+= v.bitPattern
                case .int(let v): checksum &+= UInt64(bitPattern: v)
                case .uint(let v): checksum &+= v
                case .bool(let v): checksum &+= v ? 1 : 0
                case .string(let s): checksum &+= UInt64(textLength(s))
                }
            }
            checksum &+= UInt64(bitPattern: p.timestamp ?? 0)
        case .error:
            errors += 1
        }
    }
    return (checksum, points, errors)
}

/// The calibration loop: counts newlines one byte at a time. Its speed says how fast this
/// core is right now, so figures from different (or noisy, shared) machines compare.
@inline(never)
func countNewlines(_ buffer: UnsafeRawBufferPointer) -> Int {
    let p = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
    var n = 0
    for i in 0..<buffer.count where p[i] == 0x0A { n += 1 }
    return n
}

struct Workload {
    var name: String
    var bytes: [UInt8]
    var lines: Int
    var decoder: LineDecoder
    var best = Double.infinity
    var result = (checksum: UInt64(0), points: 0, errors: 0)
}

extension String {
    init(format2 v: Double) { self = String(Double(Int((v * 100).rounded())) / 100) }
    init(format4 v: Double) { self = String(Double(Int((v * 10000).rounded())) / 10000) }
}

// `--dump DIR` writes both inputs to DIR (metric-batch.lp, short-lines.lp) and exits, so another
// decoder can be timed on exactly the same bytes.
if let i = CommandLine.arguments.firstIndex(of: "--dump"), i + 1 < CommandLine.arguments.count {
    let dir = CommandLine.arguments[i + 1]
    for (name, bytes) in [("metric-batch.lp", Workloads.metricBatch(targetBytes: 26_000_000).bytes),
                          ("short-lines.lp", Workloads.shortLines(count: 873_814).bytes)] {
        guard let file = fopen("\(dir)/\(name)", "wb") else { fatalError("cannot write \(dir)/\(name)") }
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    exit(0)
}
MallocInterposerSwift.initialize()
let rounds = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 30
let metrics = Workloads.metricBatch(targetBytes: 26_000_000)
let short = Workloads.shortLines(count: 873_814)
// An optional second argument keeps only the workloads whose name contains it
// (`metric`, `short`), e.g. for counting instructions under callgrind.
let only = CommandLine.arguments.dropFirst(2).first
var workloads = [
    Workload(name: "ClusterCockpit metric batch (node/socket/hwthread/accelerator lines + job events), precision s",
             bytes: metrics.bytes, lines: metrics.lines, decoder: LineDecoder(precision: .seconds)),
    Workload(name: "short lines (x,t=y y=1 1602841605822791506), precision ns",
             bytes: short.bytes, lines: short.lines, decoder: LineDecoder(precision: .nanoseconds)),
]
if let only { workloads.removeAll { !$0.name.contains(only) } }
var calibration = Double.infinity
var floor = Double.infinity
// Rounds interleave the workloads and the calibration loop, so a slow phase of a shared
// machine hits all of them alike; the best time of each is reported.
for _ in 0..<rounds {
    for i in workloads.indices {
        workloads[i].bytes.withUnsafeBytes { buffer in
            let t0 = now()
            workloads[i].result = decodeOnce(workloads[i].decoder, buffer)
            workloads[i].best = min(workloads[i].best, now() - t0)
        }
    }
    metrics.bytes.withUnsafeBytes { buffer in
        let t0 = now()
        if countNewlines(buffer) == 0 { print("no lines?") }
        calibration = min(calibration, now() - t0)
        let t1 = now()
        if tokenBoundaryWalk(buffer) == 0 { print("no tokens?") }
        floor = min(floor, now() - t1)
    }
}
let calibrationMBs = Double(metrics.bytes.count) / calibration / 1e6
print("calibration: a plain byte loop runs at \(String(format2: calibrationMBs)) MB/s on this core (best of \(rounds))")
print("""
    floor: visiting every token end of the metric batch with the decoder's SIMD masks, and nothing else, \
    runs at \(String(format2: Double(metrics.bytes.count) / floor / 1e6)) MB/s, \
    \(String(format2: floor * 1e9 / Double(metrics.lines))) ns/line
    """)
for w in workloads {
    MallocInterposerSwift.reset()
    MallocInterposerSwift.hook()
    let r = w.bytes.withUnsafeBytes { decodeOnce(w.decoder, $0) }
    MallocInterposerSwift.unhook()
    let allocations = MallocInterposerSwift.getStatistics().mallocCount
    let mb = Double(w.bytes.count) / 1e6
    let mbs = mb / w.best
    print("""
        \(w.name)
          input            \(String(format2: mb)) MB, \(w.lines) lines, \(String(format2: Double(w.bytes.count) / Double(w.lines))) B/line
          decoded          \(r.points) points, \(r.errors) errors (checksum \(r.checksum))
          best of \(rounds)       \(String(format2: w.best * 1000)) ms
          throughput       \(String(format2: mbs)) MB/s, \(String(format2: Double(w.lines) / w.best / 1e6)) M lines/s, \(String(format2: w.best * 1e9 / Double(w.lines))) ns/line
          vs byte loop     \(String(format2: mbs / calibrationMBs * 100)) % of the calibration loop's MB/s
          allocations      \(allocations) in one pass = \(String(format4: Double(allocations) / Double(w.lines))) per line
        """)
}
