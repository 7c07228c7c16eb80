import Model

/// What a pull health check (`GET {api_url}/health`) found, interpreted as the multi-server
/// design does: a refused or timed-out call is unreachable; a status other than 200 is
/// critical; a 200 whose database or cache is not ok is critical, whose services are not
/// healthy degraded, otherwise healthy. A 200 whose body is not a health document is unknown.
public struct HealthCheckResult: Sendable, Equatable {
    /// healthy, degraded, critical, unreachable or unknown.
    public var status: String
    public var responseTimeMilliseconds: Int64?
    public var httpStatus: Int?
    public var databaseHealthy: Bool?
    public var cacheHealthy: Bool?
    public var servicesHealthy: Bool?
    /// Why it is not healthy.
    public var error: String

    /// A result.
    public init(status: String, responseTimeMilliseconds: Int64? = nil, httpStatus: Int? = nil, databaseHealthy: Bool? = nil,
                cacheHealthy: Bool? = nil, servicesHealthy: Bool? = nil, error: String) {
        self.status = status
        self.responseTimeMilliseconds = responseTimeMilliseconds
        self.httpStatus = httpStatus
        self.databaseHealthy = databaseHealthy
        self.cacheHealthy = cacheHealthy
        self.servicesHealthy = servicesHealthy
        self.error = error
    }

    /// Interprets an HTTP outcome: the status and body, or the transport error.
    public static func interpret(httpStatus: Int?, body: [UInt8], transportError: String?, milliseconds: Int64?) -> HealthCheckResult {
        var r = HealthCheckResult(status: "unknown", responseTimeMilliseconds: milliseconds, httpStatus: httpStatus, error: "")
        if let transportError {
            r.status = "unreachable"
            r.error = transportError
            return r
        }
        guard let code = httpStatus, code == 200 else {
            r.status = "critical"
            r.error = "HTTP \(httpStatus ?? 0)"
            return r
        }
        guard let doc = try? JSONValue.parse(body), case .object = doc else {
            r.error = "the 200 response is not a JSON health document"
            return r
        }
        func ok(_ v: JSONValue?) -> Bool? {
            guard let v else { return nil }
            if case .bool(let b) = v { return b }
            if let s = v.stringValue ?? v["status"]?.stringValue { return ["ok", "healthy", "up"].contains(s.lowercased()) }
            if case .bool(let b)? = v["healthy"] { return b }
            return false
        }
        r.databaseHealthy = ok(doc["database"])
        r.cacheHealthy = ok(doc["redis"] ?? doc["cache"])
        if case .bool(let b)? = doc["services"]?["healthy"] { r.servicesHealthy = b } else { r.servicesHealthy = ok(doc["services"]) }
        if r.databaseHealthy == false || r.cacheHealthy == false {
            r.status = "critical"
            r.error = r.databaseHealthy == false ? "database not ok" : "cache not ok"
        } else if r.servicesHealthy == false {
            r.status = "degraded"
            r.error = "services not healthy"
        } else {
            r.status = "healthy"
        }
        return r
    }
}
