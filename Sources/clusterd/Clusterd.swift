import ArgumentParser
import Pipeline

/// The clusterd command line: the daemon and the operator tools around it.
@main
struct Clusterd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clusterd",
        abstract: "Message-driven event processor for HPC and datacenter operations.",
        version: ClusterdService.version,
        subcommands: [RunCommand.self, PublishCommand.self, SlurmCommand.self, HealthcheckCommand.self, CheckConfigCommand.self, QueryCommand.self, TailCommand.self, DeadLetterCommand.self, ArchiveCommand.self, LineProtocolCommand.self, BenchCommand.self, BacktestCommand.self]
    )
}
