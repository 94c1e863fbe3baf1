"""`agentchat start --embedded-prosody` as a user runs it: a real process with its own Prosody."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
from pathlib import Path

from agentchat.config import ENV_VARS
from tests.harness.clients import UserClient
from tests.support.embedded_process import service_env, start_embedded

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
ROSTER_ENTRY = {"subscription": "both", "name": "agentchat manager", "groups": ["agentchat"]}


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
    client = await log_in(host, port, jid, password, home=home)
    try:
        await client.send(f"manager@{jid.split('@')[1]}", "help")
        return (await client.expect("Commands")).body
    finally:
        await client.disconnect()


async def log_in(host: str, port: int, jid: str, password: str, *, home: Path) -> UserClient:
    client = UserClient(jid, password, host, port, ca_file=home / "tls" / f"{jid.split('@')[1]}.crt")
    await client.connect()
    return client


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
    # `user add` while the server is stopped: the account is made, and it says the roster is not.
    out = await user_add(tmp_path, "carol", running.port)
    assert "manager@localhost is not in its contacts yet: the embedded Prosody is not running" in out
    carol_password = re.search(r"password: (\S+)", out).group(1)  # type: ignore[union-attr]
    (tmp_path / "work" / "api").rmdir()
    again = await start_embedded(tmp_path)
    try:
        assert again.login() == (jid, password)
        assert again.fingerprint() == running.fingerprint()  # the same certificate: no new trust prompt
        assert "help" in await ask_manager_help("127.0.0.1", again.port, jid, password, home=again.home)
        carol = await log_in("127.0.0.1", again.port, "carol@localhost", carol_password, home=tmp_path)
        assert carol.roster_item("manager@localhost") is None
        await carol.disconnect()
    finally:
        assert await again.stop() == 0


async def user_add(home: Path, name: str, port: int) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentchat", "user", "add", name, env=service_env(home, XMPP_PORT=str(port)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_user_add_prints_a_working_password_and_the_manager_is_a_contact(tmp_path: Path) -> None:
    running = await start_embedded(tmp_path)
    try:
        alice_jid, alice_password = running.login()
        alice = await log_in("127.0.0.1", running.port, alice_jid, alice_password, home=tmp_path)
        # The first account found the manager in its contacts, both ways, named and grouped.
        assert alice.roster_item("manager@localhost") == ROSTER_ENTRY
        await alice.wait_until(lambda: any(p.from_.startswith("manager@localhost/") for p in alice.presences),
                               "the manager online")
        await alice.disconnect()

        out = await user_add(tmp_path, "bob@localhost", running.port)
        assert "manager@localhost is in its contacts" in out
        password = re.search(r"password: (\S+)", out).group(1)  # type: ignore[union-attr]
        bob = await log_in("127.0.0.1", running.port, "bob@localhost", password, home=tmp_path)
        try:
            assert bob.roster_item("manager@localhost") == ROSTER_ENTRY
            await bob.send("manager@localhost", "help")
            assert "Commands" in (await bob.expect("Commands")).body
        finally:
            await bob.disconnect()
        # A password of one's own, given on stdin: no command line shows it.
        chosen = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentchat", "user", "add", "carol", "--password", "-",
            env=service_env(tmp_path, XMPP_PORT=str(running.port)),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out_carol, err = await chosen.communicate(b"Carol's own 1\n")
        assert chosen.returncode == 0, err.decode()
        assert "help" in await ask_manager_help("127.0.0.1", running.port, "carol@localhost", "Carol's own 1", home=tmp_path)
    finally:
        await running.stop()


async def test_user_add_beside_a_server_started_with_domain_uses_its_domain(tmp_path: Path) -> None:
    """`start --embedded-prosody --domain chat.test`, then `user add dave` in another terminal (no flag, no
    XMPP_DOMAIN): the account is made on the domain the server serves, with the manager in its contacts."""
    running = await start_embedded(tmp_path, "--domain", "chat.test")
    try:
        out = await user_add(tmp_path, "dave", running.port)
        assert "Created dave@chat.test" in out and "manager@chat.test is in its contacts" in out, out
        password = re.search(r"password: (\S+)", out).group(1)  # type: ignore[union-attr]
        assert "help" in await ask_manager_help("127.0.0.1", running.port, "dave@chat.test", password, home=tmp_path)
    finally:
        assert await running.stop() == 0


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
            # As the other /proc readers of the suite: list, then read inside the try (a process may end
            # between the two; glob stats every entry outside it and raised ProcessLookupError).
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    self.seen.add((entry / "cmdline").read_bytes())
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
