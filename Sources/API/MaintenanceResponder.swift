import Alerts
import Bus
import Foundation
import Health
import Logging
import Model
import Store

/// Request/reply admin API for maintenance windows on `clusterd.admin.maintenance.<verb>`:
/// `create` `{scope, target, reason, createdBy, startsAt?, endsAt?, durationSeconds?}`,
/// `list` `{all?}`, `end` `{id}`. Every reply is `{"ok": true, ...}` or `{"ok": false, "error"}`.
public final class MaintenanceResponder: @unchecked Sendable {
    let book: AlertBook
    let topology: Reloadable<Topology>
    let connection: BusConnection
    let logger: Logger
    /// The writer's lock: the alert book shares its connection.
    let lock: NSRecursiveLock
    let prefix: String

    /// Serves `<prefix>.<verb>` (default `clusterd.admin.maintenance`) through ``endpoint``.
    public init(writer: DatabaseWriter, topology: Reloadable<Topology>, connection: BusConnection, logger: Logger,
                prefix: String = "clusterd.admin.maintenance") throws {
        book = AlertBook(database: writer.database)
        lock = writer.lock
        self.topology = topology
        self.connection = connection
        self.logger = logger
        self.prefix = prefix
    }

    /// The endpoint of the `clusterd` micro service (listed in `$SRV.INFO` with the others).
    public var endpoint: MicroService.Endpoint {
        var endpoint = MicroService.Endpoint(name: "maintenance", subject: "\(prefix).*",
                                             metadata: ["description": "maintenance windows: create, list, end (admin)"]) { [self] message in
            handle(message)
        }
        endpoint.before = MicroService.StateRead(lock: lock) { [self] message in before(message).jsonBytes }
        return endpoint
    }

    /// The window `end` acts on as it stands (`null` before a `create`, or for an unknown id).
    func before(_ message: BusMessage) -> JSONValue {
        guard message.subject.hasSuffix(".end"), let request = try? JSONValue.parse(message.data),
              let id = (try? StrictObject(request, allowed: ["id"]).int("id")) ?? nil else { return .null }
        do {
            guard let window = try book.maintenance(activeAt: nil).first(where: { $0.id == id }) else { return .null }
            return Self.json(window, now: Int64(Date().timeIntervalSince1970))
        } catch {
            return .unreadable(error)
        }
    }

    private func handle(_ message: BusMessage) -> [UInt8] {
        let verb = message.subject.split(separator: ".").last.map(String.init) ?? ""
        let now = Int64(Date().timeIntervalSince1970)
        var b = JSONObjectBuilder()
        do {
            lock.lock()
            defer { lock.unlock() }
            let request = message.data.isEmpty ? JSONValue.object([]) : try JSONValue.parse(message.data)
            switch verb {
            case "create":
                let window = try create(request, now: now)
                b.add("ok", true)
                b.add("window", Self.json(window, now: now))
                logger.notice("maintenance window created", metadata: ["id": "\(window.id)", "scope": "\(window.scope.rawValue)",
                                                                        "target": "\(window.target)", "by": "\(window.createdBy)"])
            case "list":
                let all = try StrictObject(request, allowed: ["all"]).raw("all") == .bool(true)
                b.add("ok", true)
                b.add("windows", .array(try book.maintenance(activeAt: all ? nil : now).map { Self.json($0, now: now) }))
            case "end":
                guard let id = try StrictObject(request, allowed: ["id"]).int("id") else { throw AdminError("id is required") }
                guard let window = try book.endMaintenance(id: id, now: now) else { throw AdminError("no maintenance window \(id)") }
                b.add("ok", true)
                b.add("window", Self.json(window, now: now))
                logger.notice("maintenance window ended", metadata: ["id": "\(id)"])
            default:
                throw AdminError("unknown verb \"\(verb)\": use create, list or end")
            }
        } catch {
            b = JSONObjectBuilder()
            b.add("ok", false)
            b.add("error", "\(error)")
        }
        return b.value.jsonBytes
    }

    struct AdminError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    private func create(_ request: JSONValue, now: Int64) throws -> MaintenanceWindow {
        let o = try StrictObject(request, allowed: ["scope", "target", "reason", "createdBy", "startsAt", "endsAt", "durationSeconds"])
        guard let scopeName = try o.string("scope"), let scope = MaintenanceWindow.Scope(rawValue: scopeName) else {
            throw AdminError("scope must be one of site, room, rack, node")
        }
        guard let target = try o.string("target"), !target.isEmpty else { throw AdminError("target is required") }
        let known: Bool
        let topology = self.topology.current
        switch scope {
        case .site: known = topology.sites[target] != nil
        case .room: known = topology.rooms[target] != nil
        case .rack: known = topology.racks[target] != nil || topology.rackPlacement[target] != nil
        case .node: known = true
        }
        guard known else { throw AdminError("\(scope.rawValue) \"\(target)\" is not in the topology") }
        guard let reason = try o.string("reason"), !reason.isEmpty else { throw AdminError("reason is required") }
        let startsAt = try o.int("startsAt") ?? now
        var endsAt = try o.int("endsAt")
        if let d = try o.int("durationSeconds") { endsAt = startsAt + d }
        if let e = endsAt, e <= startsAt { throw AdminError("the window ends before it starts") }
        return try book.createMaintenance(MaintenanceWindow(scope: scope, target: target, reason: reason,
                                                            createdBy: try o.string("createdBy") ?? "unknown", createdAt: now,
                                                            startsAt: startsAt, endsAt: endsAt))
    }

    static func json(_ w: MaintenanceWindow, now: Int64) -> JSONValue {
        var b = JSONObjectBuilder()
        b.add("id", w.id)
        b.add("scope", w.scope.rawValue)
        b.add("target", w.target)
        b.add("reason", w.reason)
        b.add("createdBy", w.createdBy)
        b.add("createdAt", w.createdAt)
        b.add("startsAt", w.startsAt)
        b.addIfPresent("endsAt", w.endsAt.map(JSONValue.integer))
        b.addIfPresent("endedAt", w.endedAt.map(JSONValue.integer))
        b.add("status", w.status(at: now))
        return b.value
    }


}
