"""`agentchat start --embedded-prosody --public` on a "server" reached from a "phone" on another
machine: two network namespaces joined by a veth pair (recipes §3), unique names per run."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.embedded_process import Running, service_env

REPO = Path(__file__).resolve().parents[2]
SERVER_ADDRESS, PHONE_ADDRESS = "10.200.0.1", "10.200.0.2"
DOMAIN = "chat.test"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="network namespaces need root and iproute2 (`ip`)",
)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def machines() -> Iterator[tuple[str, str]]:
    """Two namespaces, "server" and "phone", on one link; nothing reaches the host's network."""
    suffix = secrets.token_hex(3)
    server, phone = f"acsrv{suffix}", f"acph{suffix}"
    created: list[str] = []
    try:
        for name in (server, phone):
            ip("netns", "add", name)
            created.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        ip("-n", server, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        ip("-n", server, "link", "set", "peer0", "netns", phone)
        ip("-n", phone, "link", "set", "peer0", "name", "eth0")
        for name, address in ((server, SERVER_ADDRESS), (phone, PHONE_ADDRESS)):
            ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
        yield server, phone
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


async def test_a_phone_on_another_machine_logs_in_with_tls_and_plaintext_is_refused(machines, tmp_path: Path) -> None:
    server, phone = machines
    home = tmp_path / "home"
    (home / "work" / "api").mkdir(parents=True)
    # The server's namespace is a machine of its own: the real default ports (5222, 5280, 3001) are free there.
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", server, sys.executable, "-m", "agentchat", "start", "--embedded-prosody", "--public",
        "--domain", DOMAIN, "--direct-tls-port", "5223", "--user", "alice", "--work-base-path", str(home / "work"),
        env=service_env(home), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    running = Running(process, home, 5222)
    try:
        await running.wait_for("Listening for messages...")
        text = running.text
        jid, password = running.login()
        assert jid == f"alice@{DOMAIN}"
        assert f"server {DOMAIN} port 5222, STARTTLS required (direct TLS: port 5223)" in text
        # The DNS records a phone needs, with the server's real address, and the ports to open.
        lines = [" ".join(line.split()) for line in text.splitlines()]
        for record in (f"{DOMAIN}. A {SERVER_ADDRESS}", f"_xmpp-client._tcp.{DOMAIN}. SRV 0 5 5222 {DOMAIN}.",
                       f"_xmpps-client._tcp.{DOMAIN}. SRV 0 5 5223 {DOMAIN}."):
            assert record in lines, text
        assert f"{SERVER_ADDRESS} cannot be reached from the internet" in text
        assert "Open TCP 5222, 5223 and 5281 in the firewall." in text
        assert f"or in a browser, nothing to install: https://{DOMAIN}:5281/" in text

        phone_run = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", phone, sys.executable, "-m", "tests.support.netns_client", SERVER_ADDRESS, jid,
            password, str(home / "tls" / f"{DOMAIN}.crt"), "5222", "5223",
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(phone_run.communicate(), 60)
        assert phone_run.returncode == 0, err.decode()[-3000:]
        seen = json.loads(out.decode().strip().splitlines()[-1])
        print(f"phone: STARTTLS login {seen['starttls_login_ms']} ms")
        assert "Commands" in seen["help"]  # the manager answered: its own bot logged in with TLS too
        assert seen["direct_tls"] == "ok"
        # Plaintext from another machine: STARTTLS is required and no login method is offered before it.
        features = seen["plain_features"]
        assert "<required" in features.split("urn:ietf:params:xml:ns:xmpp-tls", 1)[1].split("</starttls>")[0]
        assert "<mechanisms" not in features
        assert seen["plain_login"].startswith("refused")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                code = await process.wait()
        else:
            code = process.returncode
    assert code == 0, running.text
