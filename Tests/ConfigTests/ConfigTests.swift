import Config
import Testing

/// `clusterd.yaml` read into typed settings: each key once, durations in the key's unit,
/// choices as enums, every unknown key reported with its line.
@Suite(.timeLimit(.minutes(1))) struct ConfigTests {
    func problem(_ yaml: String) -> String {
        do {
            _ = try ClusterdConfig.parse(yaml, file: "c.yaml")
            return "accepted"
        } catch { return error.description }
    }

    @Test func anEmptyFileIsTheDefaultsAndKeysReplaceOnlyThemselves() throws {
        #expect(try ClusterdConfig.parse("", file: "c.yaml") == ClusterdConfig())
        let config = try ClusterdConfig.parse("""
            jobs:
              held_stop_timeout_seconds: 90
            health:
              evaluation_interval_ms: 250
            intake:
              mode: core
              max_age_days: 2
            log_level: debug
            storage:
              archive_kind: sqlite
            """, file: "c.yaml")
        #expect(config.jobs.heldStopTimeout == .seconds(90))
        #expect(config.jobs.archiveRetention == .zero)                 // not in the file: its default
        #expect(config.health.evaluationInterval == .milliseconds(250))
        #expect(config.intake.mode == .core && config.intake.maxAge == .seconds(2 * 86_400))
        #expect(config.intake.stream == "CC_EVENTS")
        #expect(config.logLevel == .debug)
        #expect(config.archiveDatabasePath == "./clusterd-data/job-archive.db" && ClusterdConfig().archiveDatabasePath == nil)
    }

    @Test func wrongWordsNegativeDurationsAndUnknownKeysAreNamed() {
        #expect(problem("intake:\n  mode: durable\n") == #"c.yaml: intake.mode: "durable" is not jetstream or core"#)
        #expect(problem("log_level: loud\n").contains(#"log_level: "loud" is not trace, debug, info, notice, warning, error or critical"#))
        #expect(problem("storage:\n  archive_kind: s3\n") == #"c.yaml: storage.archive_kind: "s3" is not file or sqlite"#)
        #expect(problem("jobs:\n  archive_retention_days: -1\n") == "c.yaml: jobs.archive_retention_days: -1 must not be negative")
        // Every unknown key at once, nested ones and those inside list entries included.
        let typos = problem("""
            intake:
              bacth: 5
            alertmanager:
              receivers:
                - name: am
                  url: http://127.0.0.1:9093
                  severity: [crit]
            helth: {}
            """)
        #expect(typos.contains(#"line 2: unknown key "intake.bacth""#), "\(typos)")
        #expect(typos.contains(#"line 7: unknown key "alertmanager.receivers.severity" (allowed: name, url, severities, timeout_seconds, resend_seconds)"#), "\(typos)")
        #expect(typos.contains(#"line 8: unknown key "helth""#), "\(typos)")
    }
}
