import Foundation
import Jobs
import Model
import Testing

/// A start read back from its stored canonical JSON is the start that was stored: what lets
/// the job stage keep recent starts in memory instead of parsing them again for their stop.
@Suite(.timeLimit(.minutes(1))) struct JobStartRoundTripTests {
    @Test(arguments: [11, 12, 13, 14] as [UInt64]) func aStoredStartReadsBackAsItWas(seed: UInt64) throws {
        var events = RandomEvents(seed: seed, now: 1_795_000_000)
        var checked = 0
        for _ in 0..<3000 {
            guard let start = try? JobStart(json: events.start()) else { continue }
            let canonical = start.jsonText()
            let read = try JobStart(json: JSONValue.parse(canonical))
            #expect(read == start, "seed \(seed): \(canonical)")
            checked += 1
        }
        #expect(checked > 500)
    }
}
