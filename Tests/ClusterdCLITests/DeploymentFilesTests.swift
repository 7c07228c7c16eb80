import Bus
import BusTestSupport
import Foundation
import NATSServerProcess
import Testing

/// docker/, the systemd unit and the Slurm hook cannot run here (no Docker daemon, no systemd
/// as init): their references are checked against the repository and this Debian instead.
@Suite(.timeLimit(.minutes(3))) struct DeploymentFilesTests {
    static let root = CLIRunner.packageRoot

    static func text(_ path: String) throws -> String { try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) }

    @Test func dockerfileAndComposeReferOnlyToWhatExists() throws {
        let dockerfile = try Self.text("docker/Dockerfile")
        // Every COPY source from the build context exists.
        for line in dockerfile.split(separator: "\n") where line.hasPrefix("COPY ") && !line.contains("--from=") {
            let source = String(line.split(separator: " ")[1])
            #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(source).path), "COPY \(source)")
        }
        // The runtime packages are Debian 12's real package names (installed on this Debian 12 machine).
        let install = try #require(dockerfile.split(separator: "\n").first { $0.contains("libnats3") })
        for package in ["libnats3.4", "libsqlite3-0", "libcurl4", "zlib1g", "nats-server"] {
            #expect(install.contains(package), "\(package)")
            let dpkg = Process()
            dpkg.executableURL = URL(fileURLWithPath: "/usr/bin/dpkg-query")
            dpkg.arguments = ["-W", package]
            dpkg.standardOutput = FileHandle.nullDevice
            dpkg.standardError = FileHandle.nullDevice
            try ChildProcess.run(dpkg)
            dpkg.waitUntilExit()
            #expect(dpkg.terminationStatus == 0, "\(package) is not a package of this Debian")
        }
        #expect(dockerfile.contains(#"CMD ["run", "--config", "config/clusterd.yaml""#))
        // Not root, and a health check through clusterd itself (a real subcommand).
        #expect(dockerfile.contains("USER clusterd") && dockerfile.contains(#"HEALTHCHECK"#) && dockerfile.contains(#"CMD ["clusterd", "healthcheck"]"#))
        #expect(try CLIRunner.run(["healthcheck", "--help"]).status == 0)
        let compose = try Self.text("docker/compose.yaml")
        #expect(compose.contains("dockerfile: docker/Dockerfile") && compose.contains("context: .."))
        #expect(compose.contains(#""-js""#) && compose.contains("image: nats:2.9"))
        #expect(compose.contains(#""--nats-url", "nats://nats:4222""#))
        // Paths the container's command names exist in the copied config directory.
        for path in ["config/clusterd.yaml", "config/topology.yaml", "config/checks.yaml", "config/clusters/fritz/cluster.json"] {
            #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(path).path), "\(path)")
        }
        let ok = try CLIRunner.run(["check-config", "--config", "config/clusterd.yaml"], directory: Self.root)
        #expect(ok.status == 0)
        // The compose service's own configuration and Alertmanager's file are mounted from docker/.
        #expect(compose.contains("./clusterd.yaml:/etc/clusterd/clusterd.yaml:ro") && compose.contains("./alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"))
        #expect(compose.contains("image: prom/alertmanager:v0.25.0") && compose.contains("alertmanager-data:/alertmanager"))
        let composed = try CLIRunner.run(["check-config", "--config", "docker/clusterd.yaml"], directory: Self.root)
        #expect(composed.status == 0, "\(composed.stdout)")
        let am = Process()      // Alertmanager's own checker (amtool, from the same Debian package)
        am.executableURL = URL(fileURLWithPath: "/usr/bin/amtool")
        am.arguments = ["check-config", Self.root.appendingPathComponent("docker/alertmanager.yml").path]
        am.standardOutput = FileHandle.nullDevice
        am.standardError = FileHandle.nullDevice
        try ChildProcess.run(am)
        am.waitUntilExit()
        #expect(am.terminationStatus == 0)
    }

    /// The HA compose file's three nats-server commands, run here as written (host names and
    /// ports mapped to loopback), form a JetStream cluster that takes an R3 stream; both
    /// replicas' configurations pass check-config and name different instances.
    @Test func theHAComposeFilesNATSNodesFormAJetStreamCluster() throws {
        let compose = try Self.text("docker/compose-ha.yaml")
        let quoted = try NSRegularExpression(pattern: #""([^"]*)""#)
        let routePorts = (0..<3).map { _ in freeLoopbackPort() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-compose-ha-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var nodes: [NATSServer] = []
        defer { for node in nodes { node.stop() } }
        for i in 0..<3 {
            let service = try #require(compose.range(of: "\n  n\(i + 1):\n"))
            let rest = compose[service.upperBound...]
            let open = try #require(rest.range(of: "command: ["))
            let close = try #require(rest[open.upperBound...].range(of: "]"))
            let text = String(rest[open.upperBound..<close.lowerBound])
            var arguments = quoted.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { String(text[Range($0.range(at: 1), in: text)!]) }
            #expect(arguments.prefix(3) == ["-js", "-sd", "/data"] && arguments.contains("--routes"))
            arguments.removeFirst(3)  // the harness gives each node its own store
            arguments = arguments.map { argument in
                var a = argument.replacingOccurrences(of: "nats://0.0.0.0:6222", with: "nats://127.0.0.1:\(routePorts[i])")
                for j in 0..<3 { a = a.replacingOccurrences(of: "nats://n\(j + 1):6222", with: "nats://127.0.0.1:\(routePorts[j])") }
                return a
            }
            let node = directory.appendingPathComponent("n\(i + 1)")
            try FileManager.default.createDirectory(at: node, withIntermediateDirectories: true)
            nodes.append(try NATSServer(arguments: arguments, directory: node))
        }
        let client = try BusConnection(ConnectionOptions(servers: nodes.map(\.url), name: "compose-ha"))
        defer { client.close() }
        // Until every node has joined the meta leader, an R3 stream has "no suitable peers".
        let deadline = Date().addingTimeInterval(30)
        let js = try JetStream(client)
        while (try? js.ensureStream(StreamConfig(name: "COMPOSE_HA", description: "compose-ha check", subjects: ["compose.ha"], replicas: 3))) == nil
                && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(try js.streamSettings("COMPOSE_HA").replicas == 3)
        var instances: [String] = []
        for replica in ["a", "b"] {
            let file = "docker/clusterd-ha-\(replica).yaml"
            #expect(compose.contains("./clusterd-ha-\(replica).yaml:/etc/clusterd/clusterd.yaml:ro"))
            let checked = try CLIRunner.run(["check-config", "--config", file], directory: Self.root)
            #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
            instances += try Self.text(file).split(separator: "\n").filter { $0.contains("instance:") }.map { String($0) }
        }
        #expect(Set(instances).count == 2)
    }

    @Test func systemdUnitAndSlurmHookAreWellFormed() throws {
        let unit = try Self.text("config/clusterd.service")
        for section in ["[Unit]", "[Service]", "[Install]"] { #expect(unit.contains(section)) }
        let exec = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        // The command line parses: the same arguments are accepted by the binary (--help stops before running).
        let arguments = exec.dropFirst("ExecStart=".count).split(separator: " ").dropFirst().map(String.init)
        #expect(arguments.first == "run" && arguments.contains("--log-format"))
        let help = try CLIRunner.run(arguments + ["--help"])
        #expect(help.status == 0, "\(help.stderr)")
        #expect(unit.contains("Restart=on-failure") && unit.contains("NoNewPrivileges=yes") && unit.contains("ReadWritePaths=/var/lib/clusterd"))
        for hardening in ["ProtectProc=invisible", "ProcSubset=pid", "UMask=0027", "SystemCallFilter=~@privileged"] {
            #expect(unit.contains(hardening), "\(hardening)")
        }
        // The unit's User= is created by the shipped sysusers.d file.
        let sysusers = try Self.text("config/clusterd.sysusers.conf")
        #expect(unit.contains("User=clusterd") && sysusers.split(separator: "\n").contains { $0.hasPrefix("u clusterd ") })
        // The Slurm publisher's unit runs a command the binary accepts.
        let slurmUnit = try Self.text("config/slurm/clusterd-slurm.service")
        let slurmExec = try #require(slurmUnit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        let slurmArguments = slurmExec.dropFirst("ExecStart=".count).split(separator: " ").dropFirst().map {
            $0 == "${CLUSTERD_NATS_URL}" ? "nats://127.0.0.1:4222" : String($0)
        }
        let slurmHelp = try CLIRunner.run(slurmArguments + ["--help"])
        #expect(slurmArguments.first == "slurm" && slurmHelp.status == 0, "\(slurmHelp.stderr)")
        let sh = Process()
        sh.executableURL = URL(fileURLWithPath: "/bin/sh")
        sh.arguments = ["-n", Self.root.appendingPathComponent("config/slurm/clusterd-hook.sh").path]
        try ChildProcess.run(sh)
        sh.waitUntilExit()
        #expect(sh.terminationStatus == 0)
    }
}
