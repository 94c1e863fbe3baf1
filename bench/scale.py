"""Scale: many agents on one service, created in steps (50, 200, 500 by default).

At each step N, on one service process (agents.maxConcurrent 50, a short idleTimeout):

* creation: AgentSupervisor.create() for the agents the step adds, each with a first task; per
  agent the time from create() to its first answer at the client (provision + login + spawn +
  one echo turn) and create() alone (provision + login). The first step creates one agent at a
  time (what one person sees), the others ``concurrency`` at once (what a crowd does to it).
  A few agents are also created through the manager's chat dialogue, as a person does.
* memory: the service's RSS (its own process: the backends are its children, not counted),
  "before" being the freshly started service with no agent, after a gc.collect().
* answers: one message to each of the N agents at once; stopped ones resume (a slot each, the
  least recently active idle agent giving way); per-agent answer time and the time for all.
* restart: Service.stop() with N agents, then a new service process restoring all N: start-up.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.client import BenchClient
from bench.dialogue import create_through_dialogue
from bench.environment import BenchEnv, ServiceProcess
from bench.stats import summarize


class Answers:
    """Remembers, per agent JID, when its answer to a given text first arrived."""

    def __init__(self, client: BenchClient) -> None:
        self.arrived: dict[tuple[str, str], int] = {}
        self._changed = asyncio.Event()
        client.listeners.insert(0, self._listen)

    def _listen(self, body: str, sender: str, arrived: int) -> bool:
        if not body.startswith("ECHO: "):
            return False
        text = body[len("ECHO: ") :].rsplit(" @", 1)[0]
        self.arrived.setdefault((sender, text), arrived)
        self._changed.set()
        return False  # only watching: other listeners (the dialogue's) still see it

    async def wait(self, keys: list[tuple[str, str]], timeout: float) -> None:
        missing = [k for k in keys if k not in self.arrived]
        try:
            async with asyncio.timeout(timeout):
                while missing:
                    self._changed.clear()
                    await self._changed.wait()
                    missing = [k for k in missing if k not in self.arrived]
        except TimeoutError:
            raise TimeoutError(f"{len(missing)} of {len(keys)} agents did not answer within {timeout:g} s") from None


async def run_scale(
    env: BenchEnv,
    steps: tuple[int, ...],
    *,
    concurrency: int = 8,
    through_dialogue: int = 3,
    max_concurrent: int = 50,
    idle_timeout_ms: int = 5_000,
    timeout: float = 300,
    what_if_patches: tuple[str, ...] = (),
    log: Any = print,
) -> dict[str, Any]:
    settings = env.settings_data(env.root / "scale-home", max_concurrent=max_concurrent, idle_timeout_ms=idle_timeout_ms)
    service = await ServiceProcess.start(env, settings)
    before_kb = service.started["rss_kb"]
    owner = await env.client("owner")
    answers = Answers(owner)
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "max_concurrent": max_concurrent,
        "idle_timeout_ms": idle_timeout_ms,
        "rss_before_kb": before_kb,
        "steps": [],
    }
    agents: list[str] = []
    try:
        dialogue = []
        for _ in range(min(through_dialogue, steps[0]) if steps else 0):
            created = await create_through_dialogue(owner, env.prosody.manager_jid, repo=env.repo.name, task="hi")
            dialogue.append(created)
            agents.append(created["jid"])
        if dialogue:
            result["dialogue"] = {
                "n": len(dialogue),
                "created_ms": summarize(d["created_ms"] for d in dialogue),
                "first_answer_ms": summarize(d["first_answer_ms"] for d in dialogue),
            }
        for index, count in enumerate(steps):
            at_once = 1 if index == 0 else concurrency
            # The first step's count is of agents created one at a time: the dialogue's come on top.
            total = count + len(dialogue) if index == 0 else count
            step, service = await _step(env, service, settings, owner, answers, agents, total, at_once, timeout, before_kb)
            result["steps"].append(step)
            log(
                f"  scale {count:>4}: creation p50 {step['creation']['first_answer_ms']['p50']:.0f} ms, "
                f"RSS +{step['rss_per_agent_kb']:.0f} kB/agent, all answered in {step['answers']['all_s']:.2f} s, "
                f"start {step['restart']['start_ms']:.0f} ms / stop {step['restart']['stop_ms']:.0f} ms"
            )
        if what_if_patches and agents:
            # The last step once more on a what-if service (same state, same agents): start-up and answers.
            await service.stop()
            service = await ServiceProcess.start(env, {**settings, "benchPatches": list(what_if_patches)}, timeout=timeout)
            what_if = {"patches": list(what_if_patches), "agents": len(agents), "start_ms": service.started["start_ms"],
                       "answers": await _answers(owner, answers, agents, "ping again", timeout)}  # fmt: skip
            result["what_if"] = what_if
            log(f"  scale {len(agents):>4}, what-if {', '.join(what_if_patches)}: all answered in "
                f"{what_if['answers']['all_s']:.2f} s, start {what_if['start_ms']:.0f} ms")  # fmt: skip
    finally:
        await service.stop()
        await owner.disconnect()
    return result


async def _step(
    env: BenchEnv,
    service: ServiceProcess,
    settings: dict[str, Any],
    owner: BenchClient,
    answers: Answers,
    agents: list[str],
    count: int,
    concurrency: int,
    timeout: float,
    before_kb: int,
) -> tuple[dict[str, Any], ServiceProcess]:
    need = max(0, count - len(agents))
    began = time.monotonic_ns()
    created = (await service.call("create", count=need, concurrency=concurrency, owner=owner.bare_jid,
                                  repo=str(env.repo), task="hi", timeout=timeout))["created"] if need else []  # fmt: skip
    new = [c["jid"] for c in created]
    await answers.wait([(jid, "hi") for jid in new], timeout)
    creation_s = (max([answers.arrived[(jid, "hi")] for jid in new], default=began) - began) / 1e9
    agents.extend(new)
    after = await service.call("stats")

    logged_before = _count_log(Path(settings["home"]) / "agentchat.log")
    answered = await _answers(owner, answers, agents, f"ping {count}", timeout)
    logged = _count_log(Path(settings["home"]) / "agentchat.log")
    # Backend starts and "stopping idle agent … to make room" lines while every agent answered once.
    answered["spawns"] = logged["spawns"] - logged_before["spawns"]
    answered["eviction_attempts"] = logged["evictions"] - logged_before["evictions"]
    stats = await service.call("stats")
    answered["running_after"], answered["rss_kb"] = stats["running"], stats["rss_kb"]

    # Restart with every agent restored.
    stop_ms = await service.stop()
    service = await ServiceProcess.start(env, settings, timeout=timeout)
    restored = service.started
    step = {
        "agents": len(agents),
        "created": len(new),
        "concurrency": concurrency,
        "creation": {
            "first_answer_ms": summarize((answers.arrived[(c["jid"], "hi")] - c["t0_ns"]) / 1e6 for c in created),
            "create_ms": summarize(c["create_ms"] for c in created),
            "all_s": creation_s,
            "per_agent_ms": creation_s * 1000 / len(new) if new else float("nan"),
        },
        "online": after["online"],
        "running": after["running"],
        "rss_kb": after["rss_kb"],
        "rss_per_agent_kb": (after["rss_kb"] - before_kb) / len(agents),
        "threads": after["threads"],
        "answers": answered,
        "restart": {
            "stop_ms": stop_ms,
            "start_ms": restored["start_ms"],
            "process_start_ms": service.wall_start_ms,
            "restored": restored["restored"],
            "online": restored["online"],
            "rss_kb": restored["rss_kb"],
        },
    }
    return step, service


def _count_log(path: Path) -> dict[str, int]:
    """Backend starts and eviction attempts the service logged so far (at INFO)."""
    counts = {"spawns": 0, "evictions": 0}
    try:
        with path.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if "agentchat.agents.slots: stopping idle agent" in line:
                    counts["evictions"] += 1
                elif "claude.driver: agent " in line and ": starting " in line:
                    counts["spawns"] += 1
    except FileNotFoundError:
        pass
    return counts


async def _answers(owner: BenchClient, answers: Answers, agents: list[str], text: str, timeout: float) -> dict[str, Any]:
    """One message to every agent at once; the stopped ones resume their session. ms per agent, s for all."""
    sent = {jid: owner.send(jid, text) for jid in agents}
    await answers.wait([(jid, text) for jid in agents], timeout)
    arrived = [answers.arrived[(jid, text)] for jid in agents]
    return {
        "ms": summarize((answers.arrived[(jid, text)] - at) / 1e6 for jid, at in sent.items()),
        "all_s": (max(arrived) - min(sent.values())) / 1e9,
    }
