import BusTestSupport
import Foundation
import Testing

/// `clusterd publish` as the hook user of the shipped broker configuration
/// (`config/nats-server.conf`): its permissions allow replies on `_INBOX_hook.>` only.
@Suite(.serialized, .timeLimit(.minutes(3))) final class PublishUnderACLTests {
    let broker: NATSServer
    let directory: URL
    let run: Process

    init() async throws {
        broker = try NATSServer(arguments: ["-c", CLIRunner.packageRoot.appendingPathComponent("config/nats-server.conf").path])
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("clusterd-acl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("clusterd.yaml")
        try """
            nats: {user: clusterd, password: clusterd-example-password}
            jobs: {cluster_files: [config/clusters/fritz/cluster.json]}
            storage: {data_dir: \(directory.path)/data}
            observability: {listen: ""}

            """.write(to: config, atomically: true, encoding: .utf8)
        run = Process()
        run.executableURL = CLIRunner.executable
        run.arguments = ["run", "--config", config.path, "--nats-url", broker.url, "--log-level", "error"]
        run.currentDirectoryURL = CLIRunner.packageRoot
        run.standardError = FileHandle.nullDevice
        run.standardOutput = FileHandle.nullDevice
        try ChildProcess.run(run)
        // The broker has no anonymous user: ask clusterd's query API as clusterd until it answers.
        let deadline = Date().addingTimeInterval(30)
        while try !readyAsClusterd() && Date() < deadline { try await Task.sleep(for: .milliseconds(200)) }
    }

    deinit {
        run.terminate()
        run.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Whether clusterd's query API answers (asked with clusterd's own user).
    func readyAsClusterd() throws -> Bool {
        let script = """
            import asyncio, nats, sys
            async def main():
                nc = await nats.connect(sys.argv[1], user="clusterd", password="clusterd-example-password")
                try:
                    await nc.request("clusterd.api.jobs.list", b"{}", timeout=1)
                finally:
                    await nc.close()
            asyncio.run(main())
            """
        return try CLIRunner.runProgram("python3", ["-c", script, broker.url]).status == 0
    }

    func publish(_ arguments: [String], inbox: Bool = true, timeout: Double = 8) throws -> (CLIRunner.Result, TimeInterval) {
        var args = ["publish"] + arguments + ["--server", broker.url, "--nats-user", "hook", "--nats-password", "hook-example-password",
                                              "--timeout", String(timeout)]
        if inbox { args += ["--inbox-prefix", "_INBOX_hook"] }
        let started = Date()
        let result = try CLIRunner.run(args)
        return (result, Date().timeIntervalSince(started))
    }

    static let start = ["job-start", "--job-id", "5001", "--cluster", "fritz", "--user", "alice", "--project", "p", "--nodes", "f0101",
                        "--start-time", "1795000000"]

    @Test func theHookUserPublishesWithItsInboxPrefixAndARetryIsAcceptedAsDelivered() throws {
        let (first, took) = try publish(Self.start)
        #expect(first.status == 0 && first.stdout.contains(#""status":"started""#), "\(first.stdout)\(first.stderr)")
        #expect(took < 8)
        // The same event again (a retried hook): the stream reports a duplicate, which is success.
        let (again, _) = try publish(Self.start)
        #expect(again.status == 0 && again.stderr.contains("already delivered"), "\(again.stdout)\(again.stderr)")
        // Without the prefix the broker refuses the reply subscription: a clear failure within --timeout.
        let (refused, refusedTook) = try publish(Self.start.map { $0 == "5001" ? "5002" : $0 }, inbox: false, timeout: 4)
        #expect(refused.status != 0 && refusedTook < 7, "\(refused.stdout)\(refused.stderr) after \(refusedTook) s")
        #expect(refused.stderr.contains("NATS at"), "\(refused.stderr)")
    }

    @Test func twoDifferentNodeStatesOfOneClusterInOneSecondAreBothApplied() throws {
        let a = #"{"cluster":"fritz","nodes":[{"hostname":"f0101","states":["idle"],"cpusAllocated":0,"memoryAllocated":0,"gpusAllocated":0,"jobsRunning":0}]}"#
        let b = a.replacingOccurrences(of: "f0101", with: "f0102")
        let idA = try CLIRunner.run(["publish", "node-state", "--dry-run"], stdin: a).stdout.split(separator: "\n").first ?? ""
        let idB = try CLIRunner.run(["publish", "node-state", "--dry-run"], stdin: b).stdout.split(separator: "\n").first ?? ""
        #expect(idA != idB && idA.hasPrefix("cc.node.state Nats-Msg-Id: nodestate-fritz-"), "\(idA) \(idB)")
        for body in [a, b] {
            let args = ["publish", "node-state", "--server", broker.url, "--nats-user", "hook", "--nats-password", "hook-example-password",
                        "--inbox-prefix", "_INBOX_hook", "--timeout", "8"]
            let r = try CLIRunner.run(args, stdin: body)
            #expect(r.status == 0 && r.stdout.contains(#""ok":true"#), "\(r.stdout)\(r.stderr)")
        }
    }
}
