import ArgumentParser
import LineProtocol

#if canImport(Glibc)
import Glibc
#endif

/// `clusterd lp ...`: line-protocol tools.
struct LineProtocolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lp",
        abstract: "Line-protocol tools.",
        subcommands: [Decode.self]
    )

    /// `clusterd lp decode`: shows how clusterd decodes each line of standard input.
    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode line protocol from standard input into one JSON object per point or error.",
            discussion: """
                Prints one JSON object per line that holds a point or an error; blank and comment \
                lines print nothing. Exits 0 when every line decoded, 1 when any line was bad. \
                This is the decoder the pipeline uses, so it shows exactly why a message is rejected.
                """
        )

        @Option(help: "Timestamp precision of the input: ns, us, ms or s.")
        var precision: Precision = .nanoseconds

        func run() throws {
            let input = readAllStandardInput()
            let decoder = LineDecoder(precision: precision)
            var failed = false
            var output = ""
            output.reserveCapacity(input.count * 2)
            decoder.forEachLine(in: input) { entry in
                switch entry {
                case .point(let view):
                    output += DecodeJSON.render(view.makePoint())
                case .error(let error, _):
                    failed = true
                    output += DecodeJSON.render(error)
                }
                output += "\n"
            }
            writeStandardOutput(output)
            if failed { throw ExitCode(1) }
        }
    }
}

extension Precision: ExpressibleByArgument {}

/// Reads standard input to its end as bytes.
func readAllStandardInput() -> [UInt8] {
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        data.append(contentsOf: chunk[0..<n])
    }
    return data
}

/// Writes a string to standard output in full.
func writeStandardOutput(_ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(1, buffer.baseAddress! + offset, buffer.count - offset)
            if n <= 0 { break }
            offset += n
        }
    }
}
