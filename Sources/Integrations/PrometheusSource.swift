import Foundation
import Logging
import Model
import Observability

/// A job's metrics from a Prometheus when clusterd's buffers do not cover it (cc-backend's
/// Prometheus metric repository): `query_range` over HTTP, one PromQL per metric with `{host}`
/// replaced (`metrics.prometheus_queries`), through the one HTTP client (`HTTPProbe`).
public final class PrometheusSource: Sendable {
    let base: String
    let queries: [String: String]
    let probe = HTTPProbe(timeout: 10)
    let counters: PipelineCounters
    let logger: Logger

    /// A source asking the Prometheus at `url` with `queries` (metric → PromQL).
    public init(url: String, queries: [String: String], counters: PipelineCounters, logger: Logger) {
        base = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.queries = queries
        self.counters = counters
        self.logger = logger
    }

    /// `metric` of `host` from `from` to `to` per `step` seconds (NaN where Prometheus has
    /// nothing); nil when the metric has no query or Prometheus did not answer.
    public func values(metric: String, host: String, from: Int64, to: Int64, step: Int64) -> [Float]? {
        guard let template = queries[metric], to >= from, step > 0 else { return nil }
        var components = URLComponents(string: "\(base)/api/v1/query_range")
        components?.queryItems = [URLQueryItem(name: "query", value: template.replacingOccurrences(of: "{host}", with: host)),
                                  URLQueryItem(name: "start", value: String(from)), URLQueryItem(name: "end", value: String(to)),
                                  URLQueryItem(name: "step", value: String(step))]
        guard let url = components?.url else { return nil }
        let answer = probe.get(url, token: nil, timeout: 10)
        guard answer.status == 200, let json = try? JSONValue.parse(answer.body), json["status"]?.stringValue == "success",
              case .array(let series)? = json["data"]?["result"] else {
            counters.add("metrics.prometheus_errors")
            logger.warning("Prometheus did not answer a job's metric", metadata: [
                "metric": "\(metric)", "host": "\(host)", "status": "\(answer.status.map(String.init) ?? "none")",
                "error": "\(answer.error ?? String(decoding: answer.body.prefix(200), as: UTF8.self))"])
            return nil
        }
        // Several series (e.g. per CPU): their average per step, as the node value.
        var sums = [Double](repeating: 0, count: Int((to - from) / step) + 1), counts = [Int](repeating: 0, count: sums.count)
        for s in series {
            guard case .array(let points)? = s["values"] else { continue }
            for point in points {
                guard case .array(let pair) = point, pair.count == 2, let t = pair[0].numberValue, let v = pair[1].stringValue.flatMap(Double.init) else { continue }
                let slot = Int((Int64(t) - from) / step)
                guard sums.indices.contains(slot), v.isFinite else { continue }
                sums[slot] += v
                counts[slot] += 1
            }
        }
        counters.add("metrics.prometheus_queries")
        return zip(sums, counts).map { $1 == 0 ? Float.nan : Float($0 / Double($1)) }
    }
}
