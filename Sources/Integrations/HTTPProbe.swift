import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
import Threads
#endif

/// Blocking HTTP GETs with a total timeout and an optional bearer token, through
/// FoundationNetworking (libcurl underneath), sharing one session (a new session per call
/// costs seconds on first use). For the fleet poller's threads.
final class HTTPProbe: Sendable {
    let session: URLSession

    /// A probe whose calls give up after `timeout` seconds.
    init(timeout: TimeInterval) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        // libcurl counts connections per host name: a slow server must not queue the checks
        // of others behind the same name (several APIs behind one proxy, or tests on 127.0.0.1).
        configuration.httpMaximumConnectionsPerHost = 64
        session = URLSession(configuration: configuration)
    }

    deinit { session.finishTasksAndInvalidate() }

    /// Status and body, or the transport error; and how long it took.
    func get(_ url: URL, token: String?, timeout: TimeInterval) -> (status: Int?, body: [UInt8], error: String?, milliseconds: Int64) {
        var request = URLRequest(url: url, timeoutInterval: timeout)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return perform(request, timeout: timeout)
    }

    /// POSTs a JSON body.
    func post(_ url: URL, json: [UInt8], timeout: TimeInterval) -> (status: Int?, body: [UInt8], error: String?, milliseconds: Int64) {
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(json)
        return perform(request, timeout: timeout)
    }

    private func perform(_ request: URLRequest, timeout: TimeInterval) -> (status: Int?, body: [UInt8], error: String?, milliseconds: Int64) {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<(Int?, [UInt8], String?)>()
        let started = DispatchTime.now().uptimeNanoseconds
        session.dataTask(with: request) { data, response, error in
            if let error {
                box.value = (nil, [], (error as NSError).localizedDescription)
            } else {
                box.value = ((response as? HTTPURLResponse)?.statusCode, Array(data ?? Data()), nil)
            }
            done.signal()
        }.resume()
        if done.wait(timeout: .now() + timeout + 1) == .timedOut { box.value = (nil, [], "timed out after \(timeout) s") }
        let ms = Int64((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000)
        let (status, body, error) = box.value ?? (nil, [], "no answer")
        return (status, body, error, ms)
    }
}
