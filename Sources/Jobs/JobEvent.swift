import LineProtocol
import Model

/// A decoded job event.
public enum JobEvent: Sendable, Equatable {
    case start(JobStart)
    case stop(JobStop)

    /// `start_job` or `stop_job`.
    public var function: String {
        switch self {
        case .start: "start_job"
        case .stop: "stop_job"
        }
    }

    /// The scheduler job id.
    public var jobId: Int64 {
        switch self {
        case .start(let s): s.jobId
        case .stop(let s): s.jobId
        }
    }

    /// Decodes one line as cc-backend does: measurement `job`, tag `function`, string field
    /// `event` with JSON; other tags and the timestamp are ignored (a missing timestamp is
    /// accepted). Also returns the 1-based column to blame: of the `event` field, or of
    /// the problem.
    public static func decode(_ view: PointView) -> Result<(event: JobEvent, column: Int), Located<JobRejection>> {
        guard view.measurement.equals("job") else {
            return .failure(Located(column: 1, .notAnEvent("measurement is \"\(view.measurement.string)\", expected \"job\"")))
        }
        guard let function = view.tag("function") else {
            return .failure(Located(column: 1, .badFunction("missing tag function=start_job|stop_job")))
        }
        let isStart = function.equals("start_job")
        guard isStart || function.equals("stop_job") else {
            return .failure(Located(column: column(of: function.start, in: view),
                                    .badFunction("function \"\(function.string)\" is not start_job or stop_job")))
        }
        var eventToken: TokenView?
        var eventColumn = 1
        for field in view.fields where field.key.equals("event") {
            eventColumn = column(of: field.key.start, in: view)
            guard case .string(let token) = field.value else {
                return .failure(Located(column: eventColumn, .notAnEvent("field event is not a quoted string")))
            }
            eventToken = token
        }
        guard let eventToken else { return .failure(Located(column: 1, .notAnEvent("no string field \"event\""))) }
        let json: JSONValue
        do {
            json = try eventToken.withUnescapedBytes { bytes throws(JSONParseError) in try JSONValue.parse(bytes) }
        } catch {
            return .failure(Located(column: eventColumn, .invalidJSON("event: \(error)")))
        }
        do {
            return .success((isStart ? .start(try JobStart(json: json)) : .stop(try JobStop(json: json)), eventColumn))
        } catch {
            return .failure(Located(column: eventColumn, error))
        }
    }

    static func column(of pointer: UnsafePointer<UInt8>, in view: PointView) -> Int {
        guard let base = view.raw.baseAddress else { return 1 }
        let offset = pointer - base
        return offset >= 0 && offset <= view.raw.count ? offset + 1 : 1
    }
}

/// A value with the column (in its line) it came from.
public struct Located<Value: Sendable & Error>: Error, Sendable {
    /// 1-based column.
    public let column: Int
    /// The value.
    public let value: Value

    /// Creates a located value.
    public init(column: Int, _ value: Value) {
        self.column = column
        self.value = value
    }
}
