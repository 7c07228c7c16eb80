import ArgumentParser
import Pipeline

/// `clusterd check-config`: validates the configuration and the files it names.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration and every file it names (clusters, topology, checks); exit 1 on any problem.",
        discussion: "Relative paths in the file are taken from the working directory, as `clusterd run` does."
    )

    @Option(help: "Configuration file.") var config = "config/clusterd.yaml"
    @Flag(help: "Print only problems.") var quiet = false

    func run() throws {
        let report = ConfigCheck.run(path: config)
        if !quiet { for line in report.checked { print("ok: \(line)") } }
        for problem in report.problems { print("error: \(problem)") }
        if !report.problems.isEmpty { throw ExitCode(1) }
    }
}
