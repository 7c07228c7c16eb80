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
        // The usual event is read straight into its type; anything else goes the full way below.
        if let (token, column) = EventLine.eventToken(view) {
            let event: JobEvent? = token.withUnescapedBytes { bytes in
                isStart ? JobEventReader.start(bytes).map(JobEvent.start) : JobEventReader.stop(bytes).map(JobEvent.stop)
            }
            if let event { return .success((event, column)) }
        }
        let json: JSONValue
        let eventColumn: Int
        switch EventLine.json(view) {
        case .success(let found): (json, eventColumn) = found
        case .failure(let located):
            switch located.value {
            case .notAnEvent(let m): return .failure(Located(column: located.column, .notAnEvent(m)))
            case .invalidJSON(let m): return .failure(Located(column: located.column, .invalidJSON(m)))
            }
        }
        do {
            return .success((isStart ? .start(try JobStart(json: json)) : .stop(try JobStop(json: json)), eventColumn))
        } catch {
            return .failure(Located(column: eventColumn, error))
        }
    }
}
