import Health
import LineProtocol
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
        return .success(MetricSample(cluster: clusterName, hostname: hostname, name: view.measurement.string, tags: tags, value: value,
                                     time: view.timestamp.map(seconds(fromUnscaled:)) ?? now))
    }

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
