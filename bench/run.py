"""The whole benchmark in one command: ``python -m bench.run`` (``make bench``); ``--quick`` for a
smoke run of a few seconds. Prints the tables and writes ``bench/results/<UTC time>.json`` and
``bench/results/latest.json`` (plus the profile as text). See docs/performance.md.

The machine is shared and noisy, so every latency figure comes with its baseline from the same
run (a bare slixmpp echo bot through the same Prosody), and each is the median of several runs
whose measurements interleave: baseline, agentchat, baseline, agentchat…
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import slixmpp

from bench import latency
from bench.dialogue import create_through_dialogue
from bench.environment import (
    ROOT,
    BenchEnv,
    EchoBotProcess,
    ServiceProcess,
    cpu_seconds,
    end_process,
    spawn_python,
)
from bench.report import render, run_ratios, targets
from bench.restart import run_restart
from bench.rooms import run_rooms
from bench.runners import run_runners
from bench.scale import run_scale
from bench.service_host import WHAT_IFS
from bench.stats import median_of_runs

T = TypeVar("T")
RESULTS = ROOT / "bench" / "results"
# The shipped service against its two last changes undone, in the same run (docs/performance.md).
WHAT_IF_DEFAULT = ("sqlite-synchronous-full", "announce-busy-at-once")


@dataclasses.dataclass(frozen=True)
class Plan:
    runs: int = 3
    messages: int = 2000  # measured round trips per run, after the warm-up
    warmup: int = 100
    singles: int = 200  # single-event turns per run
    burst: int = 1000  # events in the burst turn
    prompts: int = 200  # permission prompts per run
    prompt_warmup: int = 10
    # The first step creates one agent at a time (what one person sees): 50 of them, so that its figure
    # has 50 samples (it had 7); the dialogue's agents come on top.
    scale: tuple[int, ...] = (50, 200, 500)
    concurrency: int = 8  # agent creations at once
    dialogue: int = 3  # created through the manager dialogue before the first step
    floor_clients: int = 100
    profile_messages: int = 500
    # Also run agentchat patched (bench/service_host.py WHAT_IFS) for round trips and prompts.
    what_if: tuple[str, ...] = WHAT_IF_DEFAULT
    what_if_scale: bool = False  # and the last scale step once more, patched (+1.5 min)
    restart: int = 1000  # agents on one service, restarted (bench/restart.py); 0 skips it
    runners: int = 1000  # agents on one hub and 3 runners (bench/runners.py); 0 skips it
    # Rooms (bench/rooms.py): round trips per latency mode, then a burst in a room of agents and people.
    room_round_trips: int = 200
    room_agents: int = 20
    room_people: int = 5
    room_burst: int = 500  # 0 skips the room step


QUICK = Plan(
    runs=1, messages=20, warmup=5, singles=5, burst=50, prompts=5, prompt_warmup=1,
    scale=(2, 4), concurrency=2, dialogue=1, floor_clients=3, profile_messages=20, what_if=(), restart=4, runners=4,
    room_round_trips=10, room_agents=3, room_people=2, room_burst=30,
)  # fmt: skip


async def with_cpu(pids: dict[str, int], count: int, measure: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run a measurement and add the CPU each process spent on it, per message, in ms."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_before = time.process_time()
    result = await measure
    cpu = {name: (cpu_seconds(pid) - before[name]) * 1000 / count for name, pid in pids.items()}
    cpu["client"] = (time.process_time() - client_before) * 1000 / count
    return {**result, "cpu_ms_per_message": cpu}


async def measure_latency(env: BenchEnv, plan: Plan, results_dir: Path, stamp: str, log: Callable[[str], None]) -> dict[str, Any]:
    services = {"agentchat": await ServiceProcess.start(env, env.settings_data(env.root / "latency"))}
    if plan.what_if:
        # A manager account of its own: two services on one manager JID would both answer "new".
        jid, password = await env.account("manager-whatif")
        settings = env.settings_data(env.root / "latency-what-if", patches=plan.what_if)
        settings["manager"] = {"username": jid.split("@")[0], "password": password}
        services["what_if"] = await ServiceProcess.start(env, settings)
    client = await env.client("user")
    bot = await EchoBotProcess.start(env)
    child_bot = await EchoBotProcess.start(env, via_child=True)
    # Two agents per service: the prompts' one remembers every closed prompt for an hour, and
    # looking through them costs every later message of its owner something (docs/performance.md).
    agents: dict[str, str] = {}
    prompters: dict[str, str] = {}
    for mode, service in services.items():
        agents[mode] = (await create_through_dialogue(client, service.started["manager"], repo=env.repo.name, task="hi"))["jid"]
        prompters[mode] = (await create_through_dialogue(client, service.started["manager"], repo=env.repo.name, task="hi"))["jid"]
    prosody_pid = env.prosody.pid
    assert prosody_pid is not None
    runs: list[dict[str, Any]] = []
    try:
        for run in range(plan.runs):
            log(f"  latency run {run + 1}/{plan.runs}")
            entry: dict[str, dict[str, Any]] = {"baseline": {}, "baseline_child": {}, **{mode: {} for mode in services}}
            count = plan.warmup + plan.messages
            entry["baseline"]["round_trip"] = await with_cpu(
                {"bot": bot.process.pid, "prosody": prosody_pid}, count,
                latency.round_trip(client, bot.jid, plan.messages, plan.warmup, agent=False),
            )  # fmt: skip
            entry["baseline_child"]["round_trip"] = await with_cpu(
                {"bot": child_bot.process.pid, "prosody": prosody_pid}, count,
                latency.round_trip(client, child_bot.jid, plan.messages, plan.warmup, agent=False),
            )  # fmt: skip
            for mode, service in services.items():
                entry[mode]["round_trip"] = await with_cpu(
                    {"bot": service.pid, "prosody": prosody_pid}, count,
                    latency.round_trip(client, agents[mode], plan.messages, plan.warmup, agent=True),
                )  # fmt: skip
            entry["baseline"]["events"] = await latency.event_latency(client, bot.jid, plan.singles, plan.burst, agent=False)
            entry["baseline"]["pipe_hop"] = await latency.pipe_hop(plan.singles)
            # Events go through the same code whatever the database does: the shipped service only.
            entry["agentchat"]["events"] = await latency.event_latency(client, agents["agentchat"], plan.singles, plan.burst, agent=True)
            for mode in services:
                entry[mode]["permission"] = await latency.permission_round_trip(client, prompters[mode], plan.prompts, plan.prompt_warmup)
            entry["ratios"] = run_ratios(entry)  # type: ignore[assignment]
            runs.append(entry)
            rtt = entry["agentchat"]["round_trip"]["answer"]["p50"], entry["baseline"]["round_trip"]["answer"]["p50"]
            log(f"    round trip p50 {rtt[0]:.2f} ms (baseline {rtt[1]:.2f} ms)")
        by_rule = {}
        for mode, service in services.items():
            ruled = (await create_through_dialogue(client, service.started["manager"], repo=env.repo.name, task="hi"))["jid"]
            by_rule[mode] = await latency.permission_by_rule(client, ruled, plan.prompts)
        profile = None
        if plan.profile_messages:
            log(f"  profile: {plan.profile_messages} round trips under pyinstrument")
            shipped = services["agentchat"]
            await shipped.call("profile_start")
            await latency.round_trip(client, agents["agentchat"], plan.profile_messages, 0, agent=True)
            path = results_dir / f"profile-{stamp}.txt"
            profile = await shipped.call("profile_stop", path=str(path))
            profile["messages"] = plan.profile_messages
            profile["profile"] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    finally:
        await client.disconnect()
        await bot.stop()
        await child_bot.stop()
        for service in services.values():
            await service.stop()
    median = median_of_runs(runs)
    for mode, calls in by_rule.items():
        median[mode]["permission"]["mcp_call_by_rule"] = calls
    return {"runs": runs, "median": median, "profile": profile}


async def slixmpp_floor(env: BenchEnv, clients: int, concurrency: int, tls_context: str) -> dict[str, Any]:
    settings_path = env.root / "floor-settings.json"
    settings_path.write_text(json.dumps(env.settings_data(env.root / "floor")), encoding="utf-8")
    argv = ["-m", "bench.slixmpp_floor", str(settings_path), str(clients), str(concurrency), tls_context]
    process = await spawn_python(argv, env.root / "floor.stderr")
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 300)
    await end_process(process)
    if not line:
        raise RuntimeError(f"the slixmpp floor measurement failed; see {env.root / 'floor.stderr'}")
    return json.loads(line)  # type: ignore[no-any-return]


async def run_plan(env: BenchEnv, plan: Plan, results_dir: Path, stamp: str, log: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {"what_if": list(plan.what_if)}
    log("latency: round trips, events, permission prompts")
    measured = await measure_latency(env, plan, results_dir, stamp, log)
    results["latency"] = {"runs": measured["runs"], "median": measured["median"]}
    if measured["profile"] is not None:
        results["profile"] = measured["profile"]
    if plan.room_burst:
        log(f"rooms: a mention against a direct chat; {plan.room_burst} messages from {plan.room_people} people "
            f"to {plan.room_agents} agents in one room")
        results["rooms"] = await run_rooms(env, round_trips=plan.room_round_trips, warmup=min(plan.warmup, 10),
                                           agents=plan.room_agents, people=plan.room_people, burst=plan.room_burst,
                                           log=log)  # fmt: skip
    if plan.scale:
        log(f"scale: {', '.join(map(str, plan.scale))} agents")
        results["scale"] = await run_scale(
            env, plan.scale, concurrency=plan.concurrency, through_dialogue=plan.dialogue,
            what_if_patches=plan.what_if if plan.what_if_scale else (), log=log,
        )  # fmt: skip
    if plan.restart:
        log(f"restart: {plan.restart} agents on one service")
        results["restart"] = await run_restart(env, plan.restart, log=log)
    if plan.runners:
        log(f"runners: {plan.runners} agents on a hub and 3 runners")
        results["runners"] = await run_runners(env, plan.runners, sample_per_machine=1 if plan.runners < 100 else 25,
                                               log=log)  # fmt: skip
    if plan.floor_clients and plan.scale:  # the floor goes with the scale figures
        log(f"slixmpp floor: {plan.floor_clients} bare clients, their own TLS context each, then a shared one")
        results["floor"] = await slixmpp_floor(env, plan.floor_clients, plan.concurrency, "own")
        results["floor_shared_tls"] = await slixmpp_floor(env, plan.floor_clients, plan.concurrency, "shared")
    return results


def _version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny figures, a few seconds: a smoke run")
    parser.add_argument("--runs", type=int, help=f"latency runs (default {Plan.runs}); the tables show their median")
    parser.add_argument("--messages", type=int, help=f"measured round trips per run (default {Plan.messages})")
    parser.add_argument("--scale", help="agent counts, comma-separated (default 50,200,500); 0 skips the scale test and the slixmpp floor")
    parser.add_argument("--restart", type=int, help=f"agents restarted on one service (default {Plan.restart}); 0 skips")
    parser.add_argument("--runners", type=int, help=f"agents on a hub and 3 runners (default {Plan.runners}); 0 skips")
    parser.add_argument("--rooms", type=int, help=f"messages in the room burst (default {Plan.room_burst}, to "
                        f"{Plan.room_agents} agents from {Plan.room_people} people); 0 skips the room step")
    parser.add_argument("--what-if", default=",".join(WHAT_IF_DEFAULT),
                        help=f"patches for the what-if service, comma-separated, from: {', '.join(WHAT_IFS)}; '' for none")
    parser.add_argument("--what-if-scale", action="store_true", help="also answer the last scale step on the what-if service")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON and the profile go (default bench/results)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.runs:
        plan = dataclasses.replace(plan, runs=args.runs)
    if args.messages:
        plan = dataclasses.replace(plan, messages=args.messages, warmup=min(plan.warmup, args.messages // 10 or 1))
    if args.scale is not None:
        plan = dataclasses.replace(plan, scale=tuple(int(n) for n in args.scale.split(",") if int(n) > 0))
    if not args.quick:
        patches = tuple(name for name in args.what_if.split(",") if name)
        if unknown := set(patches) - set(WHAT_IFS):
            parser.error(f"unknown what-if {', '.join(sorted(unknown))}; known: {', '.join(WHAT_IFS)}")
        plan = dataclasses.replace(plan, what_if=patches)
    if args.restart is not None:
        plan = dataclasses.replace(plan, restart=args.restart)
    if args.runners is not None:
        plan = dataclasses.replace(plan, runners=args.runners)
    if args.rooms is not None:
        plan = dataclasses.replace(plan, room_burst=args.rooms)
    if args.what_if_scale:
        plan = dataclasses.replace(plan, what_if_scale=True)
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    began = time.perf_counter()
    load_before = os.getloadavg()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f} s] {text}", file=sys.stderr, flush=True)

    env = BenchEnv.start()
    log(f"Prosody up in {env.prosody.start_ms:.0f} ms on port {env.prosody.c2s_port}")
    try:
        results = asyncio.run(run_plan(env, plan, args.output, stamp, log))
    finally:
        env.close()
    results["meta"] = {
        "utc": stamp,
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "duration_s": time.perf_counter() - began,
        "runs": plan.runs,
        "plan": dataclasses.asdict(plan),
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "python": platform.python_version(),
        "slixmpp": slixmpp.__version__,
        "prosody": _version(["dpkg-query", "-W", "-f=${Version}", "prosody"]),
    }
    results["targets"] = [t.to_json() for t in targets(results)]
    text = render(results)
    (args.output / f"{stamp}.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (args.output / "latest.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(text)
    print(f"\n{results['meta']['duration_s']:.0f} s; figures in {args.output / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
