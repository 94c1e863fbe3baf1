"""A real Prosody for tests: free loopback ports, a temp dir, the production config generator.

The server is a ``subprocess.Popen`` child (not an asyncio one) so that a session-scoped
instance outlives the per-test event loops. It can never outlive the test process: its own
process group, PR_SET_PDEATHSIG=SIGKILL, an atexit hook and the fixture finalizer.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agentchat.errors import ProsodyError
from agentchat.server.embedded import die_with_parent_preexec, kill_group, password_prompt_answer, tail
from agentchat.server.prosody_config import ProsodyConfigParams, ServiceJids, write_prosody_config
from agentchat.server.readiness import wait_for_stream_features
from tests.harness.certs import local_ca

T = TypeVar("T")

HOST = "127.0.0.1"
DOMAIN = "localhost"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

_live: set[ProsodyServer] = set()


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on loopback (held open together so they differ); never 5222."""
    sockets = []
    try:
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            if sock.getsockname()[1] in (5222, 5269, 5280, 5281):
                sock.close()
                continue
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_coroutine_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous fixture code on a private loop in a helper thread.

    Keeps pytest-asyncio's loops untouched. Never spawn a child from here: PDEATHSIG would
    kill it when the helper thread exits.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass(eq=False)
class ProsodyServer:
    """One test Prosody. Sync methods are for fixtures, async ones for tests."""

    params: ProsodyConfigParams
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    manager_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    process: subprocess.Popen[bytes] | None = None
    start_ms: float = 0.0
    host: str = HOST

    @classmethod
    def create(cls, run_dir: Path | None = None, **overrides: Any) -> ProsodyServer:
        """Parameters for a fresh instance (not started). ``overrides`` go to ProsodyConfigParams.

        The server has a certificate for its domain signed by the run's test CA (``ca_file``), so
        clients use STARTTLS with verification as phones do; plaintext stays allowed on loopback.
        """
        run_dir = run_dir or Path(tempfile.mkdtemp(prefix="agentchat-prosody-"))
        c2s_port, http_port = free_ports(2)
        domain = overrides.get("domain", DOMAIN)
        if "tls_cert" not in overrides:
            overrides["tls_cert"], overrides["tls_key"] = local_ca().issue(domain, run_dir / "tls")
        settings: dict[str, Any] = {
            "domain": DOMAIN,
            "run_dir": run_dir,
            "c2s_port": c2s_port,
            "http_port": http_port,
            "admins": (f"admin@{DOMAIN}", f"manager@{DOMAIN}"),
            "log_level": "info",
        }
        settings.update(overrides)
        return cls(params=ProsodyConfigParams(**settings))

    # --- what tests need to know -------------------------------------------------------------

    @property
    def domain(self) -> str:
        return self.params.domain

    @property
    def c2s_port(self) -> int:
        return self.params.c2s_port

    @property
    def http_port(self) -> int:
        return self.params.http_port

    @property
    def run_dir(self) -> Path:
        return self.params.run_dir

    @property
    def data_dir(self) -> Path:
        return self.params.data_dir

    @property
    def config_path(self) -> Path:
        return self.params.config_path

    @property
    def ca_file(self) -> Path:
        """What a client trusts to verify this server's certificate."""
        return local_ca().cert_path

    @property
    def admin_jid(self) -> str:
        return f"admin@{self.domain}"

    @property
    def manager_jid(self) -> str:
        return f"manager@{self.domain}"

    @property
    def admin_rest_url(self) -> str:
        return f"http://{self.host}:{self.http_port}/admin_rest"

    @property
    def service_jids(self) -> ServiceJids:
        return ServiceJids(self.params.effective_service_jids_file)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, limit: int = 3000) -> str:
        return tail(self.params.effective_log_file, limit)

    # --- life cycle: sync (fixtures) ---------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def started(cls, run_dir: Path | None = None, **overrides: Any) -> Iterator[ProsodyServer]:
        """A fresh instance (see create), started; stopped and removed at the end, also if it failed to start."""
        server = cls.create(run_dir, **overrides)
        try:
            server.start_blocking()
            yield server
        finally:
            server.cleanup()

    def start_blocking(self) -> None:
        """Write the config, start, wait for stream features, (re)create admin and manager."""
        write_prosody_config(self.params)
        self._spawn()
        started = time.monotonic()
        self._check_ready(run_coroutine_blocking(self._wait_ready()))
        self.start_ms = (time.monotonic() - started) * 1000
        for user, password in (("admin", self.admin_password), ("manager", self.manager_password)):
            self._register_blocking(user, password)

    def stop_blocking(self) -> None:
        """SIGTERM, wait, SIGKILL; remove nothing (see cleanup)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            kill_group(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                kill_group(process.pid, signal.SIGKILL)
                process.wait()
        kill_group(process.pid, signal.SIGKILL)
        _live.discard(self)

    def cleanup(self) -> None:
        self.stop_blocking()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def create_account_blocking(self, username: str, password: str) -> None:
        self._register_blocking(username, password)

    # --- life cycle: async (tests) -----------------------------------------------------------

    async def start(self) -> None:
        """Start a stopped or killed server again and wait until it serves c2s."""
        if self.running:
            raise ProsodyError("test Prosody is already running")
        # Popen forks from the loop thread on purpose: PDEATHSIG is bound to the forking thread.
        self._spawn()
        self._check_ready(await self._wait_ready())

    async def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the server's group and wait for it to exit; return its exit status."""
        process = self.process
        if process is None or process.poll() is not None:
            raise ProsodyError("test Prosody is not running")
        kill_group(process.pid, sig)
        returncode = await asyncio.to_thread(process.wait, STOP_TIMEOUT)
        kill_group(process.pid, signal.SIGKILL)
        _live.discard(self)
        return returncode

    async def stop(self) -> int:
        """Graceful stop (SIGTERM); clients get <system-shutdown/>."""
        return await self.kill(signal.SIGTERM)

    async def restart(self, *, graceful: bool = True) -> None:
        if self.running:
            await self.kill(signal.SIGTERM if graceful else signal.SIGKILL)
        await self.start()

    async def create_account(self, username: str, password: str) -> None:
        """``prosodyctl register``: creates or silently overwrites; fires no server events."""
        process = await asyncio.create_subprocess_exec(
            *self._register_argv(username),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(password_prompt_answer(password)), START_TIMEOUT)
        if process.returncode != 0:
            raise ProsodyError(f"prosodyctl register {username} failed: {output.decode(errors='replace')}")

    async def mark_service(self, *usernames: str) -> None:
        """List accounts as service accounts (not throttled) before they log in."""
        await self.service_jids.add(*(u if "@" in u else f"{u}@{self.domain}" for u in usernames))

    # --- internals ---------------------------------------------------------------------------

    def _spawn(self) -> None:
        stderr_path = self.run_dir / "prosody.stderr"
        with stderr_path.open("ab") as stderr_file:
            self.process = subprocess.Popen(
                ["prosody", "--config", str(self.config_path), "-F"],
                stdin=subprocess.DEVNULL,
                stdout=stderr_file,
                stderr=stderr_file,
                start_new_session=True,
                preexec_fn=die_with_parent_preexec(),
            )
        _live.add(self)

    async def _wait_ready(self) -> BaseException | None:
        try:
            await wait_for_stream_features(self.host, self.c2s_port, self.domain, START_TIMEOUT)
        except ProsodyError as exc:
            return exc
        return None

    def _check_ready(self, failure: BaseException | None) -> None:
        if failure is None:
            return
        returncode = self.process.poll() if self.process else None
        self.stop_blocking()
        raise ProsodyError(f"test Prosody did not start (rc {returncode}): {failure}\n{self.log_tail(1500)}")

    def _register_argv(self, username: str) -> list[str]:
        # The password goes on stdin (password_prompt_answer), never on a command line.
        return ["prosodyctl", "--config", str(self.config_path), "register", username, self.domain]

    def _register_blocking(self, username: str, password: str) -> None:
        result = subprocess.run(
            self._register_argv(username), input=password_prompt_answer(password), capture_output=True, timeout=START_TIMEOUT
        )
        if result.returncode != 0:
            raise ProsodyError(f"prosodyctl register {username} failed: {result.stdout!r} {result.stderr!r}")


@atexit.register
def _kill_leftovers() -> None:
    # A session that ends without its finalizers (KeyboardInterrupt, internal error).
    for server in list(_live):
        if server.process is not None:
            with contextlib.suppress(OSError):
                kill_group(server.process.pid, signal.SIGKILL)
