"""An XMPP client on another machine (a network namespace of its own), driven over stdin/stdout.

``python -m tests.support.netns_chat HOST PORT JID PASSWORD CA_FILE`` logs in (STARTTLS, verified against
CA_FILE), prints ``{"ready": true}``, then reads one JSON command per line and prints one JSON answer each:

    {"op": "send", "to": JID, "body": TEXT}
    {"op": "expect", "contains": TEXT, "from": JID, "timeout": S}        -> {"ok": true, "body": …}
    {"op": "count", "contains": TEXT, "from": JID}                       -> {"ok": true, "count": N}
    {"op": "presence", "from": JID, "unavailable": true, "status": TEXT, "timeout": S}
    {"op": "iq", "to": FULL_JID, "namespace": NS, "name": OP, "body": JSON, "timeout": S}
        -> {"ok": true, "body": …} or {"ok": false, "condition": …, "error": …}
    {"op": "reconnect", "timeout": S}    (after the server restarted)
    {"op": "quit"}

A failure is ``{"ok": false, "error": …}``; the driver (tests/runners/test_machines.py) fails the test with it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from agentchat.errors import AgentChatError
from agentchat.xmpp.iq import IqChannel, IqRefused
from tests.harness.clients import UserClient


async def serve(client: UserClient) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    channels: dict[str, IqChannel] = {}
    while line := await reader.readline():
        command = json.loads(line)
        try:
            answer = await run(client, command, channels)
        except TimeoutError as exc:
            answer = {"ok": False, "error": f"timeout: {exc}"}
        if answer is None:
            return
        print(json.dumps(answer), flush=True)


async def run(client: UserClient, command: dict[str, Any], channels: dict[str, IqChannel]) -> dict[str, Any] | None:
    op = command["op"]
    timeout = float(command.get("timeout", 20))
    if op == "quit":
        return None
    if op == "send":
        await client.send(command["to"], command["body"])
        return {"ok": True}
    if op == "expect":
        message = await client.expect(command["contains"], timeout=timeout, from_=command.get("from"))
        return {"ok": True, "body": message.body}
    if op == "count":
        sender = command.get("from")
        found = [m for m in client.messages if command["contains"] in m.body and (sender is None or m.from_bare == sender)]
        return {"ok": True, "count": len(found)}
    if op == "presence":
        sender, status, unavailable = command["from"], command.get("status", ""), bool(command.get("unavailable"))

        def seen() -> bool:
            return any(p.from_.split("/")[0] == sender and (p.type == "unavailable") == unavailable and status in p.status
                       for p in client.presences)

        await client.wait_until(seen, f"presence of {sender}", timeout=timeout)
        return {"ok": True}
    if op == "iq":
        channel = channels.get(command["namespace"])
        if channel is None:
            channel = channels[command["namespace"]] = IqChannel(client.xmpp, command["namespace"])
        try:
            body = await channel.request(command["to"], command["name"], command.get("body", "{}"), timeout)
        except IqRefused as exc:
            return {"ok": False, "condition": exc.condition, "error": exc.text}
        except AgentChatError as exc:
            return {"ok": False, "condition": "", "error": str(exc)}
        return {"ok": True, "body": body}
    if op == "reconnect":
        await client.disconnect()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await client.connect(timeout=5)
                return {"ok": True}
            except Exception as exc:  # noqa: BLE001 - the server may still be starting: try again until the deadline
                if asyncio.get_running_loop().time() > deadline:
                    return {"ok": False, "error": f"cannot log in again: {exc}"}
                await asyncio.sleep(0.5)
    return {"ok": False, "error": f"unknown op {op!r}"}


async def main(host: str, port: int, jid: str, password: str, ca_file: str) -> None:
    client = UserClient(jid, password, host, port, ca_file=Path(ca_file))
    await client.connect(timeout=20)
    print(json.dumps({"ready": True}), flush=True)
    try:
        await serve(client)
    finally:
        await client.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
