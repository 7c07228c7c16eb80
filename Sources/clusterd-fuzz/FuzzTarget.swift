import Foundation
import Jobs
import LineProtocol
import Nodes

/// The fuzz target: one input through everything clusterd decides from a message's bytes
/// alone — the line-protocol decoder, the job-event and node-state decoders and their
/// validation. Any trap is a finding. `scripts/fuzz` builds it with libFuzzer
/// (`-sanitize=fuzzer -DFUZZING`); built normally it replays files (a corpus, a crash).
enum FuzzTarget {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        let data = Array(bytes)
        LineDecoder(precision: .nanoseconds).forEachLine(in: data) { entry in
            guard case .point(let view) = entry else { return }
            if case .success(let decoded) = JobEvent.decode(view) {
                switch decoded.event {
                case .start(let start): _ = start.jsonText()
                case .stop(let stop): _ = stop.json.jsonText
                }
            }
            if case .success(let decoded) = NodeStateEvent.decode(view) { _ = decoded.event }
        }
    }
}

#if FUZZING
/// libFuzzer's entry point (`scripts/fuzz` links the objects with libFuzzer's own main).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
/// Replays inputs: each argument is a file or a directory of files (a libFuzzer corpus).
@main struct FuzzReplay {
    static func main() throws {
        var files: [URL] = []
        for argument in CommandLine.arguments.dropFirst() {
            let url = URL(fileURLWithPath: argument)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("clusterd-fuzz: \(argument): no such file or directory\n".utf8))
                exit(2)
            }
            files += isDirectory.boolValue ? try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil) : [url]
        }
        for file in files.sorted(by: { $0.path < $1.path }) {
            try Data(contentsOf: file).withUnsafeBytes(FuzzTarget.run)
        }
        print("clusterd-fuzz: \(files.count) inputs replayed, no crash")
    }
}
#endif
