"""EmbeddedProsody: start, register, stop, supervise, never leave a process behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentchat.errors import ProsodyError, StateError
from agentchat.server.embedded import EmbeddedProsody, SupervisionPolicy, ensure_service_secrets
from agentchat.server.prosody_config import ProsodyConfigParams
from tests.harness.clients import UserClient
from tests.harness.prosody import free_ports


def embedded(tmp_path: Path, name: str, **kwargs: object) -> EmbeddedProsody:
    c2s_port, http_port = free_ports(2)
    params = ProsodyConfigParams(
        domain="localhost", run_dir=tmp_path / name, c2s_port=c2s_port, http_port=http_port,
        admins=("admin@localhost",),
    )
    return EmbeddedProsody(params, **kwargs)  # type: ignore[arg-type]


def pid_exists(pid: int) -> bool:
    """Alive, not a zombie (an orphan's zombie lingers until PID 1 reaps it, if it ever does)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or ending while read (ESRCH)
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_pid_gone(pid: int, timeout: float) -> None:
    """Wait for any process (not only our child) to vanish, via a pidfd: no polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(fd, lambda: gone.done() or gone.set_result(None))
    try:
        await asyncio.wait_for(gone, timeout)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def login(server: EmbeddedProsody, user: str, password: str) -> None:
    # These servers have no certificate (process management is under test here): plaintext on loopback.
    client = UserClient(f"{user}@localhost", password, "127.0.0.1", server.params.c2s_port, security="plain")
    await client.connect(timeout=5)
    await client.disconnect()


async def test_two_instances_run_side_by_side_and_leave_nothing(tmp_path: Path) -> None:
    first, second = embedded(tmp_path, "one"), embedded(tmp_path, "two")
    await asyncio.gather(first.start(), second.start())
    try:
        assert first.pid != second.pid and first.running and second.running
        await asyncio.gather(first.register("bot", "localhost", "pw1"), second.register("bot", "localhost", "pw2"))
        await asyncio.gather(login(first, "bot", "pw1"), login(second, "bot", "pw2"))
        assert (tmp_path / "one" / "data").is_dir() and (tmp_path / "two" / "data").is_dir()
    finally:
        pids = [first.pid, second.pid]
        await asyncio.gather(first.stop(), second.stop())
    assert first.returncode == 0 and second.returncode == 0  # clean SIGTERM shutdown
    for pid in pids:
        assert pid is not None and not pid_exists(pid)
    await first.stop()  # idempotent


async def test_register_overwrites_and_reports_failures(tmp_path: Path) -> None:
    server = embedded(tmp_path, "reg")
    await server.start()
    try:
        await server.register("svc", "localhost", "old")
        await server.register("svc", "localhost", "new")  # silently overwrites: fine for service accounts
        await login(server, "svc", "new")
        with pytest.raises(ProsodyError, match="register") as caught:
            await server.register("bad user", "localhost", "s3cret-pw")
        assert "s3cret-pw" not in str(caught.value)
    finally:
        await server.stop()


async def test_supervisor_restarts_a_prosody_that_died(tmp_path: Path) -> None:
    server = embedded(tmp_path, "sup", supervision=SupervisionPolicy(first_delay=0.05))
    await server.start()
    try:
        await server.register("bot", "localhost", "pw")
        old_pid = server.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        await server.wait_restarted(0, timeout=10)
        assert server.restarts == 1 and server.pid != old_pid and server.ready.is_set()
        assert not pid_exists(old_pid)
        await login(server, "bot", "pw")  # accounts survive: they live in data_path
    finally:
        await server.stop()
    assert server.pid is not None and not pid_exists(server.pid)


async def test_start_failure_is_a_prosody_error_and_leaves_nothing(tmp_path: Path) -> None:
    server = embedded(tmp_path, "bad", prosody_binary=str(tmp_path / "no-such-prosody"))
    with pytest.raises(ProsodyError, match="cannot run"):
        await server.start()
    # A port that is taken: Prosody cannot serve c2s and must not be left running.
    busy = embedded(tmp_path, "busy", start_timeout=3)
    blocker = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", busy.params.c2s_port)
    try:
        with pytest.raises(ProsodyError, match="port .* is not available"):
            await busy.start()
        assert busy.pid is None
    finally:
        blocker.close()
        await blocker.wait_closed()


async def test_prosody_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: SIGKILL the Python owner and Prosody goes too (no orphan on the ports)."""
    c2s_port, http_port = free_ports(2)
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from agentchat.server.embedded import EmbeddedProsody
        from agentchat.server.prosody_config import ProsodyConfigParams
        async def main():
            server = EmbeddedProsody(ProsodyConfigParams(
                domain="localhost", run_dir=Path({str(tmp_path / "orphan")!r}),
                c2s_port={c2s_port}, http_port={http_port}))
            await server.start()
            print(server.pid, flush=True)
            await asyncio.Event().wait()
        asyncio.run(main())
    """)
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    try:
        line = await asyncio.wait_for(owner.stdout.readline(), 20)  # type: ignore[union-attr]
        prosody_pid = int(line)
        assert pid_exists(prosody_pid)
    finally:
        owner.kill()
        await owner.wait()
    await wait_pid_gone(prosody_pid, 5)
    assert not pid_exists(prosody_pid)


def test_service_secrets_are_created_once_and_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    admin, manager = ensure_service_secrets(home)
    assert admin and manager and admin != manager
    path = home / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    data["users"] = {"me": "kept"}
    path.write_text(json.dumps(data))
    path.chmod(0o644)
    assert ensure_service_secrets(home) == (admin, manager)
    assert json.loads(path.read_text())["users"] == {"me": "kept"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir()] == ["secrets.json"]


def test_corrupt_secrets_file_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "secrets.json").write_text("{not json")
    with pytest.raises(StateError, match="secrets.json"):
        ensure_service_secrets(tmp_path)


def test_config_cli_writes_the_same_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentchat.server.prosody_config", "--domain", "chat.test", "--run-dir", str(tmp_path),
         "--admin", "admin@chat.test"],
        capture_output=True, text=True, check=True,
    )
    assert Path(result.stdout.strip()) == tmp_path / "prosody.cfg.lua"
    assert 'VirtualHost "chat.test"' in (tmp_path / "prosody.cfg.lua").read_text()
    refused = subprocess.run(
        [sys.executable, "-m", "agentchat.server.prosody_config", "--domain", "chat.test", "--run-dir", str(tmp_path),
         "--c2s-interface", "127.0.0.1", "--c2s-interface", "0.0.0.0", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
        capture_output=True, text=True,
    )
    assert refused.returncode == 2 and "only allowed on loopback" in refused.stderr


@pytest.mark.parametrize("ignores_sigterm", [False, True])
async def test_a_prosody_that_never_gets_ready_is_killed(tmp_path: Path, ignores_sigterm: bool) -> None:
    # A stand-in that never serves c2s (like a root Prosody without run_as_root, G1) and,
    # in the second case, shrugs off SIGTERM: start() must fail and leave no process.
    fake = tmp_path / "fake-prosody"
    fake.write_text("#!/bin/sh\n" + ("trap '' TERM\n" if ignores_sigterm else "") + "echo starting >&2\nsleep 60 & wait\n")
    fake.chmod(0o755)
    server = embedded(tmp_path, "fake", prosody_binary=str(fake), start_timeout=0.5, stop_timeout=0.3)
    with pytest.raises(ProsodyError, match="never became ready.*starting"):
        await server.start()
    assert server.pid is not None and not pid_exists(server.pid)


async def test_harness_server_survives_kill_and_restart(isolated_prosody, user_client) -> None:
    """The fault-test helpers: kill() drops every client, start() brings the same server back."""
    alice = await user_client("alice", server=isolated_prosody)
    old_pid = isolated_prosody.pid
    assert await isolated_prosody.kill() == -signal.SIGKILL
    await alice.wait_disconnected(5)
    assert not pid_exists(old_pid)
    await isolated_prosody.start()
    again = await user_client(alice.bare_jid.split("@")[0], password=alice.xmpp.password, server=isolated_prosody,
                              create=False, unique=False)
    assert again.xmpp.boundjid.bare == alice.bare_jid  # the account survived in data_path
    await isolated_prosody.restart()  # graceful: SIGTERM, then start
    assert isolated_prosody.running
