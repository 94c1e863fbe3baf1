"""The embedded Prosody: one child process we own, configured, started, supervised and stopped.

The child lives in its own process group and gets SIGKILL when we die (PR_SET_PDEATHSIG), so
it never outlives agentchat, even after a SIGKILL of ours. PDEATHSIG follows the *thread* that
forked the child: start Prosody from the event loop's thread, never from a worker thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentchat.errors import ProsodyError, StateError
from agentchat.server.prosody_config import (
    ProsodyConfigParams,
    atomic_write_text,
    is_loopback_interface,
    write_prosody_config,
)
from agentchat.server.readiness import wait_for_stream_features

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
SECRETS_FILE = "secrets.json"


def die_with_parent_preexec() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive SIGKILL when the forking thread exits."""
    parent_pid = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: no dlopen in the child

    def preexec() -> None:
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(126)

    return preexec


def kill_group(pid: int, sig: int) -> bool:
    """Signal a process group led by ``pid``; False if it is already gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def listening_ports(params: ProsodyConfigParams) -> list[tuple[str, str, int]]:
    """Every (service, interface, port) this Prosody will listen on."""
    wanted = [("c2s", interface, params.c2s_port) for interface in params.c2s_interfaces]
    if params.c2s_direct_tls_port is not None:
        wanted += [("c2s direct TLS", interface, params.c2s_direct_tls_port) for interface in params.c2s_interfaces]
    wanted.append(("Prosody HTTP", params.http_interface, params.http_port))
    if params.https_port is not None:
        wanted += [("Prosody HTTPS", interface, params.https_port) for interface in params.effective_https_interfaces]
    return wanted


def check_ports_free(params: ProsodyConfigParams, extra: list[tuple[str, str, int]] | None = None) -> None:
    """Fail fast with one clear message: Prosody itself only logs a busy port and keeps running."""
    for service, interface, port in listening_ports(params) + (extra or []):
        check_port_free(service, interface, port)


def check_port_free(service: str, interface: str, port: int) -> None:
    """ProsodyError naming the port if ``interface:port`` cannot be bound right now (0: any port)."""
    if port == 0:
        return
    address = {"*": "0.0.0.0", "localhost": "127.0.0.1"}.get(interface, interface)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Prosody does: TIME_WAIT is fine
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as Prosody's "::": IPv4 stays apart
        try:
            probe.bind((address, port))
        except OSError as exc:
            shown = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
            raise ProsodyError(
                f"cannot start: the {service} port {shown} is not available ({exc.strerror}); "
                "another program (another Prosody or agentchat?) uses it: stop it or choose another port"
            ) from None


def tail(path: Path, limit: int = 2000) -> str:
    """The last ``limit`` characters of a log file, for error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def probe_host(interfaces: tuple[str, ...]) -> str:
    """An address of this machine where c2s on ``interfaces`` can be reached."""
    for interface in interfaces:
        if interface in ("*", "0.0.0.0", "localhost") or is_loopback_interface(interface):
            return "127.0.0.1" if interface in ("*", "0.0.0.0", "localhost") else interface
    first = interfaces[0]
    return "::1" if first == "::" else first


@dataclass(frozen=True)
class SupervisionPolicy:
    """How the supervisor restarts a Prosody that died on its own."""

    restart: bool = True
    first_delay: float = 0.5
    max_delay: float = 30.0
    # A run that lasted this long resets the back-off.
    stable_after: float = 60.0


class EmbeddedProsody:
    """Owns one Prosody process: ``await start()``, ``await register(...)``, ``await stop()``."""

    def __init__(
        self,
        params: ProsodyConfigParams,
        *,
        prosody_binary: str = "prosody",
        prosodyctl_binary: str = "prosodyctl",
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        supervision: SupervisionPolicy | None = None,
    ) -> None:
        self.params = params
        self._prosody_binary = prosody_binary
        self._prosodyctl_binary = prosodyctl_binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._policy = supervision or SupervisionPolicy()
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = asyncio.Lock()
        self.restarts = 0
        # Set while a started Prosody serves c2s; cleared while it is down or restarting.
        self.ready = asyncio.Event()
        self._restarted = asyncio.Condition()

    @property
    def config_path(self) -> Path:
        return self.params.config_path

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Write the config, start Prosody and return once it serves c2s; then supervise it."""
        async with self._lock:
            if self.running:
                return
            self._stopping = False
            check_ports_free(self.params)
            await asyncio.to_thread(write_prosody_config, self.params)
            await self._spawn_and_wait()
            atexit.register(self._kill_at_exit)
            self._supervisor = asyncio.create_task(self._supervise(), name=f"prosody-supervisor:{self.params.domain}")

    async def stop(self) -> None:
        """SIGTERM, wait ``stop_timeout``, then SIGKILL the group. Idempotent."""
        async with self._lock:
            self._stopping = True
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is not None:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
            await self._terminate()
            atexit.unregister(self._kill_at_exit)

    async def wait_restarted(self, restarts_before: int, timeout: float) -> None:
        """Wait until the supervisor has restarted Prosody since ``restarts`` was ``restarts_before``."""
        async with asyncio.timeout(timeout):
            async with self._restarted:
                await self._restarted.wait_for(lambda: self.restarts > restarts_before)

    async def register(self, username: str, domain: str, password: str) -> None:
        """Create or overwrite an account with ``prosodyctl register`` (no server events fire).

        The password goes to prosodyctl's prompt on stdin (twice, as it asks), never on its command
        line, where every local user could read it in ``ps``. Fine for the service's own idempotent
        accounts; use a Provisioner for anything else.
        """
        await prosodyctl_register(self.config_path, username, domain, password,
                                  prosodyctl=self._prosodyctl_binary, timeout=self._start_timeout)

    async def _spawn_and_wait(self) -> None:
        params = self.params
        stderr_path = params.run_dir / "prosody.stderr"
        stderr_file = await asyncio.to_thread(stderr_path.open, "ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                self._prosody_binary, "--config", str(self.config_path), "-F",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stderr_file,
                stderr=stderr_file,
                start_new_session=True,  # own process group: stop() signals the whole group
                preexec_fn=die_with_parent_preexec(),
            )
        except OSError as exc:
            raise ProsodyError(f"cannot run {self._prosody_binary}: {exc}") from exc
        finally:
            stderr_file.close()
        process = self._process
        started = time.monotonic()
        host = probe_host(params.c2s_interfaces)
        ready = asyncio.ensure_future(wait_for_stream_features(host, params.c2s_port, params.domain, self._start_timeout))
        exited = asyncio.ensure_future(process.wait())
        await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done() and ready.exception() is None:
            exited.cancel()
            self.ready.set()
            log.info("Prosody for %s ready in %.0f ms (pid %d, c2s %s:%d)", params.domain,
                     (time.monotonic() - started) * 1000, process.pid, host, params.c2s_port)
            return
        ready.cancel()
        exited.cancel()
        with contextlib.suppress(asyncio.CancelledError, ProsodyError):
            await ready
        reason = f"exited with {process.returncode}" if process.returncode is not None else "never became ready"
        await self._terminate()
        details = tail(stderr_path, 800) or tail(params.effective_log_file, 800)
        raise ProsodyError(f"Prosody for {params.domain} {reason}; see {params.effective_log_file}: {details}")

    async def _terminate(self) -> None:
        self.ready.clear()
        process = self._process
        if process is None or process.returncode is not None:
            return
        kill_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self._stop_timeout)
        except TimeoutError:
            log.warning("Prosody (pid %d) ignored SIGTERM for %.1f s; killing it", process.pid, self._stop_timeout)
            kill_group(process.pid, signal.SIGKILL)
            await process.wait()
        # Anything else left in the group (there should be nothing) goes too.
        kill_group(process.pid, signal.SIGKILL)

    async def _supervise(self) -> None:
        delay = self._policy.first_delay
        while True:
            process = self._process
            assert process is not None
            began = time.monotonic()
            returncode = await process.wait()
            self.ready.clear()
            if self._stopping:
                return
            last_lines = tail(self.params.effective_log_file, 400).splitlines()
            log.error("Prosody (pid %d) died unexpectedly with rc %s; last log line: %s", process.pid, returncode,
                      last_lines[-1] if last_lines else "none")
            kill_group(process.pid, signal.SIGKILL)  # leftovers of the dead group
            if not self._policy.restart:
                return
            if time.monotonic() - began >= self._policy.stable_after:
                delay = self._policy.first_delay
            while not self._stopping:
                await asyncio.sleep(delay)  # back-off between restarts, not a wait for an event
                delay = min(delay * 2, self._policy.max_delay)
                try:
                    async with self._lock:
                        if self._stopping:
                            return
                        await self._spawn_and_wait()
                except ProsodyError as exc:
                    log.error("Restarting Prosody failed, retrying in %.1f s: %s", delay, exc)
                    continue
                async with self._restarted:
                    self.restarts += 1
                    self._restarted.notify_all()
                log.warning("Prosody restarted (restart #%d, pid %s)", self.restarts, self.pid)
                break

    def _kill_at_exit(self) -> None:
        # Interpreter exit without stop(): PDEATHSIG would do it too, but only when we die.
        if self._process is not None and self._process.returncode is None:
            kill_group(self._process.pid, signal.SIGKILL)


async def prosodyctl_register(config_path: Path, username: str, domain: str, password: str, *,
                              prosodyctl: str = "prosodyctl", timeout: float = 20.0) -> None:
    """``prosodyctl register``: creates the account or silently overwrites its password; works
    whether Prosody runs or not (it writes the data directory). The password goes on stdin, never on the
    command line (where `ps` shows it). ProsodyError, password masked."""
    if "\n" in password or "\r" in password or not password:
        raise ProsodyError(f"the password for {username}@{domain} must be one non-empty line")
    process = await asyncio.create_subprocess_exec(
        prosodyctl, "--config", str(config_path), "register", username, domain,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(password_prompt_answer(password)), timeout)
    except TimeoutError:
        kill_group(process.pid, signal.SIGKILL)
        await process.wait()
        raise ProsodyError(f"prosodyctl register {username}@{domain} timed out") from None
    if process.returncode != 0:
        text = output.decode("utf-8", "replace").replace(password, "********").strip()
        raise ProsodyError(f"prosodyctl register {username}@{domain} failed (rc {process.returncode}): {text}")


def password_prompt_answer(password: str) -> bytes:
    """What ``prosodyctl register USER HOST`` reads on stdin without a password argument: the
    password, then again to confirm (Prosody 0.12's util.human.io.read_password)."""
    return f"{password}\n{password}\n".encode()


def ensure_service_secrets(home: Path) -> tuple[str, str]:
    """The admin and manager passwords, created once and kept in ``home/secrets.json`` (0600).

    Other keys already in the file are preserved. Blocking file I/O: call it at start-up or
    through ``asyncio.to_thread``.
    """
    path = home / SECRETS_FILE
    data: dict[str, object] = {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}; fix or remove it (accounts get new passwords)") from None
    if not isinstance(data, dict):
        raise StateError(f"{path} must hold a JSON object")
    changed = False
    for key in ("admin_password", "manager_password"):
        if not isinstance(data.get(key), str) or not data[key]:
            data[key] = secrets.token_urlsafe(24)
            changed = True
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if changed:
            atomic_write_text(path, json.dumps(data, indent=2) + "\n", mode=0o600)
        elif path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc}") from exc
    return str(data["admin_password"]), str(data["manager_password"])
