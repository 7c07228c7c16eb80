import Model
import Slurm
import Testing

/// End states read from `squeue --json` as Slurm 22.05 and 23.02+ print them (shapes taken
/// from a real slurmctld here: a job cancelled while its script ran, seen in EpilogSlurmctld
/// and after it).
@Suite(.timeLimit(.minutes(1))) struct SlurmJobTests {
    func job(_ fields: String) throws -> SlurmJob {
        let text = #"{"jobs":[{"job_id":3,"cluster":"fritz","user_name":"root","nodes":"f0101","start_time":1795919450,"end_time":1795919451,"#
            + fields + "}]}"
        return try #require(try SlurmJob.list(Array(text.utf8)).first)
    }

    @Test func aCancelledJobIsOnlyCompletingInTheEpilogOf2205() throws {
        // The exit status that raced in by the time the epilog asked: none, the signal, or the
        // shell's 143 after its child died first. None of them settles the state.
        for exit in [0, 15, 143 << 8] {
            let early = try job(#""job_state":"COMPLETING","state_reason":"None","exit_code":\#(exit)"#)
            #expect(!early.endStateIsFinal && early.endState != nil)
        }
        #expect(try job(#""job_state":"COMPLETING","state_reason":"None","exit_code":36608"#).endState == "failed")
        let settled = try job(#""job_state":"CANCELLED","state_reason":"None","exit_code":15"#)
        #expect(settled.endStateIsFinal && settled.endState == "cancelled")
        #expect(try settled.stopEvent()["jobState"]?.stringValue == "cancelled")
    }

    @Test func from2302OnTheEndStateComesWithCompleting() throws {
        let j = try job(#""job_state":["CANCELLED","COMPLETING"],"exit_code":{"status":"SIGNALED","return_code":0,"signal":{"signal_id":15}}"#)
        #expect(j.endStateIsFinal && j.endState == "cancelled")
        #expect(try job(#""job_state":["RUNNING"]"#).endState == nil)
        let failed = try job(#""job_state":"FAILED","state_reason":"NonZeroExitCode","exit_code":768"#)
        #expect(failed.endStateIsFinal && failed.endState == "failed")
    }
}
