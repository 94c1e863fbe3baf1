"""A phone on another machine: run inside a network namespace of its own by tests/server/test_public_mode.py.

``python -m tests.support.netns_client HOST JID PASSWORD CA_FILE C2S_PORT DIRECT_TLS_PORT`` prints one
JSON object: what STARTTLS (verified), direct TLS (verified) and plaintext attempts gave.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from tests.harness.clients import LoginFailed, UserClient


async def features_on_a_plain_stream(host: str, port: int, domain: str) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams'>").encode())
    received = b""
    async with asyncio.timeout(5):
        while b"</stream:features>" not in received:
            chunk = await reader.read(4096)
            if not chunk:
                break
            received += chunk
    writer.close()
    return received.decode(errors="replace")


async def main(host: str, jid: str, password: str, ca_file: str, c2s_port: int, direct_tls_port: int) -> dict[str, object]:
    result: dict[str, object] = {}
    manager = "manager@" + jid.split("@")[1]
    started = time.monotonic()
    phone = UserClient(jid, password, host, c2s_port, ca_file=Path(ca_file))
    await phone.connect()
    result["starttls_login_ms"] = round((time.monotonic() - started) * 1000)
    await phone.send(manager, "help")
    result["help"] = (await phone.expect("Commands", timeout=15)).body
    await phone.disconnect()

    direct = UserClient(jid, password, host, direct_tls_port, security="directtls", ca_file=Path(ca_file))
    await direct.connect()
    result["direct_tls"] = "ok"
    await direct.disconnect()

    result["plain_features"] = await features_on_a_plain_stream(host, c2s_port, jid.split("@")[1])
    plain = UserClient(jid, password, host, c2s_port, security="plain")
    try:
        await plain.connect(timeout=3)
        result["plain_login"] = "logged in"
    except LoginFailed as exc:
        result["plain_login"] = f"refused: {exc}"
    finally:
        await plain.disconnect()
    return result


if __name__ == "__main__":
    host, jid, password, ca_file, c2s, direct = sys.argv[1:7]
    print(json.dumps(asyncio.run(main(host, jid, password, ca_file, int(c2s), int(direct)))), flush=True)
