import Alerts
import Foundation
import Health
import Model
@testable import Pipeline
import Store
import Testing

/// The alert book without a broker: sequences, message ids, re-sends, silencing, and the
/// documented alert JSON.
@Suite(.timeLimit(.minutes(3))) struct AlertBookTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alerts-\(UUID().uuidString)")

    func book(resend: Int64 = 300) throws -> (AlertBook, Database) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let db = try Database(path: directory.appendingPathComponent("a.db").path)
        try db.migrate(ClusterdService.migrations)
        return (AlertBook(database: db, resendInterval: resend), db)
    }

    static let key = AlertKey(check: "gpu_temperature", cluster: "alex", entity: "a0603", component: "00000000:0E:00.0")
    static let placement = Placement(site: "erlangen", room: "room-2", aisle: nil, rack: "g01", device: "g01-s02")

    static func transition(_ status: HealthTransition.Status, _ severity: Severity, at: Int64, value: Double = 97) -> HealthTransition {
        HealthTransition(key: key, scope: .component, status: status, severity: severity, placement: placement, startsAt: 1_795_380_000,
                         endsAt: status == .resolved ? at : nil, flapping: false, value: value, name: "GPU temperature",
                         summary: "GPU 00000000:0E:00.0 of a0603 at \(Int(value)) °C (\(severity.rawValue))", at: at)
    }

    func published(_ db: Database) throws -> [OutboxMessage] { try Outbox(db).pending(limit: 1000) }

    @Test func transitionsAreSequencedAndResentUnderTheirOwnIds() throws {
        let (book, db) = try book(resend: 60)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fp = AlertBook.fingerprint(Self.key)
        try book.record([Self.transition(.firing, .warn, at: 1_795_380_000)], now: 1_795_380_000)
        try book.record([Self.transition(.firing, .crit, at: 1_795_380_030)], now: 1_795_380_030)
        #expect(try book.housekeeping(now: 1_795_380_050) == 0)
        #expect(try book.housekeeping(now: 1_795_380_090) == 1)
        try book.record([Self.transition(.resolved, .crit, at: 1_795_380_100, value: 60)], now: 1_795_380_100)
        #expect(try book.housekeeping(now: 1_795_380_500) == 0)       // resolved: no re-send
        let out = try published(db)
        #expect(out.map(\.messageID) == ["\(fp)-1", "\(fp)-2", "\(fp)-2-resend-1", "\(fp)-3"])
        #expect(out.map(\.subject) == ["clusterd.alert.warn.alex.a0603", "clusterd.alert.crit.alex.a0603",
                                       "clusterd.alert.crit.alex.a0603", "clusterd.alert.crit.alex.a0603"])
        #expect(try book.restore().isEmpty)
        #expect(try db.prepare("SELECT count(*) FROM alert_transition").first { $0.int(0) } == 3)
        // Retention: history and the resolved alert go; a firing alert stays whatever its age.
        let other = AlertKey(check: "gpu_temperature", cluster: "alex", entity: "a0604", component: "0")
        var old = Self.transition(.firing, .crit, at: 1_795_300_000)
        old.key = other
        try book.record([old], now: 1_795_300_000)
        #expect(try book.prune(before: 1_795_390_000) == 5)
        #expect(try book.restore().map(\.key) == [other])
    }

    @Test func maintenanceSilencesRecordsAndAnnouncesWhenItEnds() throws {
        let (book, db) = try book()
        defer { try? FileManager.default.removeItem(at: directory) }
        let window = try book.createMaintenance(MaintenanceWindow(scope: .room, target: "room-2", reason: "cooling", createdBy: "ops",
                                                                  createdAt: 1_795_379_000, startsAt: 1_795_379_000, endsAt: 1_795_381_000))
        try book.record([Self.transition(.firing, .crit, at: 1_795_380_000)], now: 1_795_380_000)
        #expect(try published(db).isEmpty)
        #expect(try book.restore().count == 1)                          // recorded, firing, silenced
        #expect(try book.housekeeping(now: 1_795_380_500) == 0)
        #expect(try book.housekeeping(now: 1_795_381_000) == 1)          // window over: announced
        #expect(try published(db).map(\.messageID) == ["\(AlertBook.fingerprint(Self.key))-2"])
        #expect(window.id > 0)
    }

    @Test func theDocumentedAlertIsWhatIsPublished() throws {
        let (book, db) = try book()
        defer { try? FileManager.default.removeItem(at: directory) }
        try book.record([Self.transition(.firing, .crit, at: 1_795_380_060)], now: 1_795_380_060)
        let message = try #require(try published(db).first)
        let text = try String(contentsOfFile: Repository.path("subjects/clusterd.alert.md"), encoding: .utf8)
        let example = try #require(SubjectExamplesTests.blocks(text, info: "json example=firing").first)
        let documented = try JSONValue.parse(Array(example.utf8))
        let actual = try JSONValue.parse(message.payload)
        #expect(actual == documented, "published: \(actual.jsonText)")
        #expect(message.subject == "clusterd.alert.crit.alex.a0603")
    }
}
