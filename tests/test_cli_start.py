"""`agentchat start --embedded-prosody` as a user runs it: a real process with its own Prosody."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import threading
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


async def start_embedded(home: Path, *, work: Path | None = None, cwd: Path | None = None) -> Running:
    c2s, http, mcp = free_ports(3)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(AGENTCHAT_HOME=str(home), XMPP_HOST="127.0.0.1", PYTHONUNBUFFERED="1")
    work = work or home / "work"
    (work / "api").mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentchat", "start", "--embedded-prosody", "--user", "alice",
        "--port", str(c2s), "--mcp-port", str(mcp), "--work-base-path", str(work),
        env={**env, "PROSODY_HTTP_PORT": str(http)}, cwd=cwd,
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


async def ask_manager_help(host: str, port: int, jid: str, password: str) -> str:
    client = UserClient(jid, password, host, port)
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
            assert "new" in await ask_manager_help("127.0.0.1", running.port, jid, password)
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
        assert "help" in await ask_manager_help("127.0.0.1", again.port, jid, password)
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
        assert "help" in await ask_manager_help("127.0.0.1", running.port, "bob@localhost", password)
        # A password of one's own, given on stdin: no command line shows it.
        chosen = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentchat", "user", "add", "carol", "--password", "-",
            env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await chosen.communicate(b"Carol's own 1\n")
        assert chosen.returncode == 0, err.decode()
        assert "help" in await ask_manager_help("127.0.0.1", running.port, "carol@localhost", "Carol's own 1")
    finally:
        await running.stop()


class CommandLines:
    """Every command line on the machine, polled from /proc while it runs (what `ps` would show)."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> CommandLines:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            for path in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    self.seen.add(path.read_bytes())
                except OSError:
                    pass

    def holding(self, secret: str) -> list[str]:
        return [line.replace(b"\0", b" ").decode(errors="replace") for line in self.seen if secret.encode() in line]


def modes(home: Path) -> dict[str, str]:
    """The mode of the state directory and of everything agentchat made in it (Prosody's own data aside)."""
    paths = [home, *home.glob("*"), home / "prosody", home / "prosody" / "prosody.cfg.lua"]
    return {str(path.relative_to(home)): oct(path.stat().st_mode & 0o777) for path in paths if path.exists()}


async def test_a_fresh_start_is_private_reads_no_dot_env_from_here_and_shows_no_password(tmp_path: Path) -> None:
    home = tmp_path / "state"  # does not exist yet: the first start makes it
    checkout = tmp_path / "checkout"  # a directory an agent could write, with a .env planted in it
    checkout.mkdir()
    (checkout / ".env").write_text("XMPP_DOMAIN=evil.test\nCLAUDE_PATH=/tmp/evil-claude\n")
    with CommandLines() as command_lines:
        running = await start_embedded(home, work=tmp_path / "work", cwd=checkout)
    try:
        jid, _ = running.login()
        assert jid == "alice@localhost", "the .env of the current directory was read"
        output = "".join(running.output)
        assert f"ignoring {checkout / '.env'}" in output, output
        stored = json.loads((home / "secrets.json").read_text())
        for secret in (stored["admin_password"], stored["manager_password"], *stored["users"].values()):
            assert command_lines.holding(secret) == [], "a password was on a command line"
        assert any(b"prosodyctl" in line for line in command_lines.seen), "the poller must have seen prosodyctl run"
        found = modes(home)
        assert found["."] == "0o700", found
        loose = {path: mode for path, mode in found.items() if path != "." and mode not in ("0o600", "0o700")}
        assert loose == {}, found
    finally:
        assert await running.stop() == 0
    # Loosened later: the next start says so, and how to fix it.
    home.chmod(0o755)
    again = await start_embedded(home, work=tmp_path / "work", cwd=checkout)
    try:
        assert f"{home} is readable by other local users (mode 755)" in "".join(again.output)
        assert f"chmod 700 {home}" in "".join(again.output)
    finally:
        assert await again.stop() == 0


async def test_start_on_a_shared_server_needs_manager_allowed_users(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(AGENTCHAT_HOME=str(tmp_path), XMPP_ADMIN_PASSWORD="a-long-admin-secret", MANAGER_PASSWORD="a-long-manager-secret")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentchat", "start", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    message = err.decode()
    assert "manager.allowedUsers is not set" in message and '"allowedUsers": ["alice@example.org"' in message, message
    assert "MANAGER_ALLOWED_USERS=" in message
