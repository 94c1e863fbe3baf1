"""Latency through Prosody: round trips, backend events reaching the client, permission prompts.

Each function takes a logged-in BenchClient and the JID at the other end: the bare echo bot (the
baseline) or an agent's bot (agentchat with the echo backend). Times are CLOCK_MONOTONIC
nanoseconds, from this process and, for events and prompts, from the backend's.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

from bench.client import BenchClient, Collector
from bench.stats import summarize

DONE = "✅ Done"
PROMPT = "🔐 Permission #"
PROMPT_ID = re.compile(r"#([0-9a-f]{4})")


def _is_done(body: str, sender: str) -> bool:
    return body.startswith(DONE)


async def _wait(future: asyncio.Future[tuple[str, int]], timeout: float, what: str) -> tuple[str, int]:
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise TimeoutError(f"no {what} within {timeout:g} s") from None


async def round_trip(
    client: BenchClient, to: str, count: int, warmup: int, *, agent: bool, timeout: float = 30
) -> dict[str, Any]:
    """Ping-pong, one message in flight: send, wait for the answer (and, for an agent, the end of
    its turn: the next message would otherwise be queued behind it). ms from send to answer."""
    answers: list[float] = []
    turns: list[float] = []
    inbound: list[float] = []
    outbound: list[float] = []
    for index in range(warmup + count):
        body = f"rt {index}"
        if agent:  # the echo backend answers "ECHO: <body> @<read ns> <answer written ns>"
            answer = client.expect(lambda b, s, expected=f"ECHO: {body} @": b.startswith(expected))
        else:
            answer = client.expect(lambda b, s, expected=body: b == expected)
        finished = client.expect(_is_done) if agent else None
        sent = client.send(to, body)
        reply, answered = await _wait(answer, timeout, f"answer to {body!r}")
        ended = (await _wait(finished, timeout, "end of turn"))[1] if finished is not None else answered
        if index < warmup:
            continue
        answers.append((answered - sent) / 1e6)
        turns.append((ended - sent) / 1e6)
        if agent:
            read, written = (int(t) for t in reply.rsplit("@", 1)[1].split())
            inbound.append((read - sent) / 1e6)
            outbound.append((answered - written) / 1e6)
    result = {"answer": summarize(answers)}
    if agent:
        result.update(turn=summarize(turns), inbound=summarize(inbound), outbound=summarize(outbound))
    return result


# Quiet before a single event (on both sides, baseline too): the turn's start (presence,
# "composing", commits) is over by then, as it is for every event but the first of a real turn
# (that one is the round trip's way back).
SINGLE_EVENT_PAUSE_MS = 20


async def event_latency(
    client: BenchClient, to: str, singles: int, burst: int, *, agent: bool, timeout: float = 60
) -> dict[str, Any]:
    """ms from an event's emission (stamped by the backend / the echo bot) to its arrival here:
    ``singles`` turns of one event each, then one turn of ``burst`` events back to back."""

    def request(count: int) -> str:
        if not agent:
            return f"BURST {count} {SINGLE_EVENT_PAUSE_MS}" if count == 1 else f"BURST {count}"
        return f"[[burst:{count}:{SINGLE_EVENT_PAUSE_MS}]]" if count == 1 else f"[[burst:{count}]]"

    single: list[float] = []
    for _ in range(singles):
        event = client.expect(lambda b, s: b.startswith("EVT "))
        finished = client.expect(_is_done) if agent else None
        client.send(to, request(1))
        body, arrived = await _wait(event, timeout, "event")
        single.append((arrived - int(body.split()[2])) / 1e6)
        if finished is not None:
            await _wait(finished, timeout, "end of turn")

    events = Collector(client, lambda b, s: b.startswith("EVT "))
    finished = client.expect(_is_done) if agent else None
    client.send(to, request(burst))
    try:
        await events.wait_count(burst, timeout)
    except TimeoutError:
        raise TimeoutError(f"only {len(events.items)} of {burst} burst events within {timeout:g} s") from None
    finally:
        events.close()
    if finished is not None:
        await _wait(finished, timeout, "end of burst turn")
    emitted = [int(body.split()[2]) for body, _, _ in events.items]
    arrived = [t for _, _, t in events.items]
    span_s = (max(arrived) - min(emitted)) / 1e9
    order = [int(body.split()[1]) for body, _, _ in events.items]
    return {
        "single": summarize(single),
        "burst": summarize((a - e) / 1e6 for a, e in zip(arrived, emitted, strict=True)),
        "burst_rate": burst / span_s if span_s > 0 else float("nan"),
        "burst_in_order": order == sorted(order),
    }


_PIPE_WRITER = (
    "import sys, time\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    time.sleep(int(sys.argv[2]) / 1000)\n"
    "    sys.stdout.write(f'{time.monotonic_ns()}\\n'); sys.stdout.flush()\n"
)


async def pipe_hop(count: int, pause_ms: int = SINGLE_EVENT_PAUSE_MS) -> dict[str, Any]:
    """The floor of the backend → service hop: a child writes stamped lines to a pipe, with the
    single events' pause before each, and this event loop reads them (as the service reads its
    backends'). ms from the write to the line in hand."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-S", "-c", _PIPE_WRITER, str(count), str(pause_ms), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    hops = []
    while line := await process.stdout.readline():
        hops.append((time.monotonic_ns() - int(line)) / 1e6)
    await process.wait()
    return summarize(hops)


async def permission_round_trip(client: BenchClient, agent: str, count: int, warmup: int, timeout: float = 30) -> dict[str, Any]:
    """The echo backend times its MCP tools/call; the client answers each prompt the moment it
    arrives. Overhead = the MCP call's duration minus the client's own time to reply."""
    replied: dict[str, tuple[int, int]] = {}

    def answer_prompt(body: str, sender: str, arrived: int) -> bool:
        if sender != agent or not body.startswith(PROMPT):
            return False
        match = PROMPT_ID.search(body)
        request_id = match.group(1) if match else "?"
        replied[request_id] = (arrived, client.send(agent, "yes"))
        return True

    client.listeners.insert(0, answer_prompt)
    overheads: list[float] = []
    totals: list[float] = []
    try:
        for index in range(warmup + count):
            replied.clear()
            verdict = client.expect(lambda b, s: b.startswith("PERM "))
            finished = client.expect(_is_done)
            client.send(agent, "[[perm]]")
            body, _ = await _wait(verdict, timeout, "permission verdict")
            await _wait(finished, timeout, "end of turn")
            _, decision, called, answered = body.split()
            if decision != "allow" or len(replied) != 1:
                raise RuntimeError(f"permission turn {index}: {body!r}, prompts seen: {list(replied)}")
            (prompt_arrived, reply_sent), = replied.values()
            total_ns = int(answered) - int(called)
            if index >= warmup:
                totals.append(total_ns / 1e6)
                overheads.append((total_ns - (reply_sent - prompt_arrived)) / 1e6)
    finally:
        client.listeners.remove(answer_prompt)
    return {"overhead": summarize(overheads), "mcp_call": summarize(totals)}


async def permission_by_rule(client: BenchClient, agent: str, count: int, timeout: float = 30) -> dict[str, Any]:
    """The MCP call alone: the owner answers one prompt "always", then ``count`` calls for the same
    tool are allowed by that rule without a chat message. ms of the tools/call, as the backend sees it.
    The rule stays for the session: use an agent of its own."""
    prompt = client.expect(lambda b, s: s == agent and b.startswith(PROMPT))
    finished = client.expect(_is_done)
    client.send(agent, "[[perm]]")
    await _wait(prompt, timeout, "prompt")
    client.send(agent, "always")
    await _wait(finished, timeout, "end of turn")
    calls: list[float] = []
    for _ in range(count):
        verdict = client.expect(lambda b, s: b.startswith("PERM "))
        finished = client.expect(_is_done)
        client.send(agent, "[[perm]]")
        body, _ = await _wait(verdict, timeout, "permission verdict")
        await _wait(finished, timeout, "end of turn")
        _, decision, called, answered = body.split()
        if decision != "allow":
            raise RuntimeError(f"a call covered by an 'always' rule got {body!r}")
        calls.append((int(answered) - int(called)) / 1e6)
    return summarize(calls)
