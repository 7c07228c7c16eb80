#!/usr/bin/env python3
"""Checks through the broker that one organization cannot read or change another's fleet records.

usage: org-isolation-check.py <nats-url>   (the broker runs config/nats-server.conf, clusterd is connected)
Prints each check; exits 1 on the first failure, 2 when it cannot run.
"""
import asyncio
import json
import sys

import nats

import checkrun

USERS = {"acme": "acme-example-password", "globex": "globex-example-password"}


async def connect(url, org, errors):
    async def on_error(e):
        errors.append(str(e))
    return await nats.connect(url, user=org, password=USERS[org], inbox_prefix=f"_INBOX_{org}", error_cb=on_error,
                              allow_reconnect=False)


async def main():
    url = sys.argv[1]
    acme_errors, globex_errors = [], []
    acme = await connect(url, "acme", acme_errors)
    globex = await connect(url, "globex", globex_errors)

    reply = await acme.request("fleet.acme.api.register", json.dumps({"name": "web1"}).encode(), timeout=5)
    assert json.loads(reply.data)["server"]["organization"] == "acme", reply.data
    reply = await globex.request("fleet.globex.api.register", json.dumps({"name": "web9", "heartbeatSeconds": 3600}).encode(), timeout=5)
    assert json.loads(reply.data)["server"]["name"] == "web9", reply.data
    print("own registrations ok")

    try:
        await acme.request("fleet.globex.api.get", b'{"name":"web9"}', timeout=1)
        raise AssertionError("acme read globex's server")
    except nats.errors.TimeoutError:
        pass
    await asyncio.sleep(0.2)
    assert any('publish to "fleet.globex.api.get"' in e for e in acme_errors), acme_errors
    print("cross-organization request refused by the broker")

    await acme.subscribe("fleet.globex.>")
    await acme.subscribe("_INBOX_globex.>")
    await acme.flush()
    await asyncio.sleep(0.2)
    assert any('subscription to "fleet.globex.>"' in e for e in acme_errors), acme_errors
    assert any('subscription to "_inbox_globex.>"' in e.lower() for e in acme_errors), acme_errors
    print("subscriptions to another organization's subjects and replies refused")

    await acme.publish("fleet.globex.web9.heartbeat", b"{}")
    await acme.flush()
    await asyncio.sleep(0.5)
    web9 = json.loads((await globex.request("fleet.globex.api.get", b'{"name":"web9"}', timeout=5)).data)["server"]
    assert web9["lastSeenAt"] is None, web9
    assert any('publish to "fleet.globex.web9.heartbeat"' in e for e in acme_errors), acme_errors
    print("spoofed heartbeat refused, globex's record unchanged")

    await acme.subscribe("fleet.acme.web1.operation")
    await acme.subscribe("fleet.globex.web9.operation")
    await acme.flush()
    await asyncio.sleep(0.2)
    assert not any('"fleet.acme.web1.operation"' in e for e in acme_errors), acme_errors
    assert any('subscription to "fleet.globex.web9.operation"' in e for e in acme_errors), acme_errors
    print("operations: own servers' subject allowed, another organization's refused")

    # Secrets: with the shipped fleet.token_refs, acme can name neither globex's secrets, nor
    # any other file or variable, nor send its own secret to a host not granted to it.
    attempts = [("env:GLOBEX_WEB9_TOKEN", "https://web1.acme.example/api"),
                ("file:/etc/clusterd/secrets/globex/web9.token", "https://web1.acme.example/api"),
                ("file:/etc/clusterd/secrets/acme/../globex/web9.token", "https://web1.acme.example/api"),
                ("file:/etc/hostname", "https://web1.acme.example/api"), ("env:PATH", "https://web1.acme.example/api"),
                ("env:ACME_WEB1_TOKEN", "https://collector.evil.example/"),
                ("env:ACME_WEB1_TOKEN", "https://web1.acme.example@collector.evil.example/")]
    for ref, api in attempts:
        reply = await acme.request("fleet.acme.api.register", json.dumps({"name": "thief", "apiUrl": api, "tokenRef": ref}).encode(), timeout=5)
        assert reply.headers and reply.headers.get("Nats-Service-Error-Code") == "403", (ref, api, reply.headers, reply.data)
    print("secrets: every foreign reference and every ungranted host refused (403)")

    listed = json.loads((await acme.request("fleet.acme.api.list", b"{}", timeout=5)).data)
    assert [s["name"] for s in listed["servers"]] == ["web1"], listed
    assert not globex_errors, globex_errors
    print("each organization lists only its own servers")
    await acme.close()
    await globex.close()


if __name__ == "__main__":
    checkrun.run(main, "org-isolation-check")
