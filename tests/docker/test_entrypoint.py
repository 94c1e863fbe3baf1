"""entrypoint.sh, run for real on this machine: no Docker engine runs here, so the script that the
image runs as PID 1 is started with its paths in a temp dir and its ports on free loopback ports.

A stand-in for `agentchat start` (a script that records how it was started and waits for
SIGTERM) makes the start-up and stop tests fast and independent of the service; the end-to-end
test runs the real service: a user logs in and the manager answers `help`, then a second run
over the same state changes nothing but the password it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from aiohttp import web

from agentchat.config import ENV_VARS
from agentchat.server.embedded import die_with_parent_preexec
from tests.harness.clients import LoginFailed, UserClient
from tests.harness.prosody import free_ports

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "entrypoint.sh"
PYTHON = Path(sys.executable)
DOMAIN = "localhost"
HOST = "127.0.0.1"
T = TypeVar("T")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("prosody", "prosodyctl", "openssl", "setpriv")),
    reason="needs Debian's prosody, openssl and util-linux's setpriv (make system-packages)",
)

FAKE_SERVICE = """\
#!{python}
# Stands in for `agentchat start`: records how it was started, then serves until SIGTERM.
import json, os, signal, sys
from pathlib import Path

record = {{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd(), "pid": os.getpid()}}
Path(os.environ["FAKE_RECORD"]).write_text(json.dumps(record))
# FAKE_STOP_ON_USR1: a slow shutdown: count the SIGTERMs, exit only on SIGUSR1 (from the test).
slow_stop = bool(os.environ.get("FAKE_STOP_ON_USR1"))
terms = 0
released = False


def on_term(*_):
    global terms
    terms += 1
    print(f"fake agentchat: SIGTERM #{{terms}}", flush=True)
    if not slow_stop:
        sys.exit(0)


def on_usr1(*_):
    global released
    released = True


if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGUSR1, on_usr1)
print("fake agentchat: serving", flush=True)
while not released:
    signal.pause()
print(f"fake agentchat: stopped after {{terms}} SIGTERM(s)", flush=True)
"""


# --- Running the entrypoint -------------------------------------------------------------------


class EntrypointRun:
    """One run of entrypoint.sh: its output (stdout and stderr), line by line, as it comes."""

    def __init__(self, process: asyncio.subprocess.Process, marker: str) -> None:
        self.process = process
        self.marker = marker
        self.lines: list[str] = []
        self._eof = False
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, env: dict[str, str], marker: str) -> EntrypointRun:
        process = await asyncio.create_subprocess_exec(
            str(ENTRYPOINT),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent_preexec(),  # a crashed test leaves nothing behind
        )
        return cls(process, marker)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            async with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    def _find(self, regex: re.Pattern[str]) -> re.Match[str] | None:
        for line in self.lines:
            if match := regex.search(line):
                return match
        return None

    async def expect(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first output line matching ``pattern``, waiting for it up to ``timeout`` s."""
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: self._eof or self._find(regex) is not None)
        except TimeoutError:
            raise AssertionError(f"no line matching {pattern!r} in {timeout:g} s; output:\n{self.output}") from None
        match = self._find(regex)
        if match is None:
            await self.process.wait()
            raise AssertionError(
                f"entrypoint exited ({self.process.returncode}) before printing {pattern!r}; output:\n{self.output}"
            )
        return match

    async def pid_of(self, name: str) -> int:
        pattern = {"prosody": r"Prosody ready \(pid (\d+)\)", "service": r"agentchat started \(pid (\d+)\)"}[name]
        return int((await self.expect(pattern)).group(1))

    async def while_running(self, awaitable: Awaitable[T], what: str) -> T:
        """Await ``awaitable``, failing at once with the output if the entrypoint exits first."""
        task = asyncio.ensure_future(awaitable)
        exited = asyncio.ensure_future(self.process.wait())
        await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            exited.cancel()
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 5)
        raise AssertionError(f"entrypoint exited ({self.process.returncode}) while {what}; output:\n{self.output}")

    async def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            returncode = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"entrypoint still running after {timeout:g} s; output:\n{self.output}") from None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 5)
        return returncode

    async def close(self) -> None:
        """Teardown: whatever the test did, nothing of this run survives it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        for pid, _ in processes_mentioning(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def processes_mentioning(marker: str) -> list[tuple[int, str]]:
    """Live (not zombie) processes whose command line contains ``marker`` (a test's temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append((int(entry.name), cmdline.strip()))
    return found


async def wait_gone(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """Wait for a process that is not our child to exit (pidfd: an event, not polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
    try:
        await asyncio.wait_for(exited, timeout)
    except TimeoutError:
        raise AssertionError(f"process {pid} still alive {timeout:g} s later") from None
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# --- Environment ------------------------------------------------------------------------------


def entrypoint_env(tmp: Path, **overrides: str | None) -> dict[str, str]:
    """The entrypoint's environment: paths under ``tmp``, free ports, none of this machine's settings."""
    c2s, direct_tls, http, mcp, https = free_ports(5)
    ours = ("AGENTCHAT_", "XMPP_", "PROSODY_", "MANAGER_", "SERVICE_", "FAKE_")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and not k.startswith(ours)}
    env.update(
        PATH=f"{PYTHON.parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(tmp / "home"),
        PYTHON=str(PYTHON),
        AGENTCHAT_BIN=str(PYTHON.parent / "agentchat"),
        AGENTCHAT_HOME=str(tmp / "state"),
        WORK_BASE_PATH=str(tmp / "work"),
        XMPP_DOMAIN=DOMAIN,
        # No MANAGER_ALLOWED_USERS: the entrypoint lets every account of its own Prosody's domain in.
        XMPP_BIND=HOST,
        XMPP_PORT=str(c2s),
        XMPP_DIRECT_TLS_PORT=str(direct_tls),
        PROSODY_HTTP_PORT=str(http),
        XMPP_HTTPS_PORT=str(https),
        MCP_PORT=str(mcp),
        PROSODY_STOP_TIMEOUT="5",
        SERVICE_STOP_TIMEOUT="15",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def with_fake_service(tmp: Path, env: dict[str, str]) -> Path:
    """Point the entrypoint at the stand-in service; returns the file it records its start in."""
    script = tmp / "fake-agentchat"
    script.write_text(FAKE_SERVICE.format(python=PYTHON))
    script.chmod(0o755)
    env["AGENTCHAT_BIN"] = str(script)
    env["FAKE_RECORD"] = str(tmp / "fake-record.json")
    return tmp / "fake-record.json"


@pytest.fixture
async def runs(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, str]], Awaitable[EntrypointRun]]]:
    """Starts entrypoint runs for a test; at teardown, nothing any of them started survives."""
    started: list[EntrypointRun] = []

    async def start(env: dict[str, str]) -> EntrypointRun:
        run = await EntrypointRun.start(env, marker=str(tmp_path))
        started.append(run)
        return run

    yield start
    for run in started:
        await run.close()


# --- Clients ----------------------------------------------------------------------------------


def tls_client(username: str, password: str, port: int, *, direct_tls: bool = False) -> UserClient:
    """A harness client over STARTTLS (or direct TLS): c2s here refuses plaintext, like the image."""
    client = UserClient(f"{username}@{DOMAIN}", password, HOST, port)
    client.xmpp.enable_plaintext = False
    client.xmpp.enable_starttls = not direct_tls
    client.xmpp.enable_direct_tls = direct_tls
    client.xmpp.ssl_context.check_hostname = False  # the certificate is the generated self-signed one
    client.xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    return client


async def can_log_in(username: str, password: str, port: int, *, direct_tls: bool = False) -> bool:
    client = tls_client(username, password, port, direct_tls=direct_tls)
    try:
        await client.connect(timeout=10)
    except LoginFailed:
        return False
    finally:
        await client.disconnect()
    return True


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def prosody_option(config_text: str, name: str) -> str:
    match = re.search(rf"^{name} = (.*?)(?:\s*--.*)?$", config_text, re.MULTILINE)
    assert match, f"{name} not in the Prosody config"
    return match.group(1)


async def run_command(*argv: str, env: dict[str, str], timeout: float = 30, stdin: bytes | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", "replace")


def assert_in_order(output: str, *fragments: str) -> None:
    """Each fragment occurs exactly once in ``output``, and in this order."""
    positions = []
    for fragment in fragments:
        assert output.count(fragment) == 1, f"{fragment!r} occurs {output.count(fragment)} times in:\n{output}"
        positions.append(output.index(fragment))
    assert positions == sorted(positions), f"not in the order {fragments} in:\n{output}"


async def assert_nothing_left(run: EntrypointRun, *pids: int) -> None:
    for pid in pids:
        assert not alive(pid), f"process {pid} outlived the entrypoint; output:\n{run.output}"
    assert processes_mentioning(run.marker) == [], run.output


# --- Start-up and stop, with the stand-in service -------------------------------------------


async def test_container_defaults_generate_secrets_tls_and_configs_then_sigterm_stops_both(tmp_path, runs):
    # XMPP_BIND unset: c2s on every interface, as in the image, so plaintext must be off.
    env = entrypoint_env(tmp_path, XMPP_BIND=None, XMPP_ADMIN_PASSWORD="admin", MANAGER_PASSWORD=None)
    record_file = with_fake_service(tmp_path, env)
    state = tmp_path / "state"
    run = await runs(env)
    prosody_pid = await run.pid_of("prosody")
    service_pid = await run.pid_of("service")
    await run.expect("fake agentchat: serving")

    # Defaults are never used: both passwords are generated, printed once, kept 0600.
    secrets = read_json(state / "secrets.json")
    admin_pw, manager_pw = secrets["admin_password"], secrets["manager_password"]
    assert {admin_pw, manager_pw}.isdisjoint({"admin", "manager", ""})
    assert run.output.count(admin_pw) == 1 and run.output.count(manager_pw) == 1
    assert "well-known default 'admin'" in run.output
    assert stat.S_IMODE((state / "secrets.json").stat().st_mode) == 0o600

    # The service config: effective values, TLS to Prosody over loopback, the shared JIDs file.
    config_path = state / "config.json"
    config = read_json(config_path)
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert config["xmpp"] | {"port": None} == {
        "host": HOST, "port": None, "domain": DOMAIN, "adminUsername": "admin", "adminPassword": admin_pw,
        "security": "starttls", "verifyTls": False,
    }
    assert config["manager"] == {"username": "manager", "password": manager_pw}
    assert config["mcp"]["port"] == int(env["MCP_PORT"])
    assert config["work"]["basePath"] == env["WORK_BASE_PATH"]

    # The Prosody config, from the one generator: TLS required on all interfaces, both admins.
    prosody_cfg = (state / "prosody" / "prosody.cfg.lua").read_text()
    assert prosody_option(prosody_cfg, "interfaces") == '{ "*" }'
    assert prosody_option(prosody_cfg, "c2s_require_encryption") == "true"
    assert prosody_option(prosody_cfg, "admins") == '{ "admin@localhost"; "manager@localhost" }'
    jids_file = json.loads(prosody_option(prosody_cfg, "agentchat_service_jids_file"))
    assert jids_file == config["prosody"]["serviceJidsFile"]
    assert (state / "tls" / "localhost.crt").is_file() and (state / "tls" / "localhost.key").is_file()

    # The service gets the config file, runs from the state dir, and sees no passwords.
    record = read_json(record_file)
    assert record["argv"] == ["--config", str(config_path), "start"]
    assert record["pid"] == service_pid and record["cwd"] == str(state)
    assert record["env"]["AGENTCHAT_HOME"] == str(state)
    assert not {"XMPP_ADMIN_PASSWORD", "MANAGER_PASSWORD"} & record["env"].keys()

    # Accounts: the default password is refused, the generated ones work (STARTTLS, direct TLS).
    c2s, direct_tls = int(env["XMPP_PORT"]), int(env["XMPP_DIRECT_TLS_PORT"])
    assert not await can_log_in("admin", "admin", c2s)
    assert await can_log_in("admin", admin_pw, c2s)
    assert await can_log_in("manager", manager_pw, direct_tls, direct_tls=True)

    # The healthcheck is not a port check: Prosody is up, but no MCP endpoint answers.
    returncode, output = await run_command(str(PYTHON), "-m", "agentchat.healthcheck", "--timeout", "2", env=env)
    assert returncode == 1 and "MCP endpoint" in output, output

    run.process.send_signal(signal.SIGTERM)
    assert await run.wait() == 0, run.output
    assert "Prosody stopped" in run.output
    assert not (state / "prosody" / "prosody.pid").exists()  # Prosody shut down cleanly
    await assert_nothing_left(run, prosody_pid, service_pid)


async def test_healthcheck_needs_prosody_the_mcp_endpoint_and_the_manager_online(tmp_path, runs):
    env = entrypoint_env(tmp_path)
    with_fake_service(tmp_path, env)
    run = await runs(env)
    await run.expect("fake agentchat: serving")
    manager_pw = read_json(tmp_path / "state" / "secrets.json")["manager_password"]

    async def healthcheck(timeout: float = 3) -> tuple[int, str]:
        return await run_command(str(PYTHON), "-m", "agentchat.healthcheck", "--timeout", str(timeout), env=env)

    # A stand-in MCP endpoint that refuses requests without a token, as the real one does.
    async def refuse(_: web.Request) -> web.Response:
        return web.json_response({"error": "invalid_token"}, status=401)

    app = web.Application()
    app.router.add_route("*", "/mcp", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, HOST, int(env["MCP_PORT"])).start()
    manager = tls_client("manager", manager_pw, int(env["XMPP_PORT"]))
    try:
        returncode, output = await healthcheck()
        assert returncode == 1 and "manager@localhost is not logged in" in output, output
        await manager.connect()
        returncode, output = await healthcheck()
        assert returncode == 0, output
        assert output.strip() == (
            f"healthy: c2s {HOST}:{env['XMPP_PORT']}, MCP guarded (401), manager@localhost online"
        )
    finally:
        await manager.disconnect()
        await runner.cleanup()
    returncode, output = await healthcheck()
    assert returncode == 1 and "MCP endpoint" in output, output

    run.process.send_signal(signal.SIGTERM)
    assert await run.wait() == 0, run.output
    returncode, output = await healthcheck(timeout=0.5)  # retries a refused port until then
    assert returncode == 1 and output.startswith("unhealthy: c2s:"), output


async def test_sigkill_of_the_entrypoint_leaves_no_orphan(tmp_path, runs):
    env = entrypoint_env(tmp_path)
    with_fake_service(tmp_path, env)
    run = await runs(env)
    prosody_pid = await run.pid_of("prosody")
    service_pid = await run.pid_of("service")
    await run.expect("fake agentchat: serving")

    run.process.send_signal(signal.SIGKILL)
    assert await run.wait() == -signal.SIGKILL
    # PR_SET_PDEATHSIG: Prosody gets SIGKILL, the service SIGTERM.
    await wait_gone(prosody_pid)
    await wait_gone(service_pid)
    await assert_nothing_left(run, prosody_pid, service_pid)


async def test_prosody_dying_stops_the_service_and_fails_the_entrypoint(tmp_path, runs):
    # A certificate mounted at the configured path is used, not replaced.
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=localhost", "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")],
        check=True, capture_output=True,
    )
    env = entrypoint_env(tmp_path, XMPP_TLS_CERT=str(certs / "cert.pem"), XMPP_TLS_KEY=str(certs / "key.pem"))
    with_fake_service(tmp_path, env)
    run = await runs(env)
    prosody_pid = await run.pid_of("prosody")
    service_pid = await run.pid_of("service")
    await run.expect("fake agentchat: serving")
    assert f"TLS certificate: {certs / 'cert.pem'}" in run.output
    assert not (tmp_path / "state" / "tls").exists()

    os.kill(prosody_pid, signal.SIGKILL)
    assert await run.wait() == 1, run.output
    assert "Prosody exited on its own" in run.output
    await assert_nothing_left(run, prosody_pid, service_pid)


async def test_a_service_that_ignores_sigterm_is_killed_after_its_timeout(tmp_path, runs):
    env = entrypoint_env(tmp_path, SERVICE_STOP_TIMEOUT="1", FAKE_IGNORE_TERM="1")
    with_fake_service(tmp_path, env)
    run = await runs(env)
    prosody_pid = await run.pid_of("prosody")
    service_pid = await run.pid_of("service")
    await run.expect("fake agentchat: serving")

    run.process.send_signal(signal.SIGTERM)
    assert await run.wait() == 128 + signal.SIGKILL, run.output
    assert "agentchat did not stop within 1 s: killing it" in run.output
    assert "Prosody stopped" in run.output
    await assert_nothing_left(run, prosody_pid, service_pid)


async def test_a_second_stop_signal_is_not_forwarded_to_a_service_that_is_stopping(tmp_path, runs):
    # A service that takes its time to stop must get SIGTERM once: a second one may end its
    # shutdown half-way (the entrypoint used to send it twice: its trap, then its stop step).
    env = entrypoint_env(tmp_path, FAKE_STOP_ON_USR1="1")
    with_fake_service(tmp_path, env)
    run = await runs(env)
    prosody_pid = await run.pid_of("prosody")
    service_pid = await run.pid_of("service")
    await run.expect("fake agentchat: serving")

    run.process.send_signal(signal.SIGTERM)
    await run.expect(r"fake agentchat: SIGTERM #1", timeout=5)
    run.process.send_signal(signal.SIGTERM)  # `docker stop` again, or a Ctrl-C after it
    # The trap logs the repeat; a second SIGTERM to the service (the old bug) shows at once.
    await run.expect(r"received SIGTERM again|fake agentchat: SIGTERM #2", timeout=5)
    os.kill(service_pid, signal.SIGUSR1)  # the fake's shutdown ends
    assert await run.wait() == 0, run.output
    assert "fake agentchat: stopped after 1 SIGTERM(s)" in run.output, run.output
    assert run.output.count("received SIGTERM: stopping") == 1, run.output
    assert_in_order(run.output, "fake agentchat: stopped after 1", "agentchat exited with status 0", "Prosody stopped")
    await assert_nothing_left(run, prosody_pid, service_pid)


async def test_a_bad_setting_fails_before_prosody_starts(tmp_path, runs):
    env = entrypoint_env(tmp_path, MCP_PORT="not-a-port")
    run = await runs(env)
    assert await run.wait() == 1
    assert "mcp.port" in run.output and "MCP_PORT" in run.output, run.output
    assert "Prosody ready" not in run.output
    await assert_nothing_left(run)


# --- End to end, with the real service ----------------------------------------------------------


async def test_service_answers_help_and_a_second_run_over_the_same_state_is_idempotent(tmp_path, runs):
    state = tmp_path / "state"
    manager_jid = f"manager@{DOMAIN}"
    env = entrypoint_env(tmp_path, XMPP_ADMIN_PASSWORD="admin", MANAGER_PASSWORD="manager")
    c2s, direct_tls = int(env["XMPP_PORT"]), int(env["XMPP_DIRECT_TLS_PORT"])

    # First run: fresh state.
    run = await runs(env)
    prosody_pid = await run.pid_of("prosody")
    service_pid = await run.pid_of("service")
    prosody_cfg = state / "prosody" / "prosody.cfg.lua"
    returncode, output = await run_command(
        "prosodyctl", "--config", str(prosody_cfg), "register", "alice", DOMAIN, env=env, stdin=b"alice-pw\nalice-pw\n"
    )
    assert returncode == 0, output
    alice = tls_client("alice", "alice-pw", c2s)
    try:
        await run.while_running(alice.connect(), "alice logged in")
        await alice.send(manager_jid, "help")  # kept offline until the manager is online
        reply = await run.while_running(
            alice.expect("help", timeout=START_TIMEOUT, from_=manager_jid), "waiting for the manager's help"
        )
    finally:
        await alice.disconnect()
    assert "new" in reply.body, reply.body

    # The image's HEALTHCHECK passes once the manager is online.
    returncode, output = await run_command(str(PYTHON), "-m", "agentchat.healthcheck", env=env)
    assert returncode == 0 and output.startswith("healthy:"), f"{output}\n--- entrypoint:\n{run.output}"

    # The README's way of adding a user works against this layout.
    returncode, output = await run_command(
        str(PYTHON.parent / "agentchat"), "user", "add", "bob", "--password", "bob-pw", env=env
    )
    assert returncode == 0, output
    assert await can_log_in("bob", "bob-pw", direct_tls, direct_tls=True)

    run.process.send_signal(signal.SIGTERM)
    assert await run.wait() == 0, run.output
    assert not (state / "prosody" / "prosody.pid").exists()
    await assert_nothing_left(run, prosody_pid, service_pid)

    # Second run over the same state, with a new admin password and no manager password.
    secrets = read_json(state / "secrets.json")
    before = {p: p.read_bytes() for p in (state / "secrets.json", prosody_cfg, *sorted((state / "tls").iterdir()))}
    config_before = read_json(state / "config.json")
    env2 = env | {"XMPP_ADMIN_PASSWORD": "admin-pw-changed"}
    env2.pop("MANAGER_PASSWORD")
    run2 = await runs(env2)
    prosody_pid = await run2.pid_of("prosody")
    service_pid = await run2.pid_of("service")
    alice = tls_client("alice", "alice-pw", c2s)
    try:
        await run2.while_running(alice.connect(), "alice logged in again")
        await alice.send(manager_jid, "help")
        await run2.while_running(
            alice.expect("help", timeout=START_TIMEOUT, from_=manager_jid), "waiting for the manager's help"
        )
    finally:
        await alice.disconnect()
    # Nothing new was made: no password shown, no certificate, the same files byte for byte.
    assert "shown this once" not in run2.output and "generated a self-signed" not in run2.output, run2.output
    assert "manager@localhost keeps its generated password" in run2.output
    assert {p: p.read_bytes() for p in before} == before
    config_after = read_json(state / "config.json")
    assert config_after["xmpp"].pop("adminPassword") == "admin-pw-changed"
    config_before["xmpp"].pop("adminPassword")
    assert config_after == config_before
    # The changed password is applied; the generated one no longer works.
    assert await can_log_in("admin", "admin-pw-changed", c2s)
    assert not await can_log_in("admin", secrets["admin_password"], c2s)
    assert await can_log_in("bob", "bob-pw", c2s)

    # SIGKILL of the entrypoint: the real service and Prosody still go.
    run2.process.send_signal(signal.SIGKILL)
    await run2.wait()
    await wait_gone(prosody_pid)
    await wait_gone(service_pid)
    await assert_nothing_left(run2, prosody_pid, service_pid)


async def test_the_real_service_stops_once_and_in_order_when_signalled_again_while_stopping(tmp_path, runs):
    # `docker stop` signals the entrypoint; a terminal's Ctrl-C or `kill` can reach the service
    # too. A repeated SIGTERM or SIGINT while it stops is logged and ignored, never fatal.
    env = entrypoint_env(tmp_path)
    run = await runs(env)
    prosody_pid = await run.pid_of("prosody")
    service_pid = await run.pid_of("service")
    await run.expect("Listening for messages")

    run.process.send_signal(signal.SIGTERM)
    await run.expect(r"Agent Chat Service stopping\.\.\.", timeout=STOP_TIMEOUT)
    os.kill(service_pid, signal.SIGTERM)
    os.kill(service_pid, signal.SIGINT)
    run.process.send_signal(signal.SIGTERM)
    assert await run.wait() == 0, run.output
    assert_in_order(
        run.output,
        "entrypoint: received SIGTERM: stopping",
        "Agent Chat Service stopping...",
        "Agent Chat Service stopped",
        "entrypoint: agentchat exited with status 0",
        "entrypoint: Prosody stopped",
    )
    assert re.search(r"SIG(TERM|INT) while stopping: ignored", run.output), run.output
    assert "Traceback" not in run.output, run.output
    assert not (tmp_path / "state" / "prosody" / "prosody.pid").exists()
    await assert_nothing_left(run, prosody_pid, service_pid)
