"""`agentchat start --embedded-prosody` as a user runs it: a real process with its own Prosody."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from agentchat.config import ENV_VARS
from tests.harness.clients import UserClient
from tests.harness.prosody import free_ports

STARTUP_LINES = [
    "Agent Chat Service starting...",
    "Configuration loaded",
    "State loaded",
    "Agent registry initialized",
    "MCP server started on port",
    "Permission prompt tool registered",
    "Manager bot started",
    "Agent Chat Service started successfully",
    "Listening for messages...",
]
LOGIN = re.compile(r"as (\S+)\n\s+password: (\S+)")


@dataclass
class Running:
    process: asyncio.subprocess.Process
    home: Path
    port: int
    output: list[str]

    async def wait_for(self, text: str, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.output):
                line = await self.process.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise AssertionError(f"agentchat exited before {text!r}:\n{''.join(self.output)}")
                self.output.append(line.decode())

    def login(self) -> tuple[str, str]:
        match = LOGIN.search("".join(self.output))
        assert match, "".join(self.output)
        return match.group(1), match.group(2)

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest = await self.process.stdout.read()  # type: ignore[union-attr]
            self.output.append(rest.decode())
            return await self.process.wait()


async def start_embedded(home: Path) -> Running:
    c2s, http, mcp = free_ports(3)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(AGENTCHAT_HOME=str(home), XMPP_HOST="127.0.0.1", PYTHONUNBUFFERED="1")
    (home / "work" / "api").mkdir(parents=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentchat", "start", "--embedded-prosody", "--user", "alice",
        "--port", str(c2s), "--mcp-port", str(mcp), "--work-base-path", str(home / "work"),
        env={**env, "PROSODY_HTTP_PORT": str(http)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    running = Running(process, home, c2s, [])
    await running.wait_for("Listening for messages...")
    return running


def descendants(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def ask_manager_help(host: str, port: int, jid: str, password: str, *, home: Path) -> str:
    """As a phone would: STARTTLS, the server's self-signed certificate trusted (pinned) once."""
    client = UserClient(jid, password, host, port, ca_file=home / "tls" / f"{jid.split('@')[1]}.crt")
    await client.connect()
    try:
        await client.send(f"manager@{jid.split('@')[1]}", "help")
        return (await client.expect("Commands")).body
    finally:
        await client.disconnect()


async def test_run_command_serves_the_printed_user_and_stops_cleanly(tmp_path: Path) -> None:
    first = await start_embedded(tmp_path / "one")
    second = await start_embedded(tmp_path / "two")  # side by side: other home, other ports
    try:
        for running in (first, second):
            jid, password = running.login()
            assert "new" in await ask_manager_help("127.0.0.1", running.port, jid, password, home=running.home)
        log = "".join(first.output)
        positions = [log.index(line) for line in STARTUP_LINES]
        assert positions == sorted(positions), log
        secrets_file = first.home / "secrets.json"
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        prosody_pids = descendants(first.process.pid)
        assert prosody_pids, "the embedded Prosody should be a child of the service"
    finally:
        codes = [await first.stop(), await second.stop()]
    assert codes == [0, 0]
    assert "Agent Chat Service stopped" in "".join(first.output)
    assert not [pid for pid in prosody_pids if alive(pid)]
    # Secrets never reach the log file.
    _, password = first.login()
    assert password not in (first.home / "agentchat.log").read_text()


async def test_second_start_reuses_the_same_accounts(tmp_path: Path) -> None:
    running = await start_embedded(tmp_path)
    jid, password = running.login()
    assert await running.stop() == 0
    (tmp_path / "work" / "api").rmdir()
    again = await start_embedded(tmp_path)
    try:
        assert again.login() == (jid, password)
        assert "help" in await ask_manager_help("127.0.0.1", again.port, jid, password, home=again.home)
    finally:
        assert await again.stop() == 0


async def test_user_add_prints_a_working_password(tmp_path: Path) -> None:
    running = await start_embedded(tmp_path)
    try:
        env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
        env.update(AGENTCHAT_HOME=str(tmp_path), XMPP_HOST="127.0.0.1", XMPP_PORT=str(running.port))
        result = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentchat", "user", "add", "bob@localhost",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await result.communicate()
        assert result.returncode == 0, err.decode()
        password = re.search(r"password: (\S+)", out.decode()).group(1)
        assert "help" in await ask_manager_help("127.0.0.1", running.port, "bob@localhost", password, home=tmp_path)
    finally:
        await running.stop()
