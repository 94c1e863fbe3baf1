"""The benchmark's world: the test harness's Prosody, service accounts, the echo backend, and the
child processes (the baseline echo bot, the service) with their control channels.

Every XMPP account the benchmark logs in is listed as a service account (``mark_service``) before
its first login, so Prosody's mod_limits does not throttle it to 10 kB/s as it does humans: the
benchmark measures latency, not a rate limit (the agents' own accounts are service accounts too).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentchat.server.embedded import die_with_parent_preexec
from bench.client import BenchClient
from bench.echo_backend import write_launcher
from tests.harness.prosody import ProsodyServer
from tests.support.service import make_repositories

ROOT = Path(__file__).resolve().parent.parent


def agent_sandbox() -> dict[str, Any]:
    """As in production, agents run sandboxed (on the hub and on runners): they must see the echo backend
    (which uses the fake CLI's MCP client) and Python."""
    return {"readOnly": [str(ROOT / "bench"), str(ROOT / "tests" / "support"), os.path.realpath(sys.base_prefix)]}


@dataclass
class BenchEnv:
    prosody: ProsodyServer
    root: Path
    backend: Path
    work: Path
    _clients: list[BenchClient] = field(default_factory=list)

    @classmethod
    def start(cls) -> BenchEnv:
        """Before the event loop runs (the harness starts Prosody from synchronous code)."""
        root = Path(tempfile.mkdtemp(prefix="agentchat-bench-"))
        prosody = ProsodyServer.create(run_dir=root / "prosody")
        prosody.start_blocking()
        work = make_repositories(root / "work", ("api", "web"))
        # The interpreter itself, not the virtualenv's link to it: the agents' sandbox shows the one.
        backend = write_launcher(root, python=os.path.realpath(sys.executable))
        return cls(prosody=prosody, root=root, backend=backend, work=work)

    def close(self) -> None:
        self.prosody.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def repo(self) -> Path:
        return self.work / "api"

    async def account(self, local: str) -> tuple[str, str]:
        """A fresh service account: (JID, password)."""
        username = f"{local}-{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(12)
        await self.prosody.mark_service(username)
        await self.prosody.create_account(username, password)
        return f"{username}@{self.prosody.domain}", password

    async def client(self, local: str) -> BenchClient:
        jid, password = await self.account(local)
        client = BenchClient(jid, password, self.prosody.host, self.prosody.c2s_port)
        await client.connect()
        self._clients.append(client)
        return client

    async def disconnect_clients(self) -> None:
        for client in self._clients:
            await client.disconnect()
        self._clients.clear()

    def settings_data(
        self,
        home: Path,
        *,
        max_concurrent: int = 50,
        idle_timeout_ms: int = 3_600_000,
        permission_timeout_ms: int = 60_000,
        log_level: str = "INFO",
        patches: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """The service's settings as the JSON the service host reads."""
        prosody = self.prosody
        return {
            "home": str(home),
            "benchPatches": list(patches),
            "xmpp": {
                "host": prosody.host,
                "port": prosody.c2s_port,
                "domain": prosody.domain,
                "adminUsername": prosody.admin_jid.split("@")[0],
                "adminPassword": prosody.admin_password,
            },
            "manager": {"username": prosody.manager_jid.split("@")[0], "password": prosody.manager_password},
            "mcp": {"port": 0, "permissionTimeout": permission_timeout_ms},
            "work": {"basePath": str(self.work)},
            "agents": {
                "maxConcurrent": max_concurrent,
                "idleTimeout": idle_timeout_ms,
                "claude": {"path": str(self.backend), "env": {"HOME": str(home / "claude-home")}},
                "sandbox": agent_sandbox(),
            },
            "provisioning": {"method": "admin_rest", "adminRestUrl": prosody.admin_rest_url},
            "prosody": {"serviceJidsFile": str(prosody.service_jids.path)},
            "logging": {"level": log_level},
        }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (not its children)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def spawn_python(args: list[str], stderr_path: Path) -> asyncio.subprocess.Process:
    """A Python child of this (main) thread, killed if we die (PR_SET_PDEATHSIG)."""
    with stderr_path.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable, *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            cwd=ROOT, preexec_fn=die_with_parent_preexec(), limit=1 << 24,
        )  # fmt: skip


async def end_process(process: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    if process.stdin is not None and not process.stdin.is_closing():
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()


class EchoBotProcess:
    """The baseline's bot: bench/echo_bot.py in its own process."""

    def __init__(self, process: asyncio.subprocess.Process, jid: str) -> None:
        self.process = process
        self.jid = jid

    @classmethod
    async def start(cls, env: BenchEnv, *, via_child: bool = False) -> EchoBotProcess:
        name = "echo-child" if via_child else "echo"
        jid, password = await env.account(name)
        argv = ["-m", "bench.echo_bot", jid, password, env.prosody.host, str(env.prosody.c2s_port)]
        process = await spawn_python(argv + (["--via-child"] if via_child else []), env.root / f"{name}.stderr")
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if line.strip() != b"READY":
            raise RuntimeError(f"the echo bot did not start: {line!r}; see {env.root / f'{name}.stderr'}")
        return cls(process, jid)

    async def join(self, room: str, nick: str, timeout: float = 30) -> None:
        """Into a room (it must be a member of a members-only one), as ``nick``."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"JOIN {room} {nick}\n".encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if line.strip() != b"JOINED":
            raise RuntimeError(f"the echo bot did not join {room}: {line!r}")

    async def stop(self) -> None:
        await end_process(self.process)


class ServiceProcess:
    """The service in bench/service_host.py: start (timed), commands, RSS from outside, stop (timed)."""

    def __init__(self, process: asyncio.subprocess.Process, started: dict[str, Any], wall_ms: float) -> None:
        self.process = process
        self.started = started
        # From spawn to "started": interpreter, imports and Service.start() together.
        self.wall_start_ms = wall_ms

    @classmethod
    async def start(cls, env: BenchEnv, settings: dict[str, Any], timeout: float = 600,
                    module: str = "bench.service_host") -> ServiceProcess:
        """``module``: bench.service_host (the whole service) or bench.runner_host (a runner)."""
        home = Path(settings["home"])
        home.mkdir(parents=True, exist_ok=True)
        config = home / "bench-settings.json"
        config.write_text(json.dumps(settings), encoding="utf-8")
        began = time.perf_counter()
        process = await spawn_python(["-m", module, str(config)], home / "service-host.stderr")
        service = cls(process, {}, 0.0)
        service.started = await service._read(timeout)
        service.wall_start_ms = (time.perf_counter() - began) * 1000
        if service.started.get("event") != "started":
            raise RuntimeError(f"the service did not start: {service.started}")
        return service

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kb(self) -> int:
        from bench.service_host import rss_kb

        return rss_kb(self.process.pid)

    async def call(self, cmd: str, timeout: float = 600, **arguments: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **arguments}) + "\n").encode())
        await self.process.stdin.drain()
        answer = await self._read(timeout)
        if "error" in answer:
            raise RuntimeError(f"service host: {cmd} failed: {answer['error']}")
        return answer

    async def stop(self, timeout: float = 120) -> float:
        """Service.stop() as the service timed it, in ms."""
        assert self.process.stdin is not None
        self.process.stdin.write(b'{"cmd": "stop"}\n')
        await self.process.stdin.drain()
        answer = await self._read(timeout)
        await end_process(self.process)
        return float(answer.get("stop_ms", float("nan")))

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            code = await self.process.wait()
            raise RuntimeError(f"the service host exited with code {code} (see service-host.stderr)")
        return json.loads(line)  # type: ignore[no-any-return]
