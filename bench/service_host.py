"""The whole agentchat service in a process of its own, driven over a JSON-lines control channel.

Why a separate process: its RSS is then the service's alone (the measuring client, Prosody and the
backends, which are the service's children, are other processes), and the client and the service
do not share an event loop or a GIL, as on a real deployment. Latency is measured from outside,
with CLOCK_MONOTONIC, which every process of the machine shares.

``python -m bench.service_host SETTINGS.json`` starts the service (timing ``Service.start()``,
which restores every agent of the state database) and prints one JSON line per event on stdout:
``{"event": "started", ...}``, then one answer per command read from stdin:

    {"cmd": "create", "count": N, "concurrency": C, "owner": JID, "repo": PATH, "task": TEXT}
        AgentSupervisor.create() N times, at most C at once; per agent: id, jid, t0_ns, create_ms
    {"cmd": "stats"}          agents, bots online, backends running, RSS (after gc.collect())
    {"cmd": "profile_start", "interval": S} / {"cmd": "profile_stop", "path": P}
        pyinstrument on this process's event loop thread; the text report goes to P
    {"cmd": "stop"}           Service.stop(), timed; then the process exits

Logging goes to stderr and ``<home>/agentchat.log`` at the configured level, as ``agentchat start``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agentchat.app import Service
from agentchat.config import Settings
from agentchat.logs import setup_logging


def rss_kb(pid: int | None = None) -> int:
    """Resident set size of a process in kB (VmRSS), the service's alone: children are not counted."""
    with open(f"/proc/{pid or os.getpid()}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Host:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service = Service(settings)
        self.profiler: Any = None

    def say(self, answer: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

    async def run(self, profile_start: str | None = None) -> None:
        if profile_start:
            await self.cmd_profile_start()
        started = time.perf_counter()
        await self.service.start()
        start_ms = (time.perf_counter() - started) * 1000
        if profile_start:
            await self.cmd_profile_stop(profile_start)
        supervisor = self.service.supervisor
        assert supervisor is not None
        self.say({"event": "started", "start_ms": start_ms, "restored": len(supervisor.all()), "pid": os.getpid(),
                  "manager": self.settings.manager_jid, **self.stats()})  # fmt: skip
        try:
            await self.serve_commands()
        finally:
            stopping = time.perf_counter()
            await self.service.stop()
            self.say({"event": "stopped", "stop_ms": (time.perf_counter() - stopping) * 1000})

    async def serve_commands(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = json.loads(line)
            name = command.pop("cmd")
            if name == "stop":
                return
            try:
                answer = await getattr(self, f"cmd_{name}")(**command)
            except Exception as exc:  # noqa: BLE001 - reported to the driver, which fails the benchmark with it
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            self.say(answer)

    def stats(self) -> dict[str, Any]:
        supervisor = self.service.supervisor
        agents = supervisor.all() if supervisor is not None else []
        online = sum(1 for a in agents if a.chat is not None and a.chat.transport.online)
        gc.collect()
        return {
            "agents": len(agents),
            "online": online,
            "running": sum(1 for a in agents if a.process_running),
            "rss_kb": rss_kb(),
            "threads": len(os.listdir("/proc/self/task")),
        }

    async def cmd_stats(self) -> dict[str, Any]:
        return self.stats()

    async def cmd_create(self, count: int, concurrency: int, owner: str, repo: str, task: str | None) -> dict[str, Any]:
        supervisor = self.service.supervisor
        assert supervisor is not None
        gate = asyncio.Semaphore(concurrency)

        async def create_one() -> dict[str, Any]:
            async with gate:
                t0 = time.monotonic_ns()
                created = await supervisor.create(owner, "claude", Path(repo), task)
                return {"id": created.agent.id, "jid": created.jid, "t0_ns": t0, "create_ms": (time.monotonic_ns() - t0) / 1e6}

        return {"created": await asyncio.gather(*(create_one() for _ in range(count)))}

    async def cmd_profile_start(self, interval: float = 0.0005) -> dict[str, Any]:
        from pyinstrument import Profiler

        self.profiler = Profiler(interval=interval, async_mode="disabled")
        self.profiler.start()
        return {"profiling": True}

    async def cmd_profile_stop(self, path: str, top: int = 15) -> dict[str, Any]:
        profiler, self.profiler = self.profiler, None
        session = profiler.stop()
        Path(path).write_text(profiler.output_text(unicode=False, color=False, show_all=False), encoding="utf-8")
        return {"profile": path, "duration_s": session.duration, "samples": session.sample_count,
                **summarize_profile(session.root_frame(), top)}  # fmt: skip


def summarize_profile(root: Any, top: int) -> dict[str, Any]:
    """Seconds per function of the event loop thread: self time (where the CPU goes) and inclusive
    time of agentchat's own functions; the time the loop sat idle in select() is apart."""
    own: dict[str, float] = {}
    inclusive: dict[str, float] = {}
    idle = 0.0

    def name(frame: Any) -> str:
        return f"{frame.function} ({frame.file_path_short}:{frame.line_no})"

    def walk(frame: Any, stack: frozenset[str]) -> None:
        nonlocal idle
        for child in frame.children:
            if child.function == "select" and "selectors" in (child.file_path or ""):
                idle += child.time  # the loop waiting for I/O
                continue
            if child.is_synthetic:
                own[name(frame)] = own.get(name(frame), 0.0) + child.time
                continue
            key = name(child)
            if "agentchat" in (child.file_path or "") and key not in stack:
                inclusive[key] = inclusive.get(key, 0.0) + child.time
            walk(child, stack | {key})

    if root is not None:
        walk(root, frozenset())
    total = root.time if root is not None else 0.0

    def ranked(table: dict[str, float]) -> list[list[Any]]:
        return [[key, seconds] for key, seconds in sorted(table.items(), key=lambda kv: -kv[1])[:top]]

    return {"total_s": total, "idle_s": idle, "self_time": ranked(own), "agentchat_inclusive": ranked(inclusive)}


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    home = Path(data.pop("home"))
    patches = data.pop("benchPatches", [])
    profile_start = data.pop("benchProfileStart", None)
    settings = Settings.model_validate(data)
    settings.home = home
    setup_logging(settings.logging.level, home / "agentchat.log")
    for patch in patches:
        WHAT_IFS[patch]()
    asyncio.run(Host(settings).run(profile_start))


# What-ifs: never the shipped behaviour, only there to show what one thing costs.


def _synchronous_full() -> None:
    """An fsync per commit (synchronous=FULL; shipped: NORMAL, safe against kill -9 in WAL mode)."""
    from agentchat.store import database

    shipped_connect = database._connect

    def connect_full(path: Path) -> Any:
        connection = shipped_connect(path)
        connection.execute("PRAGMA synchronous=FULL")
        return connection

    database._connect = connect_full


def _announce_busy_at_once() -> None:
    """Presence and "composing" at the very start of every turn, however short (shipped: after 250 ms)."""
    from agentchat.bots.agent import bot as agent_bot

    agent_bot.ANNOUNCE_BUSY_AFTER = 0.0


def _no_inbound_record() -> None:
    """Messages from people neither recorded nor deduplicated before they are handled, and none of their
    states written (shipped: recorded before acknowledged, so that a crash loses none and a copy that comes
    again is not run twice)."""
    import itertools

    from agentchat.store.database import StateStore

    ids = itertools.count(1_000_000_000)

    async def not_recorded(self: StateStore, bot: str, arrivals: Any) -> list[int | None]:
        return [next(ids) for _ in arrivals]

    async def not_written(self: StateStore, record_id: int, state: Any = None) -> None:
        return None

    async def not_marked(self: StateStore, agent: Any, message_id: int | None) -> None:
        await self.save_agent(agent)

    StateStore.record_arrivals = not_recorded  # type: ignore[method-assign]
    StateStore.set_inbound_state = not_written  # type: ignore[method-assign]
    StateStore.finish_inbound = not_written  # type: ignore[method-assign]
    StateStore.finish_turn = not_marked  # type: ignore[method-assign]


WHAT_IFS = {
    "sqlite-synchronous-full": _synchronous_full,
    "announce-busy-at-once": _announce_busy_at_once,
    "no-inbound-record": _no_inbound_record,
}


if __name__ == "__main__":
    main()
