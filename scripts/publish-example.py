#!/usr/bin/env python3
"""Publish a job start and stop the way a scheduler hook would, with nats-py (pip install nats-py).

Subscribes to the result subject first, publishes each event to JetStream with a Nats-Msg-Id
(a retried publish is de-duplicated), and prints clusterd's result for each. Exit code 1 when
an event was rejected or no result came within the timeout.
"""
import argparse
import asyncio
import json
import sys
import time

import nats


def event(function, payload):
    text = json.dumps(payload, separators=(",", ":")).replace("\\", "\\\\").replace('"', '\\"')
    return f'job,function={function} event="{text}" {time.time_ns()}'


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="nats://127.0.0.1:4222")
    ap.add_argument("--subject", default="cc.job.event")
    ap.add_argument("--job-id", type=int, default=1001)
    ap.add_argument("--cluster", default="fritz")
    ap.add_argument("--host", default="f0101")
    ap.add_argument("--timeout", type=float, default=10)
    args = ap.parse_args()
    nc = await nats.connect(args.server)
    js = nc.jetstream()
    start_time = int(time.time()) - 60
    events = [
        ("start_job", {"jobId": args.job_id, "user": "hookuser", "project": "hookproj", "cluster": args.cluster,
                       "numNodes": 1, "resources": [{"hostname": args.host}], "startTime": start_time}),
        ("stop_job", {"jobId": args.job_id, "cluster": args.cluster, "jobState": "completed", "stopTime": start_time + 60}),
    ]
    ok = True
    for function, payload in events:
        msg_id = f"{function}-{args.cluster}-{args.job_id}-{start_time}"
        sub = await nc.subscribe(f"clusterd.result.jobs.{msg_id}")
        await js.publish(args.subject, event(function, payload).encode(), headers={"Nats-Msg-Id": msg_id})
        try:
            msg = await sub.next_msg(timeout=args.timeout)
            result = json.loads(msg.data)
            print(json.dumps(result, separators=(",", ":")))
            ok = ok and result["ok"]
        except nats.errors.TimeoutError:
            print(f"no result for {msg_id} within {args.timeout} s", file=sys.stderr)
            ok = False
        await sub.unsubscribe()
    await nc.close()
    sys.exit(0 if ok else 1)


asyncio.run(main())
