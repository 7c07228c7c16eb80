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

    /// The cluster the event names (a stop may name none).
    public var cluster: String? {
        switch self {
        case .start(let s): s.cluster
        case .stop(let s): s.cluster
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
            return .failure(Located(column: EventLine.column(of: function.start, in: view),
                                    .badFunction("function \"\(function.string)\" is not start_job or stop_job")))
        }
        let token: TokenView, column: Int
        switch EventLine.eventToken(view) {
        case .success(let found): (token, column) = found
        case .failure(let located): return .failure(rejection(located))
        }
        return token.withUnescapedBytes { bytes in
            // The usual event is read straight into its type; anything else goes through the
            // strict decoder, which decides it and words its error.
            if isStart, let start = JobEventReader.start(bytes) { return .success((.start(start), column)) }
            if !isStart, let stop = JobEventReader.stop(bytes) { return .success((.stop(stop), column)) }
            let json: JSONValue
            switch EventLine.json(bytes, column: column) {
            case .success(let value): json = value
            case .failure(let located): return .failure(rejection(located))
            }
            do throws(JobRejection) {
                return .success((isStart ? .start(try JobStart(json: json)) : .stop(try JobStop(json: json)), column))
            } catch {
                return .failure(Located(column: column, error))
            }
        }
    }

    /// The envelope's failure as the job stage's rejection, at the same column.
    private static func rejection(_ located: Located<EventLine.Failure>) -> Located<JobRejection> {
        switch located.value {
        case .notAnEvent(let m): Located(column: located.column, .notAnEvent(m))
        case .invalidJSON(let m): Located(column: located.column, .invalidJSON(m))
        }
    }
}
