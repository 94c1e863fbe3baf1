"""Agents spread over machines: N agents on one hub and its runners (``--runners N``; 1000 by default).

* The setup: the hub (bench/service_host.py: the whole service) and 3 runners (bench/runner_host.py), each a
  process of its own, so each one's RSS is its own as on its own machine, all through the harness's Prosody
  on loopback; the runners registered as `agentchat runner add` does.
* Creation, as people do it: the manager's `new` dialogue, 8 people at once, round robin over the 4
  machines (hub, then each runner). Each creation is timed from the person's request (the last answer of the
  dialogue) to the manager's "created" and to the agent's own "ready" greeting (account provisioned on the
  hub, the agent's bot logged in on its machine, its contact in the roster), queueing included.
* Memory: each process's RSS with no agent and once all exist, per agent it holds.
* Answers: a sample of agents on every machine answers one message (its backend starts).
* Restart: the hub stops and starts again with its share restored and the runners' agents known (the
  runners' agents stay online through it); the sample answers again; then one runner restarts with its share.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentchat.config import Settings
from agentchat.runners.registration import add_runner
from bench.client import BenchClient
from bench.environment import BenchEnv, ServiceProcess, agent_sandbox
from bench.stats import summarize
from tests.support.service import make_repositories

RUNNERS = ("r1", "r2", "r3")
PEOPLE = 8


def _hub_settings(env: BenchEnv, home: Path) -> dict[str, Any]:
    data = env.settings_data(home, max_concurrent=50, idle_timeout_ms=5_000)
    data["runners"] = {"pingInterval": 5, "pingTimeout": 10, "requestTimeout": 120}
    return data


def _runner_settings(env: BenchEnv, home: Path, jid: str, password: str, hub: str) -> dict[str, Any]:
    work = make_repositories(home / "work", ("api",))
    prosody = env.prosody
    return {
        "home": str(home),
        "xmpp": {"host": prosody.host, "port": prosody.c2s_port, "domain": prosody.domain},
        "runner": {"jid": jid, "password": password, "hub": hub},
        "mcp": {"port": 0, "permissionTimeout": 60_000},
        "work": {"basePath": str(work)},
        "agents": {"maxConcurrent": 50, "idleTimeout": 5_000,
                   "claude": {"path": str(env.backend), "env": {"HOME": str(home / "claude-home")}},
                   "sandbox": agent_sandbox()},
        "logging": {"level": "INFO"},
    }  # fmt: skip


async def _create(person: BenchClient, manager: str, machine: str, repo: str, timeout: float) -> dict[str, Any]:
    async def step(text: str, reply: str) -> tuple[str, int, int]:
        answer = person.expect(lambda b, s: s == manager and reply in b)
        sent = person.send(manager, text)
        body, arrived = await asyncio.wait_for(answer, timeout)
        return body, sent, arrived

    await step("new", "Which machine?")
    await step(machine, "Which type?")
    await step("1", "Which repository?")
    await step(repo, "first task")
    ready = person.expect(lambda b, s: b.startswith("👋 ") and " ready in " in b)
    body, asked, created = await step("skip", "created. Chat at")
    greeted_body, greeted = await asyncio.wait_for(ready, timeout)
    return {"jid": body.split()[-1], "machine": machine, "created_ms": (created - asked) / 1e6,
            "ready_ms": (greeted - asked) / 1e6}  # fmt: skip


async def _answers(people: dict[str, BenchClient], agents: list[dict[str, Any]], text: str, timeout: float) -> dict[str, Any]:
    """One message to each agent of the sample at once; ms per answer, s for all."""
    waits = []
    began = time.monotonic_ns()
    for agent in agents:
        person, jid = people[agent["owner"]], agent["jid"]
        answer = person.expect(_echo_from(jid, text))
        waits.append((person.send(jid, text), answer))
    times = []
    for sent, answer in waits:
        _, arrived = await asyncio.wait_for(answer, timeout)
        times.append((arrived - sent) / 1e6)
    return {"ms": summarize(times), "all_s": (time.monotonic_ns() - began) / 1e9, "n": len(times)}


def _echo_from(jid: str, text: str) -> Callable[[str, str], bool]:
    return lambda body, sender: sender == jid and body.startswith(f"ECHO: {text} @")


async def run_runners(env: BenchEnv, count: int, *, sample_per_machine: int = 25, timeout: float = 300,
                      log: Any = print) -> dict[str, Any]:
    root = env.root / "runners"
    hub_settings = _hub_settings(env, root / "hub")
    hub = await ServiceProcess.start(env, hub_settings, timeout=timeout)
    registration = Settings.model_validate({k: v for k, v in hub_settings.items() if k not in ("home", "benchPatches")})
    registration.home = Path(hub_settings["home"])
    runner_settings: dict[str, dict[str, Any]] = {}
    for name in RUNNERS:
        registered = await add_runner(registration.model_copy(deep=True), name, None, None)
        await env.prosody.mark_service(registered.jid)
        runner_settings[name] = _runner_settings(env, root / name, registered.jid, registered.password, registered.hub)
    started = await asyncio.gather(*(ServiceProcess.start(env, settings, timeout=timeout, module="bench.runner_host")
                                     for settings in runner_settings.values()))  # fmt: skip
    runners = dict(zip(runner_settings, started, strict=True))
    before = {"hub": hub.started["rss_kb"], **{name: r.started["rss_kb"] for name, r in runners.items()}}
    people = {person.bare_jid: person for person in await asyncio.gather(*(env.client("person") for _ in range(PEOPLE)))}
    manager = env.prosody.manager_jid
    machines = ("hub", *RUNNERS)  # the dialogue's machine step takes the name
    result: dict[str, Any] = {"agents": count, "runners": len(RUNNERS), "people": PEOPLE, "rss_before_kb": before}
    try:
        # Creation: each person creates one after another; 8 at once; round robin over the machines.
        plan = list(zip(range(count), itertools.cycle(machines), strict=False))
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        created: list[dict[str, Any]] = []
        began = time.monotonic()

        async def person_creates(owner: str, person: BenchClient) -> None:
            while not queue.empty():
                _, machine = queue.get_nowait()
                agent = await _create(person, manager, machine, "api", timeout)
                agent["owner"] = owner
                created.append(agent)
                if len(created) % 100 == 0:
                    log(f"  runners: {len(created)}/{count} agents created ({time.monotonic() - began:.0f} s)")

        await asyncio.gather(*(person_creates(owner, person) for owner, person in people.items()))
        creation_s = time.monotonic() - began
        result["creation"] = {
            "created_ms": summarize(a["created_ms"] for a in created),
            "ready_ms": summarize(a["ready_ms"] for a in created),
            "by_machine": {m: summarize(a["created_ms"] for a in created if a["machine"] == m) for m in machines},
            "all_s": creation_s,
        }
        per_machine = {m: [a for a in created if a["machine"] == m] for m in machines}
        stats = {"hub": await hub.call("stats"), **{name: await r.call("stats") for name, r in runners.items()}}
        result["memory"] = {
            m: {"agents": len(per_machine[m]), "rss_kb": stats[m]["rss_kb"], "online": stats[m]["online"],
                "kb_per_agent": (stats[m]["rss_kb"] - before[m]) / max(len(per_machine[m]), 1)}
            for m in machines
        }  # fmt: skip
        log(f"  runners: {count} created in {creation_s:.1f} s; created p50 {result['creation']['created_ms']['p50']:.0f} ms, "
            f"p99 {result['creation']['created_ms']['p99']:.0f} ms")  # fmt: skip
        sample = [a for m in machines for a in per_machine[m][:sample_per_machine]]
        result["answers"] = await _answers(people, sample, "ping", timeout)

        # The hub restarts: its share restored, the runners' agents known (and still online on their machines).
        stop_ms = await hub.stop()
        hub = await ServiceProcess.start(env, hub_settings, timeout=timeout)
        result["hub_restart"] = {"stop_ms": stop_ms, "start_ms": hub.started["start_ms"],
                                 "process_start_ms": hub.wall_start_ms, "restored": hub.started["restored"],
                                 "online": hub.started["online"]}  # fmt: skip
        result["answers_after_hub_restart"] = await _answers(people, sample, "again", timeout)
        log(f"  runners: hub restart {hub.started['start_ms']:.0f} ms ({hub.started['restored']} restored here)")

        # One runner restarts with its share.
        name = RUNNERS[0]
        stop_ms = await runners[name].stop()
        runners[name] = await ServiceProcess.start(env, runner_settings[name], timeout=timeout, module="bench.runner_host")
        result["runner_restart"] = {"runner": name, "stop_ms": stop_ms, "start_ms": runners[name].started["start_ms"],
                                    "restored": runners[name].started["agents"], "online": runners[name].started["online"]}
        mine = [a for a in sample if a["machine"] == name]
        result["answers_after_runner_restart"] = await _answers(people, mine, "once more", timeout)
        log(f"  runners: {name} restart {runners[name].started['start_ms']:.0f} ms ({runners[name].started['agents']} restored)")
    finally:
        for person in people.values():
            await person.disconnect()
        await hub.stop()
        for runner in runners.values():
            await runner.stop()
    return result

