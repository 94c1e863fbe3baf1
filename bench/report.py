"""The targets and the tables: what the issue asks of the figures, and how they are printed.

The tables are Markdown, readable in a terminal and pasted as is into docs/performance.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.latency import SINGLE_EVENT_PAUSE_MS
from bench.stats import ratio


@dataclass(frozen=True)
class Target:
    name: str
    measured: float
    limit: float
    unit: str
    # The same figure for the bare slixmpp echo bot, same run, where there is one.
    baseline: float = math.nan

    @property
    def met(self) -> bool:
        return not math.isnan(self.measured) and self.measured <= self.limit

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "measured": self.measured, "limit": self.limit, "unit": self.unit,
                "baseline": self.baseline, "met": self.met}  # fmt: skip


def run_ratios(entry: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each mode's round trip ÷ the bare baseline's, p50 and p99, within one run: the tables show the median
    of these (dividing the medians of several runs mixed one run's agentchat with another run's baseline)."""
    base = entry["baseline"]["round_trip"]["answer"]
    ratios: dict[str, dict[str, float]] = {}
    for mode, figures in entry.items():
        if mode == "baseline" or not isinstance(figures, dict) or "round_trip" not in figures:
            continue
        answer = figures["round_trip"]["answer"]
        ratios[mode] = {"p50": ratio(answer["p50"], base["p50"]), "p99": ratio(answer["p99"], base["p99"])}
    child = entry.get("baseline_child", {}).get("round_trip", {}).get("answer")
    if child and "agentchat" in entry:
        ours = entry["agentchat"]["round_trip"]["answer"]
        ratios["agentchat_vs_child"] = {"p50": ratio(ours["p50"], child["p50"]), "p99": ratio(ours["p99"], child["p99"])}
    return ratios


def _ratio(latency: dict[str, Any], mode: str, pct: str, against: str = "baseline") -> float:
    """The median of the runs' own ratios (older results without them: the ratio of the medians)."""
    key = mode if against == "baseline" else f"{mode}_vs_child"
    within = latency.get("ratios", {}).get(key, {}).get(pct)
    if within is not None:
        return float(within)
    base = latency[against]["round_trip"]["answer"][pct]
    return ratio(latency[mode]["round_trip"]["answer"][pct], base)


def targets(results: dict[str, Any]) -> list[Target]:
    found: list[Target] = []
    latency = results.get("latency", {}).get("median")
    if latency:
        base, ours = latency["baseline"], latency["agentchat"]
        events, base_events = ours["events"], base["events"]
        found += [
            Target("round trip p50 / bare baseline p50 (median of the runs' ratios)", _ratio(latency, "agentchat", "p50"), 1.3, "×"),
            Target("round trip p99 / bare baseline p99 (median of the runs' ratios)", _ratio(latency, "agentchat", "p99"), 2.0, "×"),
            Target("event latency p50, single events", events["single"]["p50"], 2.0, "ms", base_events["single"]["p50"]),
            Target("event latency p99, single events", events["single"]["p99"], 10.0, "ms", base_events["single"]["p99"]),
            Target(f"event latency p50, burst of {events['burst']['n']:.0f}", events["burst"]["p50"], 2.0, "ms", base_events["burst"]["p50"]),
            Target(f"event latency p99, burst of {events['burst']['n']:.0f}", events["burst"]["p99"], 10.0, "ms", base_events["burst"]["p99"]),
            Target("permission overhead p50", ours["permission"]["overhead"]["p50"], 5.0, "ms"),
        ]
    scale = results.get("scale")
    if scale and scale.get("steps"):
        first = scale["steps"][0]
        if first["created"]:
            found.append(Target("agent creation p50, one at a time", first["creation"]["first_answer_ms"]["p50"], 150.0, "ms"))
        crowd = [step for step in scale["steps"][1:] if step["created"]]
        if crowd:
            worst = max(step["creation"]["per_agent_ms"] for step in crowd)
            found.append(Target(f"agent creation, {crowd[0]['concurrency']} at once: wall time per agent (worst step)", worst, 150.0, "ms"))
        last = scale["steps"][-1]
        found.append(Target(f"bots offline of {last['agents']}", float(last["agents"] - last["online"]), 0.0, ""))
        found.append(Target(f"service memory per agent at {last['agents']}", last["rss_per_agent_kb"] / 1024, 1.0, "MB"))
    restart = results.get("restart")
    if restart and restart.get("starts"):
        found.append(Target(f"restart with {restart['agents']} agents on one service", restart["starts"][-1]["start_ms"] / 1000,
                            10.0, "s"))  # fmt: skip
    machines = results.get("runners")
    if machines and "hub_restart" in machines:
        found.append(Target(f"hub restart, {machines['agents']} agents on the hub and {machines['runners']} runners",
                            machines["hub_restart"]["start_ms"] / 1000, 10.0, "s"))  # fmt: skip
        found.append(Target(f"agent creation p50 from the request, {machines['people']} people at once over "
                            f"{machines['runners'] + 1} machines", machines["creation"]["created_ms"]["p50"], 150.0, "ms"))
        worst = max(m["kb_per_agent"] for m in machines["memory"].values())
        found.append(Target("memory per agent, worst machine (hub or runner)", worst / 1024, 1.0, "MB"))
    rooms = results.get("rooms")
    if rooms and "latency" in rooms:
        lat = rooms["latency"]
        bare = lat["bare_room"]["ratio"]["p50"]  # what a room costs the bare bot: its own ratio
        found.append(Target("room mention → answer p50 / direct chat p50 (one person, one agent)",
                            lat["room"]["ratio"]["p50"], 1.5, "×", bare))  # fmt: skip
        found.append(Target(f"the same in a room of {rooms['agents']} agents and {rooms['people']} people",
                            lat["crowded_room"]["ratio"]["p50"], 1.5, "×", bare))  # fmt: skip
    if rooms and "burst" in rooms:
        burst = rooms["burst"]
        found.append(Target(f"room burst of {burst['messages']}: messages lost", float(burst["lost"]), 0.0, ""))
        found.append(Target(f"room burst of {burst['messages']}: answers out of order per agent",
                            float(burst["order_violations"]), 0.0, ""))  # fmt: skip
    return found


ROOM_MODES = (
    ("bare_direct", "bare slixmpp echo bot, direct chat"),
    ("bare_room", "bare slixmpp echo bot, mention in a room"),
    ("direct", "agent (echo backend), direct chat"),
    ("room", "agent, mention in a room (one person)"),
    ("crowded_room", "agent, mention in the crowded room"),
)


def render_rooms(results: dict[str, Any]) -> list[str]:
    """The room step: a mention against a direct chat, and the crowded room's burst."""
    rooms = results.get("rooms")
    if not rooms or "latency" not in rooms:
        return []
    lat = rooms["latency"]
    n = lat["direct"]["answer"]["n"]
    out = [f"Rooms: round trips to one agent, {n:.0f} per mode, interleaved in blocks; ms; × = against the direct chat "
           f"to the same bot; the crowded room has {rooms['agents']} agents and {rooms['people']} people", ""]
    rows = []
    for key, label in ROOM_MODES:
        if key not in lat:
            continue
        mode = lat[key]
        cpu = mode.get("cpu_ms_per_message", {})
        ratios = mode.get("ratio", {})
        rows.append([
            label, _f(mode["answer"]["p50"], 2), _f(mode["answer"]["p90"], 2), _f(mode["answer"]["p99"], 2),
            _f(ratios.get("p50"), 2) + "×" if ratios else "", _f(ratios.get("p99"), 2) + "×" if ratios else "",
            _f(mode["inbound"]["p50"], 2), _f(mode["outbound"]["p50"], 2),
            _f(cpu.get("bot" if key.startswith("bare") else "service"), 2), _f(cpu.get("prosody"), 2),
        ])  # fmt: skip
    out += _table(["room round trip", "p50", "p90", "p99", "×p50", "×p99", "way in p50", "way out p50",
                   "bot CPU/msg", "Prosody CPU/msg"], rows)  # fmt: skip
    out.append("way in: the send → the echo backend read it; way out: the backend wrote its answer → it arrived "
               "(the bare bot has no such stamps); bot CPU: the bare bot's process or the service's")
    burst = rooms.get("burst")
    if burst:
        out.append(
            f"Burst: {burst['messages']} lines from {burst['people']} people at once, mentions over {burst['agents']} "
            f"agents ({burst['in_room']} seen in the room): {burst['answered']} answered, lost {burst['lost']}, "
            f"answered twice {burst['duplicates']}, by the wrong agent {burst.get('misrouted', 0)}, out of order "
            f"{burst['order_violations']}; each person's lines kept "
            f"their order in the room: {'yes' if burst['room_keeps_sender_order'] else 'NO'}. "
            f"{_f(burst['duration_s'], 1)} s from the first line to the last answer ({_f(burst['per_second'], 1)} "
            f"answers/s; the lines were sent in {_f(burst['send_s'] * 1000, 0)} ms); an answer p50 "
            f"{_f(burst['answer_ms']['p50'] / 1000, 1)} / p99 {_f(burst['answer_ms']['p99'] / 1000, 1)} s after its "
            f"line; CPU: service {_f(burst['cpu_s']['service'], 1)} s, Prosody {_f(burst['cpu_s']['prosody'], 1)} s"
        )  # fmt: skip
    out.append("")
    return out


def render_machines(results: dict[str, Any]) -> list[str]:
    """The restart on one machine, and the hub with its runners."""
    out: list[str] = []
    restart = results.get("restart")
    if restart and restart.get("starts"):
        rows = [[str(i), _f(s["restored"]), _f(s["online"]), _f(s["start_ms"], 0), _f(s["process_start_ms"], 0),
                 _f(s["service_cpu_s"], 1), _f(s["prosody_cpu_s"], 1), _f(s["stop_ms"], 0)]
                for i, s in enumerate(restart["starts"], 1)]  # fmt: skip
        out.append(f"Restart with {restart['agents']} agents on one service (created in {restart['created_s']:.0f} s, no "
                   "first task): Service.start() restores them all")  # fmt: skip
        out.append("")
        out += _table(["start", "restored", "online", "start ms", "process start ms", "service CPU s",
                       "Prosody CPU s", "stop ms before"], rows)  # fmt: skip
        out.append("")
    machines = results.get("runners")
    if machines and "creation" in machines:
        creation = machines["creation"]
        out.append(f"Several machines: {machines['agents']} agents on a hub and {machines['runners']} runners (each a "
                   f"process of its own, one Prosody); {machines['people']} people creating through the manager's "
                   f"dialogue at once, round robin; ms from the request (queueing included)")  # fmt: skip
        out.append("")
        rows = []
        for name, memory in machines["memory"].items():
            by = creation["by_machine"].get(name, {})
            rows.append([name, _f(memory["agents"]), _f(memory["online"]), _f(machines["rss_before_kb"][name] / 1024),
                         _f(memory["rss_kb"] / 1024), _f(memory["kb_per_agent"], 0),
                         f"{_f(by.get('p50'), 0)} / {_f(by.get('p99'), 0)}"])  # fmt: skip
        out += _table(["machine", "agents", "online", "RSS before MB", "RSS MB", "kB/agent", "created p50/p99 ms"], rows)
        answers, again = machines["answers"], machines.get("answers_after_hub_restart", {})
        hub, runner = machines.get("hub_restart", {}), machines.get("runner_restart", {})
        out.append(
            f"All {machines['agents']}: created p50 {_f(creation['created_ms']['p50'], 0)} / p99 "
            f"{_f(creation['created_ms']['p99'], 0)} ms, the agent's own greeting p50 {_f(creation['ready_ms']['p50'], 0)} / "
            f"p99 {_f(creation['ready_ms']['p99'], 0)} ms ({creation['created_ms']['n']:.0f} samples), all created in "
            f"{_f(creation['all_s'], 1)} s. A sample of {answers['n']} agents (its backends starting) answered p50 "
            f"{_f(answers['ms']['p50'], 0)} / p99 {_f(answers['ms']['p99'], 0)} ms."
        )  # fmt: skip
        if hub:
            out.append(
                f"Hub restart: start {_f(hub['start_ms'], 0)} ms ({hub['restored']} of its own restored, the runners' "
                f"known; theirs stay online), process start {_f(hub['process_start_ms'], 0)} ms; the sample answered "
                f"again p50 {_f(again.get('ms', {}).get('p50'), 0)} ms. Runner {runner.get('runner')} restart: start "
                f"{_f(runner.get('start_ms'), 0)} ms ({runner.get('restored')} restored)."
            )  # fmt: skip
        out.append("")
    return out


def _f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"
    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)]


def render(results: dict[str, Any]) -> str:
    modes = [
        ("baseline", "bare slixmpp echo bot (baseline)"),
        ("baseline_child", "bare bot, echo through a child process"),
        ("agentchat", "agentchat, echo backend"),
    ]
    if results.get("what_if"):
        modes.append(("what_if", f"agentchat, what-if {' + '.join(results['what_if'])}"))
    out: list[str] = []
    meta = results.get("meta", {})
    latency = results.get("latency", {}).get("median")
    if latency:
        base = latency["baseline"]
        out.append(f"Latency: median of {meta.get('runs')} run(s); ms; ratio = agentchat ÷ baseline in each run, then their median")
        out.append("")
        rows = []
        for key, label in modes:
            if key not in latency:
                continue
            rtt = latency[key]["round_trip"]["answer"]
            cpu = latency[key]["round_trip"].get("cpu_ms_per_message", {})
            rows.append([
                label, _f(rtt["p50"], 2), _f(rtt["p90"], 2), _f(rtt["p99"], 2),
                "" if key == "baseline" else _f(_ratio(latency, key, "p50")) + "×",
                "" if key == "baseline" else _f(_ratio(latency, key, "p99")) + "×",
                _f(cpu.get("bot"), 2), _f(cpu.get("prosody"), 2),
            ])  # fmt: skip
        out += _table(["round trip", "p50", "p90", "p99", "×p50", "×p99", "bot CPU/msg", "Prosody CPU/msg"], rows)
        ours = latency["agentchat"]["round_trip"]
        floor = latency.get("baseline_child", {}).get("round_trip", {}).get("answer")
        if floor:
            out.append(
                f"agentchat ÷ the bare bot with a child process on the path (the floor for a process per agent): "
                f"p50 {_f(_ratio(latency, 'agentchat', 'p50', 'baseline_child'), 2)}×, "
                f"p99 {_f(_ratio(latency, 'agentchat', 'p99', 'baseline_child'), 2)}×"
            )
        if "inbound" in ours:
            out.append(
                f"agentchat split (p50): client → backend {_f(ours['inbound']['p50'], 2)} ms, "
                f"backend → client {_f(ours['outbound']['p50'], 2)} ms; whole turn (answer + end of turn) "
                f"{_f(ours['turn']['p50'], 2)} ms"
            )
        out.append("")
        rows = []
        for key, label in modes:
            if "events" not in latency.get(key, {}):
                continue
            events = latency[key]["events"]
            rows.append([
                label, _f(events["single"]["p50"], 2), _f(events["single"]["p99"], 2),
                _f(events["burst"]["p50"], 1), _f(events["burst"]["p99"], 1), _f(events["burst_rate"], 0),
            ])  # fmt: skip
        out += _table(["event → client", "single p50", "single p99", "burst p50", "burst p99", "burst ev/s"], rows)
        if "pipe_hop" in base:
            out.append(
                f"single events come after {SINGLE_EVENT_PAUSE_MS} ms of quiet on both sides; one more process hop "
                f"(a pipe, as backend → service) costs p50 {_f(base['pipe_hop']['p50'], 2)} / p99 "
                f"{_f(base['pipe_hop']['p99'], 2)} ms on this machine after such a pause"
            )
        out.append("")
        rows = []
        for key, label in modes[2:]:
            if key in latency and "permission" in latency[key]:
                perm = latency[key]["permission"]
                by_rule = perm.get("mcp_call_by_rule", {})
                rows.append([label, _f(perm["overhead"]["p50"], 2), _f(perm["overhead"]["p99"], 2),
                             _f(perm["mcp_call"]["p50"], 2), _f(by_rule.get("p50"), 2), _f(by_rule.get("p99"), 2)])  # fmt: skip
        out += _table(["permission prompt", "overhead p50", "overhead p99", "MCP call p50",
                       "no chat (rule) p50", "no chat p99"], rows)  # fmt: skip
        out.append("")
    scale = results.get("scale")
    if scale and scale.get("steps"):
        out.append(
            f"Scale: one service process, agents.maxConcurrent {scale['max_concurrent']}, idleTimeout "
            f"{scale['idle_timeout_ms'] / 1000:g} s; creations one at a time in the first step, {scale['concurrency']} at a time after; RSS before: "
            f"{scale['rss_before_kb'] / 1024:.1f} MB"
        )
        out.append("")
        rows = []
        for step in scale["steps"]:
            creation, answers, restart = step["creation"], step["answers"], step["restart"]
            rows.append([
                _f(step["agents"]), f"{step['online']}/{step['running']}",
                f"{_f(creation['first_answer_ms']['p50'], 0)} / {_f(creation['first_answer_ms']['p99'], 0)}",
                _f(creation.get("per_agent_ms"), 0),
                _f(creation["create_ms"]["p50"], 0), _f(step["rss_kb"] / 1024), _f(step["rss_per_agent_kb"], 0),
                f"{_f(answers['ms']['p50'], 0)} / {_f(answers['ms']['p99'], 0)}", _f(answers["all_s"], 2),
                _f(restart["start_ms"], 0), _f(restart["stop_ms"], 0),
            ])  # fmt: skip
        out += _table(
            ["agents", "online/running", "creation p50/p99 ms", "wall ms/agent", "create() p50", "RSS MB", "kB/agent",
             "answer p50/p99 ms", "all answered s", "start ms", "stop ms"],
            rows,
        )  # fmt: skip
        herd = [f"{step['agents']}: {step['answers'].get('eviction_attempts', '?')} for {step['answers'].get('spawns', '?')} starts"
                for step in scale["steps"] if step["answers"].get("spawns")]  # fmt: skip
        if herd:
            out.append("While all answered, eviction attempts logged (\"stopping idle agent\") for backend starts: " + "; ".join(herd))
        if "dialogue" in scale:
            d = scale["dialogue"]
            out.append(
                f"Through the manager dialogue ({d['n']}): task sent → \"created\" p50 {_f(d['created_ms']['p50'], 0)} ms, "
                f"→ first answer p50 {_f(d['first_answer_ms']['p50'], 0)} ms"
            )
        what_if = scale.get("what_if")
        if what_if:
            out.append(
                f"What-if {' + '.join(what_if['patches'])}, the same {what_if['agents']} agents: all answered in "
                f"{_f(what_if['answers']['all_s'], 2)} s (answer p50/p99 {_f(what_if['answers']['ms']['p50'], 0)} / "
                f"{_f(what_if['answers']['ms']['p99'], 0)} ms), start {_f(what_if['start_ms'], 0)} ms"
            )
        for key, how in (("floor", "each with its own TLS context, as slixmpp builds it"),
                         ("floor_shared_tls", "one shared TLS context, as agentchat's bots")):  # fmt: skip
            floor = results.get(key)
            if floor:
                out.append(
                    f"slixmpp floor, {floor['clients']} bare clients with the bots' plugins, {how}: "
                    f"{floor['rss_per_client_kb']:.0f} kB RSS per client, login p50 {floor['login_ms']['p50']:.0f} ms "
                    f"({floor['clients']} logins, {scale['concurrency']} at a time)"
                )
        out.append("")
    out += render_rooms(results)
    out += render_machines(results)
    profile = results.get("profile")
    if profile:
        busy = profile["total_s"] - profile["idle_s"]
        out.append(
            f"Profile (pyinstrument, service event loop, {profile['messages']} round trips): busy "
            f"{busy * 1000 / max(profile['messages'], 1):.2f} ms per round trip; top self time:"
        )
        for name, seconds in profile["self_time"][:8]:
            out.append(f"  {seconds / max(busy, 1e-9) * 100:5.1f}%  {name}")
        out.append("")
    found = [Target(**{k: (math.nan if v is None else v) for k, v in t.items() if k != "met"}) for t in results.get("targets", [])]
    if found:
        rows = [[t.name, f"{_f(t.measured, 2)} {t.unit}".strip(), f"≤ {_f(t.limit, 1)} {t.unit}".strip(),
                 "met" if t.met else "MISSED", "" if math.isnan(t.baseline) else f"{_f(t.baseline, 2)} {t.unit}"]
                for t in found]  # fmt: skip
        out += _table(["target", "measured", "limit", "", "bare baseline"], rows)
    return "\n".join(out)
