/// Inputs for the decoder benchmark, generated deterministically.
enum Workloads {
    /// A ClusterCockpit metric batch as cc-metric-collector sends it: node, socket, hwthread
    /// and accelerator lines with `cluster`, `hostname`, `type`, `type-id` tags and a `value`
    /// field (about 90-100 bytes per line), plus an occasional job event line.
    static func metricBatch(targetBytes: Int) -> (bytes: [UInt8], lines: Int) {
        var out: [UInt8] = []
        out.reserveCapacity(targetBytes + 1024)
        var lines = 0
        var state: UInt64 = 42
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let nodeMetrics = ["cpu_load", "mem_used", "net_bytes_in", "net_bytes_out", "ib_recv", "lustre_read_bytes"]
        let socketMetrics = ["mem_bw", "power_pkg", "flops_any"]
        let threadMetrics = ["cpu_user", "cpu_system", "ipc", "clock"]
        let gpuMetrics = ["nv_util", "nv_mem_util", "nv_temp", "nv_power"]
        var ts = 1_718_001_260
        while out.count < targetBytes {
            let host = "f\(String(0101 + Int(next() % 600)).leftPad(4))"
            let line: String
            switch next() % 20 {
            case 0..<6:
                let m = nodeMetrics[Int(next() % UInt64(nodeMetrics.count))]
                line = "\(m),cluster=fritz,hostname=\(host),type=node,type-id=0 value=\(Double(next() % 100_000) / 100) \(ts)"
            case 6..<10:
                let m = socketMetrics[Int(next() % UInt64(socketMetrics.count))]
                line = "\(m),cluster=fritz,hostname=\(host),type=socket,type-id=\(next() % 2) value=\(Double(next() % 1_000_000) / 1000) \(ts)"
            case 10..<16:
                let m = threadMetrics[Int(next() % UInt64(threadMetrics.count))]
                line = "\(m),cluster=fritz,hostname=\(host),type=hwthread,type-id=\(next() % 72) value=\(Double(next() % 10_000) / 100) \(ts)"
            default:
                let m = gpuMetrics[Int(next() % UInt64(gpuMetrics.count))]
                line = "\(m),cluster=alex,hostname=a0\(100 + next() % 800),type=accelerator,type-id=00000000:\(String(next() % 256, radix: 16, uppercase: true).leftPad(2)):00.0 value=\(next() % 400) \(ts)"
            }
            out.append(contentsOf: line.utf8)
            out.append(0x0A)
            lines += 1
            if lines % 1000 == 0 {
                ts += 1
                let jobId = 1_000_000 + lines
                let event = ##"job,function=start_job event="{\"jobId\":\##(jobId),\"user\":\"b136dc12\",\"project\":\"b136dc\",\"cluster\":\"fritz\",\"partition\":\"singlenode\",\"shared\":\"multi_user\",\"numNodes\":1,\"numHwthreads\":4,\"resources\":[{\"hostname\":\"f0726\",\"hwthreads\":[0,1,2,3]}],\"metaData\":{\"jobName\":\"relax_A3\",\"jobScript\":\"#!/bin/bash -l\\n#SBATCH --ntasks=4\\nsrun ./vasp_std \\u003e out.log\\n\"},\"walltime\":86400,\"startTime\":\##(ts)}" \##(ts)"##
                out.append(contentsOf: event.utf8)
                out.append(0x0A)
                lines += 1
            }
        }
        return (out, lines)
    }

    /// lp-v2's "many short lines" input: `x,t=y y=1 1602841605822791506` repeated.
    static func shortLines(count: Int) -> (bytes: [UInt8], lines: Int) {
        let line = Array("x,t=y y=1 1602841605822791506\n".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(line.count * count)
        for _ in 0..<count { out.append(contentsOf: line) }
        return (out, count)
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
