import Health
import LineProtocol
import MetricBuffers
import Model

/// cc-metric-collector's line format: `<metric>,cluster=..,hostname=..,type=..[,type-id=..][,stype=..,stype-id=..] value=<n> [ts]`.
public enum MetricLine {
    /// Why a metric line was refused.
    public struct Rejection: Error, Sendable, Equatable {
        /// Stable code: `missing_tag`, `unknown_field`, `wrong_type`, `syntax`.
        public var code: String
        public var reason: String
    }

    /// Decodes one line as cc-metric-store does: tags `hostname` (required) and `cluster`
    /// (or `defaultCluster`); the single field `value`, a number; the timestamp in s, ms, us
    /// or ns (told apart by size), or `now` when missing. Other tags are kept.
    public static func decode(_ view: PointView, defaultCluster: String, now: Int64) -> Result<MetricSample, Located<Rejection>> {
        var hostname: String?
        var cluster: String?
        var tags: [(key: String, value: String)] = []
        for tag in view.tags {
            if tag.key.equals("hostname") { hostname = tag.value.string } else if tag.key.equals("cluster") { cluster = tag.value.string } else {
                tags.append((tag.key.string, tag.value.string))
            }
        }
        guard let hostname, !hostname.isEmpty else {
            return .failure(Located(column: 1, Rejection(code: "missing_tag", reason: "missing tag hostname")))
        }
        let clusterName = cluster ?? defaultCluster
        guard !clusterName.isEmpty else {
            return .failure(Located(column: 1, Rejection(code: "missing_tag", reason: "missing tag cluster (and no metrics.default_cluster configured)")))
        }
        var value: Double?
        for field in view.fields {
            let column = EventLine.column(of: field.key.start, in: view)
            guard field.key.equals("value") else {
                return .failure(Located(column: column, Rejection(code: "unknown_field", reason: "unknown field \"\(field.key.string)\": a metric line has the single field value")))
            }
            guard let v = field.value.numericValue else {
                return .failure(Located(column: column, Rejection(code: "wrong_type", reason: "field value must be a number")))
            }
            value = v
        }
        guard let value else { return .failure(Located(column: 1, Rejection(code: "unknown_field", reason: "no field value"))) }
        let name = view.measurement.string
        for (what, text) in [("metric name", name), ("hostname", hostname), ("cluster", clusterName)] where text.utf8.count > maxNameBytes {
            return .failure(Located(column: 1, Rejection(code: "too_long", reason: "\(what) is \(text.utf8.count) bytes; at most \(maxNameBytes) are accepted")))
        }
        let time = view.timestamp.map(seconds(fromUnscaled:)) ?? now
        // One sample from the far future would move its ring's newest slot there, and every
        // current sample after it would count as too old.
        guard time <= now + maxSkewSeconds else {
            return .failure(Located(column: 1, Rejection(code: "in_the_future", reason: "timestamp \(time) is \(time - now) s after now (\(now)); at most \(maxSkewSeconds) s ahead are accepted")))
        }
        return .success(MetricSample(cluster: clusterName, hostname: hostname, name: name, tags: tags, value: value, time: time))
    }

    /// How far ahead of the receiver's clock a sample may be (seconds).
    public static let maxSkewSeconds: Int64 = 300
    /// The longest metric name, hostname or cluster name accepted (bytes).
    public static let maxNameBytes = 128

    /// Seconds from a timestamp read without scaling: collectors send seconds by default,
    /// but ms, us and ns are accepted, told apart by magnitude.
    public static func seconds(fromUnscaled t: Int64) -> Int64 {
        let a = t.magnitude
        if a < 100_000_000_000 { return t }
        if a < 100_000_000_000_000 { return t / 1000 }
        if a < 100_000_000_000_000_000 { return t / 1_000_000 }
        return t / 1_000_000_000
    }
}

extension MetricSample {
    /// The buffer series of this sample: scope from tag `type` (node when absent), id from
    /// `type-id` (and `stype-id`), as cc-metric-store keys them.
    public var seriesKey: SeriesKey {
        var id = tag("type-id") ?? ""
        if let sub = tag("stype-id") { id += "/\(sub)" }
        return SeriesKey(cluster: cluster, host: hostname, metric: name, scope: tag("type") ?? "node", id: id)
    }
}
