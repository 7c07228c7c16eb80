import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `clusterd healthcheck`: asks a running clusterd's `/readyz` — for Docker's HEALTHCHECK and
/// monitoring scripts, in images that have no curl.
struct HealthcheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "Exit 0 when a running clusterd is ready (GET /readyz answers 200), 1 otherwise with the reasons."
    )

    @Option(help: "The readiness URL (observability.listen + /readyz).") var url = "http://127.0.0.1:9464/readyz"
    @Option(help: "Seconds to wait for the answer.") var timeout: Double = 5

    func run() throws {
        guard let target = URL(string: url) else { throw ValidationError("--url: \(url) is not a URL") }
        var request = URLRequest(url: target)
        request.timeoutInterval = timeout
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: (Int, String)?
        nonisolated(unsafe) var failure: String?
        URLSession.shared.dataTask(with: request) { data, response, error in
            if let response = response as? HTTPURLResponse {
                outcome = (response.statusCode, String(decoding: data ?? Data(), as: UTF8.self))
            } else {
                failure = error.map { "\($0.localizedDescription)" } ?? "no answer"
            }
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + timeout + 1)
        guard let (status, body) = outcome else {
            FileHandle.standardError.write(Data("not ready: \(url): \(failure ?? "no answer within \(timeout) s")\n".utf8))
            throw ExitCode(1)
        }
        print("\(status) \(body.trimmingCharacters(in: .whitespacesAndNewlines))")
        if status != 200 { throw ExitCode(1) }
    }
}
