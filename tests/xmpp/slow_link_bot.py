"""A service account's session, alone, as a process of its own (tests/xmpp/test_reconnect.py), whose every
TCP connect takes ``--connect-delay`` seconds (a slow or lossy link: SYNs lost and sent again). Prints a JSON
line at each session it gets or loses, with the connection attempts so far."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from agentchat.config import XmppSettings
from agentchat.xmpp.session import XmppSession


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jid", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connect-delay", type=float, default=0.0)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    connect = loop.create_connection

    async def slow_connect(*a, **kw):  # type: ignore[no-untyped-def]
        await asyncio.sleep(args.connect_delay)
        return await connect(*a, **kw)

    loop.create_connection = slow_connect  # type: ignore[method-assign]
    settings = XmppSettings(host="127.0.0.1", port=args.port, domain=args.jid.split("@")[1], reconnect_interval=0.5)
    session = XmppSession(args.jid, args.password, settings)
    began = time.monotonic()

    async def online(up: bool) -> None:
        print(json.dumps({"online": up, "attempts": session.attempts, "t": round(time.monotonic() - began, 2)}), flush=True)

    session.attach(lambda inbound, release: release(), online)
    await session.start(timeout=60)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the test closes stdin
    await session.stop()


if __name__ == "__main__":
    asyncio.run(main())
