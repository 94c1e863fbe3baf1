"""The benchmark must keep working: `python -m bench.run --quick` end to end, tiny figures.

It starts its own Prosody (the harness's), the service in a process of its own with the echo
backend, the bare echo bot, and the slixmpp floor; it takes about 20 s.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from agentchat.agents.backends.claude.protocol import (
    AssistantMessage,
    ResultEvent,
    SystemInit,
    decode_line,
)
from bench.stats import median_of_runs, percentile, summarize

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_and_writes_its_figures(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--output", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "round trip" in run.stdout and "| target" in run.stdout

    results = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    latency = results["latency"]["median"]
    for mode in ("baseline", "agentchat"):
        answer = latency[mode]["round_trip"]["answer"]
        assert answer["n"] > 0 and 0 < answer["p50"] <= answer["p99"]
        assert latency[mode]["events"]["burst_in_order"]
    assert latency["agentchat"]["round_trip"]["cpu_ms_per_message"]["bot"] > 0
    assert latency["agentchat"]["permission"]["overhead"]["n"] > 0

    plan = results["meta"]["plan"]
    steps = results["scale"]["steps"]
    # The first step's agents are created one at a time; the dialogue's come on top of them.
    assert [step["agents"] for step in steps] == [plan["scale"][0] + plan["dialogue"], *plan["scale"][1:]]
    assert steps[0]["creation"]["first_answer_ms"]["n"] == plan["scale"][0]
    assert all(step["online"] == step["agents"] and step["restart"]["restored"] == step["agents"] for step in steps)
    assert results["floor"]["rss_per_client_kb"] > 0
    assert Path(ROOT, results["profile"]["profile"]).is_file() or Path(results["profile"]["profile"]).is_file()
    names = {target["name"] for target in results["targets"]}
    assert "permission overhead p50" in names and "round trip p50 / bare baseline p50 (median of the runs' ratios)" in names
    # Ratios are taken within each run.
    first = results["latency"]["runs"][0]
    assert first["ratios"]["agentchat"]["p50"] == (first["agentchat"]["round_trip"]["answer"]["p50"]
                                                   / first["baseline"]["round_trip"]["answer"]["p50"])
    # A restart with every agent back, and agents over a hub and its runners.
    restart = results["restart"]["starts"][-1]
    assert restart["restored"] == restart["online"] == plan["restart"]
    machines = results["runners"]
    assert machines["creation"]["created_ms"]["n"] == plan["runners"]
    assert sum(m["agents"] for m in machines["memory"].values()) == plan["runners"]
    assert all(m["online"] == m["agents"] for m in machines["memory"].values())
    assert machines["hub_restart"]["restored"] == machines["memory"]["hub"]["agents"]
    assert machines["runner_restart"]["restored"] == machines["memory"]["r1"]["agents"]
    assert "Several machines" in run.stdout and "Restart with" in run.stdout
    # Rooms: a mention against the direct chat, measured in the same run; a burst in a room of agents and people.
    rooms = results["rooms"]
    for mode in ("bare_direct", "bare_room", "direct", "room", "crowded_room"):
        assert rooms["latency"][mode]["answer"]["n"] == plan["room_round_trips"]
    assert rooms["latency"]["room"]["ratio"]["p50"] == (rooms["latency"]["room"]["answer"]["p50"]
                                                        / rooms["latency"]["direct"]["answer"]["p50"])
    burst = rooms["burst"]
    assert burst["messages"] == plan["room_burst"] and burst["agents"] == plan["room_agents"]
    # Every line answered once, by the agent it mentioned, in order per agent.
    assert (burst["answered"], burst["lost"], burst["duplicates"], burst["misrouted"], burst["order_violations"]) == (
        plan["room_burst"], 0, 0, 0, 0), burst
    assert "Rooms:" in run.stdout
    assert any(name.startswith("room mention") for name in names)


def test_the_echo_backend_speaks_what_the_driver_parses(tmp_path: Path) -> None:
    lines = [json.dumps({"type": "user", "message": {"role": "user", "content": text}}) for text in ("hello", "[[burst:3]]")]
    run = subprocess.run(
        [sys.executable, "-S", str(ROOT / "bench" / "echo_backend.py"), "--session-id", "s-1"],
        input="\n".join(lines) + "\n", cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    events = [decode_line(line) for line in run.stdout.splitlines()]
    kinds = [type(event) for event in events]
    assert kinds == [SystemInit, AssistantMessage, ResultEvent, SystemInit, AssistantMessage, AssistantMessage, AssistantMessage, ResultEvent]
    echo = events[1]
    assert isinstance(echo, AssistantMessage) and echo.message.content[0].text.startswith("ECHO: hello @")  # type: ignore[union-attr]
    stamps = [int(e.message.content[0].text.split()[2]) for e in events[4:7]]  # type: ignore[union-attr]
    assert stamps == sorted(stamps)


def test_percentiles_and_medians() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert math.isnan(percentile([], 50))
    summary = summarize([3.0, 1.0, 2.0])
    assert (summary["n"], summary["p50"], summary["max"]) == (3, 2.0, 3.0)
    runs = [{"a": {"p50": 1.0}, "ok": True, "label": "x"}, {"a": {"p50": 3.0}, "ok": True, "label": "y"},
            {"a": {"p50": 2.0}, "ok": False, "label": "z"}]  # fmt: skip
    assert median_of_runs(runs) == {"a": {"p50": 2.0}, "ok": False, "label": "x"}
