#!/usr/bin/env python3
"""Plays `nats micro ls|info|stats|ping` against a NATS micro service, with nats-py.

usage: micro-check.py <nats-url> <service-name> <endpoint-subject>
Asks $SRV.PING/INFO/STATS at all three subject levels the way the nats CLI does (body {},
a fresh inbox, replies gathered until 300 ms after the last), checks every reply against the
required fields and types of the micro v1 schemas, then sends one good and one bad request to
<endpoint-subject> and checks that STATS counted both and the error. Prints what it checked;
exits 1 on the first mismatch, 2 when it cannot run.
"""
import asyncio
import json
import sys

import nats

import checkrun

PING = {"type": str, "name": str, "id": str, "version": str}
INFO = dict(PING, description=str, endpoints=list)
STATS = dict(PING, started=str, endpoints=list)
INFO_ENDPOINT = {"name": str, "subject": str}
STATS_ENDPOINT = {"name": str, "subject": str, "queue_group": str, "num_requests": int, "num_errors": int,
                  "last_error": str, "processing_time": int, "average_processing_time": int}


def check(obj, required, what):
    for key, kind in required.items():
        if key not in obj:
            raise AssertionError(f"{what}: missing required field {key!r} in {obj}")
        if not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
            raise AssertionError(f"{what}: {key!r} is {type(obj[key]).__name__}, expected {kind.__name__}")
    if "metadata" in obj and obj["metadata"] is not None and not isinstance(obj["metadata"], dict):
        raise AssertionError(f"{what}: metadata must be an object or null")


async def gather(nc, subject):
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, b"{}", reply=inbox, headers={"Accept-Encoding": "snappy"})
    replies = []
    while True:
        try:
            msg = await sub.next_msg(timeout=0.3 if replies else 5)
        except nats.errors.TimeoutError:
            break
        replies.append(json.loads(msg.data))
    await sub.unsubscribe()
    return replies


async def main():
    url, name, endpoint = sys.argv[1], sys.argv[2], sys.argv[3]
    nc = await nats.connect(url)
    pings = await gather(nc, f"$SRV.PING.{name}")
    assert len(pings) == 1, f"expected one instance, got {len(pings)}"
    check(pings[0], PING, "PING")
    assert pings[0]["type"] == "io.nats.micro.v1.ping_response"
    sid = pings[0]["id"]
    print(f"ping ok: {name} {sid} {pings[0]['version']}")
    for subject in ("$SRV.INFO", f"$SRV.INFO.{name}", f"$SRV.INFO.{name}.{sid}"):
        infos = [i for i in await gather(nc, subject) if i.get("name") == name]
        assert len(infos) == 1, f"{subject}: {len(infos)} replies"
        check(infos[0], INFO, subject)
        assert infos[0]["type"] == "io.nats.micro.v1.info_response"
        for e in infos[0]["endpoints"]:
            check(e, INFO_ENDPOINT, f"{subject} endpoint")
    print(f"info ok: {len(infos[0]['endpoints'])} endpoints")
    print("subjects: " + " ".join(sorted(e["subject"] for e in infos[0]["endpoints"])))

    async def stats():
        reply = (await gather(nc, f"$SRV.STATS.{name}.{sid}"))[0]
        check(reply, STATS, "STATS")
        assert reply["type"] == "io.nats.micro.v1.stats_response"
        for e in reply["endpoints"]:
            check(e, STATS_ENDPOINT, "STATS endpoint")
        return next(e for e in reply["endpoints"] if e["subject"] == endpoint)

    before = await stats()
    good = await nc.request(endpoint, b"{}", timeout=5)
    assert "Nats-Service-Error" not in (good.headers or {}), good.headers
    bad = await nc.request(endpoint, b'{"noSuchKey": 1}', timeout=5)
    assert bad.headers and bad.headers.get("Nats-Service-Error-Code") == "400", bad.headers
    after = await stats()
    assert after["num_requests"] == before["num_requests"] + 2, (before, after)
    assert after["num_errors"] == before["num_errors"] + 1, (before, after)
    assert after["last_error"].startswith("400"), after["last_error"]
    assert after["processing_time"] >= before["processing_time"]
    print(f"stats ok: {endpoint} requests {after['num_requests']} errors {after['num_errors']}")
    try:
        await nc.request(f"$SRV.PING.{name}-absent", b"{}", timeout=1)
        raise AssertionError("a ping of an absent service was answered")
    except nats.errors.NoRespondersError:
        print("no responders ok")
    await nc.close()


if __name__ == "__main__":
    checkrun.run(main, "micro-check")
