import ArgumentParser
import Bus
import Config
import Foundation
import Integrations
import Model
import Pipeline

/// `clusterd query`: asks a running clusterd over `clusterd.api.*` and prints a table (or JSON).
struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Query a running clusterd: jobs, nodes, health, alerts, dlq.",
        discussion: """
            Filters are key=value pairs as in subjects/clusterd.api.*.md (numbers and true/false are typed). \
            Examples: `clusterd query jobs cluster=fritz state=running`, `clusterd query jobs get jobId=1001`, \
            `clusterd query health rack=r02`, `clusterd query alerts severity=crit`, `clusterd query dlq replay code=unknown_cluster stage=jobs`, \
            `clusterd query fleet acme list health=critical` (fleet: the organization comes first). \
            Exit codes: 0 answered, 1 clusterd refused the request (the reason is printed), 2 no clusterd answered.
            """
    )

    static let defaultVerbs = ["jobs": "list", "nodes": "list", "health": "get", "alerts": "active", "dlq": "list", "fleet": "summary"]

    @Argument(help: "jobs, nodes, health, alerts, dlq or fleet.") var resource: String
    @Argument(help: "A verb (get, list, active, history, replay), then key=value filters.") var rest: [String] = []
    @Option(help: "NATS server URL (default $NATS_URL or nats://127.0.0.1:4222).") var server: String?
    @Flag(help: "Print the JSON reply as it came.") var json = false
    @Option(help: "Seconds to wait for an answer.") var timeout = 5

    func run() throws {
        guard let defaultVerb = Self.defaultVerbs[resource] else {
            throw ValidationError("unknown resource \(resource): use \(Self.defaultVerbs.keys.sorted().joined(separator: ", "))")
        }
        var arguments = rest
        var subject = "clusterd.api.\(resource)"
        if resource == "fleet" {
            guard let org = arguments.first, !org.contains("=") else { throw ValidationError("clusterd query fleet <organization> [verb] [key=value...]") }
            arguments.removeFirst()
            subject = "fleet.\(org).api"
        }
        let verb = arguments.first.map { $0.contains("=") ? defaultVerb : arguments.removeFirst() } ?? defaultVerb
        // A replay changes state: it lives under clusterd.admin, not the read-only clusterd.api.
        if resource == "dlq" && verb == "replay" { subject = "clusterd.admin.dlq" }
        var members: [(key: String, value: JSONValue)] = []
        for pair in arguments {
            guard let eq = pair.firstIndex(of: "=") else { throw ValidationError("expected key=value, got \(pair)") }
            let key = String(pair[..<eq]), text = String(pair[pair.index(after: eq)...])
            members.append((key, Int64(text).map(JSONValue.integer) ?? (text == "true" ? .bool(true) : text == "false" ? .bool(false) : .string(text))))
        }
        let reply = try Self.request(server, name: "clusterd-query", subject: "\(subject).\(verb)", body: .object(members), timeout: timeout)
        if json {
            print(reply.text)
            return
        }
        print(Self.render(try JSONValue.parse(reply.data)), terminator: "")
    }

    /// Asks clusterd on `subject` and returns its answer; no answer is exit 2 and a service
    /// error (`Nats-Service-Error`) exit 1, each said on standard error.
    static func request(_ server: String?, name: String, subject: String, body: JSONValue, timeout: Int) throws -> BusMessage {
        let connection = try connect(server, name: name, timeout: Double(timeout))
        defer { connection.close() }
        let reply: BusMessage
        do {
            // Who asks, for the audit log of administrative actions: $CLUSTERD_ACTOR, else the login name.
            let env = ProcessInfo.processInfo.environment
            let actor = [env["CLUSTERD_ACTOR"], env["USER"], env["LOGNAME"]].compactMap { $0 }.first { !$0.isEmpty } ?? "uid \(getuid())"
            reply = try connection.request(BusMessage(subject: subject, headers: ["Clusterd-Actor": [actor]], data: body.jsonBytes),
                                           timeout: .seconds(timeout))
        } catch {
            FileHandle.standardError.write(Data("no clusterd answered on \(subject): \(error)\n".utf8))
            throw ExitCode(2)
        }
        if let message = reply.header("Nats-Service-Error") {
            FileHandle.standardError.write(Data("error \(reply.header("Nats-Service-Error-Code") ?? "?"): \(message)\n".utf8))
            throw ExitCode(1)
        }
        return reply
    }

    /// A connection that is up: a broker that cannot be reached is said as such (exit 2), not
    /// as "no clusterd answered" after the whole request timeout.
    static func connect(_ server: String?, name: String, timeout: Double) throws -> BusConnection {
        let url = serverURL(server)
        if let problem = BrokerProbe.problem(url: url) {
            FileHandle.standardError.write(Data("cannot reach NATS at \(ClusterdConfig.redacted(url)): \(problem)\n".utf8))
            throw ExitCode(2)
        }
        let connection = try BusConnection(ConnectionOptions(servers: [url], name: name))
        do {
            try connection.awaitFirstConnection(timeout: .milliseconds(Int(min(timeout, 3) * 1000)), for: "connect")
        } catch {
            FileHandle.standardError.write(Data("cannot reach NATS at \(ClusterdConfig.redacted(url)): \(connection.lastError ?? "\(error)")\n".utf8))
            connection.close()
            throw ExitCode(2)
        }
        return connection
    }

    static func serverURL(_ option: String?) -> String {
        option ?? ProcessInfo.processInfo.environment["NATS_URL"] ?? "nats://127.0.0.1:4222"
    }

    /// A table for the first list in the reply (other members as `key: value` lines first).
    static func render(_ value: JSONValue) -> String {
        guard case .object(let members) = value else { return value.jsonText + "\n" }
        var out = ""
        var table: [JSONValue]?
        for m in members {
            if case .array(let rows) = m.value, table == nil, rows.allSatisfy({ if case .object = $0 { return true }; return false }) {
                table = rows
            } else if case .object = m.value {
                out += render(m.value)
            } else {
                out += "\(m.key): \(cell(m.value))\n"
            }
        }
        guard let rows = table, case .object(let first)? = rows.first else { return out }
        let columns = first.map(\.key)
        let cells = rows.map { row in columns.map { cell(row[$0] ?? .null) } }
        let widths = columns.indices.map { i in min(40, max(columns[i].count, cells.map { $0[i].count }.max() ?? 0)) }
        func line(_ fields: [String]) -> String {
            zip(fields, widths).map { f, w in f.count > w ? String(f.prefix(w - 1)) + "…" : f.padding(toLength: w, withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        out += line(columns)
        for row in cells { out += line(row) }
        return out
    }

    static func cell(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): s
        case .null: "-"
        default: v.jsonText
        }
    }
}
