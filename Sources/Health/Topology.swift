import Foundation
import Model
import Yams

/// Where a host sits: rackscope's site → room → aisle → rack → device hierarchy.
public struct Placement: Sendable, Equatable, Hashable {
    public var site: String
    public var room: String
    public var aisle: String?
    public var rack: String
    public var device: String

    /// A placement.
    public init(site: String, room: String, aisle: String?, rack: String, device: String) {
        self.site = site
        self.room = room
        self.aisle = aisle
        self.rack = rack
        self.device = device
    }
}

/// The physical topology (`config/topology.yaml`) in rackscope's model, indexed once for
/// O(1) host lookup and for the roll-up from nodes to racks, rooms and sites.
public struct Topology: Sendable {
    /// Host → placement.
    public let hosts: [String: Placement]
    /// Rack id → its hosts, in file order.
    public let racks: [String: [String]]
    /// Room id → its racks; site id → its rooms.
    public let rooms: [String: [String]]
    public let sites: [String: [String]]
    /// Rack id → placement of the rack (device empty).
    public let rackPlacement: [String: Placement]
    /// Aisle id → its racks (an id used in two rooms lists the racks of both).
    public let aisles: [String: [String]]
    /// Device id → its hosts (an id used in several racks lists the hosts of all of them).
    public let devices: [String: [String]]
    /// Rack id → the hosts of its devices that everything in the rack depends on (`type: pdu`
    /// or `switch`): their alerts inhibit the rack's other alerts, as a rack-scope check's
    /// alert does.
    public let rackParents: [String: Set<String>]
    /// Room id → the hosts of its cooling (`type: cooling`, in any of its racks): their alerts
    /// inhibit every other alert of the room.
    public let roomParents: [String: Set<String>]
    /// Host → the hosts of its chassis' controller (`type: chassis`, `controller: ...`): their
    /// alerts inhibit the alerts of the chassis' nodes (blades), not the rest of the rack.
    public let chassisParents: [String: Set<String>]
    /// Every chassis controller host (a parent: never inhibited by its own chassis).
    public let chassisControllers: Set<String>
    /// Device types whose failure takes the rest of their rack with it.
    public static let parentTypes: Set<String> = ["pdu", "switch"]
    /// Device types whose failure takes the rest of their room with it.
    public static let roomParentTypes: Set<String> = ["cooling"]

    /// Why a topology file cannot be used.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// An empty topology (alerts then carry no site/room/rack labels).
    public init() {
        hosts = [:]
        racks = [:]
        rooms = [:]
        sites = [:]
        rackPlacement = [:]
        aisles = [:]
        devices = [:]
        rackParents = [:]
        roomParents = [:]
        chassisParents = [:]
        chassisControllers = []
    }

    /// Loads `path`.
    public init(contentsOf path: String) throws(LoadError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw LoadError(description: "\(path): cannot read the file") }
        try self.init(yaml: String(decoding: data, as: UTF8.self), file: path)
    }

    /// Parses topology YAML: `sites: [{id, name, rooms: [{id, aisles: [{id, racks: [...]}],
    /// standalone_racks: [...]}]}]`, racks `{id, devices: [{id, instance}]}`; an instance is a
    /// range pattern (`f[0101-0164]`), a list or a slot map; a device without one is the host.
    public init(yaml: String, file: String) throws(LoadError) {
        var hosts: [String: Placement] = [:]
        var racks: [String: [String]] = [:]
        var rooms: [String: [String]] = [:]
        var sites: [String: [String]] = [:]
        var rackPlacement: [String: Placement] = [:]
        var aisles: [String: [String]] = [:]
        var devices: [String: [String]] = [:]
        var rackParents: [String: Set<String>] = [:]
        var roomParents: [String: Set<String>] = [:]
        var chassisParents: [String: Set<String>] = [:]
        var chassisControllers: Set<String> = []
        func fail(_ node: Node?, _ reason: String) -> LoadError {
            LoadError(description: "\(file):\(node?.mark?.line ?? 0): \(reason)")
        }
        func id(_ node: Node, _ what: String) throws(LoadError) -> String {
            guard let s = node["id"]?.string, !s.isEmpty else { throw fail(node, "\(what) without id") }
            return s
        }
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch { throw LoadError(description: "\(file): \(error)") }
        guard let root, let siteNodes = root["sites"]?.sequence else { throw fail(root, "expected a top-level \"sites\" list") }
        for siteNode in siteNodes {
            let site = try id(siteNode, "site")
            for roomNode in siteNode["rooms"]?.sequence ?? [] {
                let room = try id(roomNode, "room")
                sites[site, default: []].append(room)
                var rackNodes: [(Node, String?)] = []
                for aisleNode in roomNode["aisles"]?.sequence ?? [] {
                    let aisle = try id(aisleNode, "aisle")
                    for r in aisleNode["racks"]?.sequence ?? [] { rackNodes.append((r, aisle)) }
                }
                for r in roomNode["standalone_racks"]?.sequence ?? [] { rackNodes.append((r, nil)) }
                for (rackNode, aisle) in rackNodes {
                    let rack = try id(rackNode, "rack")
                    if rackPlacement[rack] != nil { throw fail(rackNode, "rack id \"\(rack)\" is used twice") }
                    rooms[room, default: []].append(rack)
                    rackPlacement[rack] = Placement(site: site, room: room, aisle: aisle, rack: rack, device: "")
                    if let aisle { aisles[aisle, default: []].append(rack) }
                    for deviceNode in rackNode["devices"]?.sequence ?? [] {
                        let device = try id(deviceNode, "device")
                        var names = try Self.instances(deviceNode["instance"] ?? deviceNode["nodes"], device: device, fail: { fail(deviceNode, $0) })
                        let type = deviceNode["type"]?.string ?? "server"
                        guard Self.parentTypes.contains(type) || Self.roomParentTypes.contains(type) || ["server", "chassis"].contains(type) else {
                            throw fail(deviceNode, "device \(device): type \"\(type)\" is not server, chassis, \((Self.parentTypes.union(Self.roomParentTypes)).sorted().joined(separator: ", "))")
                        }
                        if Self.parentTypes.contains(type) { rackParents[rack, default: []].formUnion(names) }
                        if Self.roomParentTypes.contains(type) { roomParents[room, default: []].formUnion(names) }
                        if deviceNode["controller"] != nil && type != "chassis" {
                            throw fail(deviceNode, "device \(device): controller is for type: chassis")
                        }
                        if type == "chassis" {
                            // The blades depend on the chassis' controller (its CMC: power, fans, midplane).
                            guard let node = deviceNode["controller"] else {
                                throw fail(deviceNode, "device \(device): a chassis names its controller host (controller: <host>)")
                            }
                            let controllers = try Self.instances(node, device: device, fail: { fail(deviceNode, "controller: " + $0) })
                            for blade in names where !controllers.contains(blade) { chassisParents[blade, default: []].formUnion(controllers) }
                            chassisControllers.formUnion(controllers)
                            names += controllers.filter { !names.contains($0) }
                        }
                        for host in names {
                            // rackscope: a later device wins a name collision.
                            hosts[host] = Placement(site: site, room: room, aisle: aisle, rack: rack, device: device)
                            racks[rack, default: []].append(host)
                            devices[device, default: []].append(host)
                        }
                    }
                }
            }
        }
        self.hosts = hosts
        self.racks = racks
        self.rooms = rooms
        self.sites = sites
        self.rackPlacement = rackPlacement
        self.aisles = aisles
        self.devices = devices
        self.rackParents = rackParents
        self.roomParents = roomParents
        self.chassisParents = chassisParents
        self.chassisControllers = chassisControllers
    }

    static func instances(_ node: Node?, device: String, fail: (String) -> LoadError) throws(LoadError) -> [String] {
        guard let node else { return [device] }
        switch node {
        case .scalar(let s):
            let names: [String]
            do { names = try NodeList(s.string).expanded() } catch { throw fail("instance: \(error)") }
            if names.count > 10_000 { throw fail("instance \"\(s.string)\" expands to more than 10000 names") }
            return names
        case .sequence(let seq): return seq.compactMap(\.string)
        case .mapping(let map):
            return map.sorted { (Int($0.key.string ?? "") ?? 0) < (Int($1.key.string ?? "") ?? 0) }.compactMap { $0.value.string }
        }
    }

    /// Where `host` is, if the topology lists it.
    public func placement(of host: String) -> Placement? { hosts[host] }
}
