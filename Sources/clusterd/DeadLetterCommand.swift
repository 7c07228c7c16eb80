import ArgumentParser

/// `clusterd dlq list|replay`: the dead-letter part of `clusterd query`, under its own name.
struct DeadLetterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List or replay dead letters of a running clusterd (clusterd.api.dlq.*).",
        discussion: """
            `clusterd dlq list stage=jobs code=unknown_cluster`; after fixing the cause, \
            `clusterd dlq replay stage=jobs code=unknown_cluster` (or id=N): each letter's line is published \
            again and leaves the table once applied. Exit codes as for `clusterd query`.
            """
    )

    @Argument(help: "list, replay, or parked (outbox messages the broker can never take).") var verb: String
    @Argument(help: "key=value filters: id, stage, code, limit, offset.") var filters: [String] = []
    @Option(help: "NATS server URL (default $NATS_URL or nats://127.0.0.1:4222).") var server: String?
    @Flag(help: "Print the JSON reply as it came.") var json = false

    func run() throws {
        guard ["list", "replay", "parked"].contains(verb) else { throw ValidationError("dlq list, dlq replay or dlq parked") }
        let query = try QueryCommand.parse(["dlq", verb] + filters + (server.map { ["--server", $0] } ?? []) + (json ? ["--json"] : []))
        try query.run()
    }
}
