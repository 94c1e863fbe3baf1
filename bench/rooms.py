"""Rooms (XEP-0045, on the harness's Prosody's rooms.DOMAIN): a mention against a direct chat, and a crowded
room under a burst. One service process of its own, agents on the echo backend, people as slixmpp clients in
the rooms (xep_0045), every room made and filled through the manager's commands, as a person does it.

* The rooms: ``bench-one`` with its owner and one agent; ``bench-crowd`` with ``people`` people (the owner and
  the others, invited by bare JID) and ``agents`` agents, the first agent being in both rooms.
* Latency: the owner's round trips to that one agent, measured in the same run and interleaved in blocks:
  a direct chat (``rt-d <i>`` → its ``ECHO`` and ``✅ Done``, as bench/latency.py), a mention in bench-one
  (``@<agent> rt-s <i>`` → its ``ECHO`` in the room and its status line ``✅ <agent>: completed``), and the same
  mention in bench-crowd. ms from the send to the answer at the owner; the echo's own stamps split each one
  into the way in (client → backend) and the way out (backend → client). One message in flight: the next
  waits for the end of the turn, as a person would.
* Burst: the people send ``burst`` lines back to back, round robin over the people, each line mentioning one
  agent (the agents in turn, every agent hearing from every person): ``@<agent> b<person>-<i>``. Every person
  records the room's lines as the room gives them (the people's lines: the room's order, the same for every
  occupant) and the agents' answers. Lost: a line whose answer did not reach every person (once nothing new
  came for a minute); out of order: an answer that came after the answer to a later line (in the room's
  order) for the same agent; also answered twice, and answered by an agent the line did not mention.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from typing import Any

import slixmpp
from slixmpp.jid import JID

from bench.client import BenchClient
from bench.environment import BenchEnv, EchoBotProcess, ServiceProcess, cpu_seconds
from bench.scale import Answers
from bench.stats import ratio, summarize

DONE = "✅ Done"
# An agent's echo of a room turn: "ECHO: [Room bench-crowd] person1 wrote:\n@swift-fox b1-7 @<read> <written>".
ROOM_ECHO = re.compile(r"ECHO: \[Room [^\]\n]+\] (\S+) wrote:\n@(\S+) (\S+) @(\d+) (\d+)\Z")
PERSON_LINE = re.compile(r"@(\S+) (b\d+-\d+)\Z")
# Latency modes, interleaved in this order; a room's ratio is taken against its direct chat.
MODES = ("bare_direct", "bare_room", "direct", "room", "crowded_room")
RATIOS = {"bare_room": "bare_direct", "room": "direct", "crowded_room": "direct"}


class RoomPerson(BenchClient):
    """A person in rooms: a BenchClient that hears a room's lines too, their sender being the occupant's
    JID (``room/nick``); direct chats keep the bare JID."""

    def __init__(self, jid: str, password: str, host: str, port: int) -> None:
        super().__init__(jid, password, host, port)
        self.xmpp.register_plugin("xep_0045")

    async def join(self, room: str, nick: str, timeout: float = 30) -> None:
        await self.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), nick, maxstanzas=0, timeout=timeout)

    def occupants(self, room: str) -> set[str]:
        return set(self.xmpp.plugin["xep_0045"].get_roster(JID(room)) or ())

    def say(self, room: str, body: str) -> int:
        """A line in the room; monotonic_ns just before it was handed to slixmpp."""
        message = self.xmpp.make_message(mto=room, mbody=body, mtype="groupchat")
        sent = time.monotonic_ns()
        message.send()
        return sent

    def _on_message(self, msg: slixmpp.Message) -> None:
        if msg["type"] != "groupchat":
            super()._on_message(msg)
            return
        arrived = time.monotonic_ns()
        body = msg["body"]
        if not body:
            return
        self.received += 1
        sender = str(msg["from"])
        for listener in list(self.listeners):
            if listener(body, sender, arrived):
                break


async def _person(env: BenchEnv, local: str) -> RoomPerson:
    jid, password = await env.account(local)
    person = RoomPerson(jid, password, env.prosody.host, env.prosody.c2s_port)
    await person.connect()
    return person


async def _command(owner: BenchClient, manager: str, text: str, reply: str, timeout: float) -> str:
    answer = owner.expect(lambda b, s: s == manager and reply in b)
    owner.send(manager, text)
    try:
        body, _ = await asyncio.wait_for(answer, timeout)
    except TimeoutError:
        raise TimeoutError(f"the manager did not answer {text!r} with {reply!r} within {timeout:g} s") from None
    return body


async def _make_room(owner: RoomPerson, manager: str, name: str, nick: str, timeout: float) -> str:
    created = await _command(owner, manager, f"room new {name}", f"Room {name} created", timeout)
    found = re.search(r"\((\S+@\S+)\)", created)
    if found is None:
        raise RuntimeError(f"no room address in {created!r}")
    room = found.group(1)
    await owner.join(room, nick)
    return room


async def _wait(future: asyncio.Future[tuple[str, int]], timeout: float, what: str) -> tuple[str, int]:
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise TimeoutError(f"no {what} within {timeout:g} s") from None


async def _round_trip(owner: RoomPerson, mode: str, to: str, agent: str, index: int,
                      timeout: float) -> tuple[float, float, float]:
    """One message, one answer (for an agent, the end of its turn too): ms to the answer, of the way in
    and of the way out (an agent's: the echo backend's stamps; NaN for the bare bot)."""
    if mode == "bare_direct":
        token = f"rt-bd {index}"
        answer = owner.expect(lambda b, s: s == to and b == token)
        sent = owner.send(to, token)
        finished = None
    elif mode == "bare_room":
        token = f"rt-br {index}"
        occupant = f"{to}/{agent}"
        answer = owner.expect(lambda b, s: s == occupant and b == token)
        sent = owner.say(to, f"@{agent} {token}")
        finished = None
    elif mode == "direct":
        token = f"rt-d {index}"
        answer = owner.expect(lambda b, s: s == to and b.startswith(f"ECHO: {token} @"))
        finished = owner.expect(lambda b, s: s == to and b.startswith(DONE))
        sent = owner.send(to, token)
    else:
        token = f"rt-s {index}"
        occupant = f"{to}/{agent}"
        answer = owner.expect(lambda b, s: s == occupant and b.startswith("ECHO: ") and f"\n@{agent} {token} @" in b)
        # The turn's status line, corrected in place: its last state quotes the line.
        finished = owner.expect(lambda b, s: s == occupant and b.startswith(f"✅ {agent}: completed") and f"{token}”" in b)
        sent = owner.say(to, f"@{agent} {token}")
    body, answered = await _wait(answer, timeout, f"{mode} answer to {token!r}")
    if finished is None:
        return (answered - sent) / 1e6, math.nan, math.nan
    await _wait(finished, timeout, f"end of the {mode} turn {token!r}")
    read, written = (int(t) for t in body.rsplit("@", 1)[1].split())
    return (answered - sent) / 1e6, (read - sent) / 1e6, (answered - written) / 1e6


async def measure_latency(owner: RoomPerson, targets: dict[str, tuple[str, str]], count: int, warmup: int,
                          block: int, pids: dict[str, int], timeout: float) -> dict[str, Any]:
    """``targets``: mode -> (where to send, the agent's id). Warm-up trips for each mode, then blocks of
    ``block`` trips per mode in turn until each has ``count``; CPU of each process per trip, per mode."""
    for mode, (to, agent) in targets.items():
        for index in range(warmup):
            await _round_trip(owner, mode, to, agent, -1 - index, timeout)
    samples: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in targets}
    cpu: dict[str, dict[str, float]] = {mode: dict.fromkeys([*pids, "client"], 0.0) for mode in targets}
    done = 0
    while done < count:
        size = min(block, count - done)
        for mode, (to, agent) in targets.items():
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            client_before = time.process_time()
            for index in range(done, done + size):
                samples[mode].append(await _round_trip(owner, mode, to, agent, index, timeout))
            for name, pid in pids.items():
                cpu[mode][name] += cpu_seconds(pid) - before[name]
            cpu[mode]["client"] += time.process_time() - client_before
        done += size
    result: dict[str, Any] = {}
    for mode, trips in samples.items():
        result[mode] = {
            "answer": summarize(t[0] for t in trips),
            "inbound": summarize(t[1] for t in trips),
            "outbound": summarize(t[2] for t in trips),
            "cpu_ms_per_message": {name: seconds * 1000 / count for name, seconds in cpu[mode].items()},
        }
    # Each room against the direct chat to the same kind of bot: the agent's, and the bare bot's.
    for mode, against in RATIOS.items():
        if mode in result and against in result:
            result[mode]["ratio"] = {pct: ratio(result[mode]["answer"][pct], result[against]["answer"][pct])
                                     for pct in ("p50", "p99")}  # fmt: skip
    return result


class RoomWatch:
    """At one person: the people's lines in the room's order, and each agent's answers as they arrive."""

    def __init__(self, person: RoomPerson, room: str, people: set[str], changed: asyncio.Event) -> None:
        self.room_order: list[str] = []
        self.answers: dict[str, tuple[str, int]] = {}  # token -> (agent, arrival ns), the first one
        self.by_agent: dict[str, list[str]] = {}  # agent -> its answers' tokens, in arrival order
        self.duplicates = 0
        self.changed = changed  # set at every answer
        self._room = room
        self._people = people
        person.listeners.insert(0, self._listen)

    def _listen(self, body: str, sender: str, arrived: int) -> bool:
        room, _, nick = sender.partition("/")
        if room != self._room:
            return False
        if nick in self._people:
            line = PERSON_LINE.match(body)
            if line is not None:
                self.room_order.append(line.group(2))
            return False
        echo = ROOM_ECHO.match(body)
        if echo is None or not echo.group(3).startswith("b"):
            return False
        token = echo.group(3)
        if token in self.answers:
            self.duplicates += 1
        else:
            self.answers[token] = (nick, arrived)
            self.by_agent.setdefault(nick, []).append(token)
        self.changed.set()
        return True

    def order_violations(self) -> int:
        """Answers that came after the answer to a later line (in the room's order) for the same agent."""
        rank = {token: i for i, token in enumerate(self.room_order)}
        late = len(rank)
        violations = 0
        for tokens in self.by_agent.values():
            highest = -1
            for token in tokens:
                position = rank.get(token, late)
                if position < highest:
                    violations += 1
                highest = max(highest, position)
        return violations


async def measure_burst(people: list[RoomPerson], nicks: list[str], room: str, agents: list[str], count: int,
                        pids: dict[str, int], *, stall: float, timeout: float) -> dict[str, Any]:
    changed = asyncio.Event()
    watches = [RoomWatch(person, room, set(nicks), changed) for person in people]
    plan = [(i % len(people), agents[(i // len(people)) % len(agents)], f"b{i % len(people)}-{i}") for i in range(count)]
    target_of = {token: agent for _, agent, token in plan}
    sent: dict[str, int] = {}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    began = time.monotonic_ns()
    for person, agent, token in plan:
        sent[token] = people[person].say(room, f"@{agent} {token}")
    # Until every person has every answer; what has not come once nothing new came for ``stall`` seconds (or
    # after ``timeout`` in all) is lost.
    deadline = time.monotonic() + timeout
    while not all(len(w.answers) >= count for w in watches):
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), min(stall, max(deadline - time.monotonic(), 0.01)))
        except TimeoutError:
            break
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    observer = watches[0]
    answered_everywhere = set.intersection(*(set(w.answers) for w in watches))
    arrivals = [observer.answers[t][1] for t in observer.answers]
    last = max(arrivals, default=began)
    duration_s = (last - began) / 1e9
    sent_order: dict[int, list[str]] = {}
    for person, _, token in plan:
        sent_order.setdefault(person, []).append(token)
    # The room keeps each person's lines in the order that person sent them (one connection each).
    room_keeps_sender_order = all(
        [t for t in observer.room_order if t.startswith(f"b{person}-")] == tokens for person, tokens in sent_order.items()
    )
    misrouted = sum(1 for token, (agent, _) in observer.answers.items() if target_of.get(token) != agent)
    return {
        "messages": count,
        "agents": len(agents),
        "people": len(people),
        "in_room": len(observer.room_order),
        "answered": len(observer.answers),
        "lost": count - len(answered_everywhere),  # not answered, or the answer missed one of the people
        "duplicates": max(w.duplicates for w in watches),
        "misrouted": misrouted,  # answered by an agent the line did not mention
        # The worst person's count (the room gives every occupant the same order).
        "order_violations": max(w.order_violations() for w in watches),
        "room_keeps_sender_order": room_keeps_sender_order,
        "duration_s": duration_s,
        "send_s": (max(sent.values()) - began) / 1e9,
        "per_second": len(observer.answers) / duration_s if duration_s > 0 else float("nan"),
        "answer_ms": summarize((observer.answers[t][1] - sent[t]) / 1e6 for t in observer.answers),
        "cpu_s": cpu,
    }


async def run_rooms(env: BenchEnv, *, round_trips: int, warmup: int, agents: int, people: int, burst: int,
                    block: int = 10, timeout: float = 60, burst_timeout: float = 600,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    settings = env.settings_data(env.root / "rooms", max_concurrent=max(50, agents + 1))
    service = await ServiceProcess.start(env, settings)
    manager = service.started["manager"]
    crowd = [await _person(env, f"person{i}") for i in range(people)]
    nicks = [f"person{i}" for i in range(people)]
    owner = crowd[0]
    prosody_pid = env.prosody.pid
    assert prosody_pid is not None
    pids = {"service": service.pid, "prosody": prosody_pid}
    result: dict[str, Any] = {"agents": agents, "people": people}
    bot: EchoBotProcess | None = None
    try:
        first = Answers(owner)
        created = (await service.call("create", count=agents, concurrency=4, owner=owner.bare_jid, repo=str(env.repo),
                                      task="hi", timeout=timeout * 5))["created"]  # fmt: skip
        await first.wait([(c["jid"], "hi") for c in created], timeout * 5)
        ids = [c["id"] for c in created]
        lone, lone_jid = ids[0], created[0]["jid"]
        one = await _make_room(owner, manager, "bench-one", nicks[0], timeout)
        await _command(owner, manager, f"room invite {lone} bench-one", "➕", timeout)
        # The floor: the bare echo bot, a member of a room of its own made the same way (the manager sits in it too).
        bare = await _make_room(owner, manager, "bench-bare", nicks[0], timeout)
        bot = await EchoBotProcess.start(env)
        await _command(owner, manager, f"room invite {bot.jid} bench-bare", "➕", timeout)
        await bot.join(bare, "echo")
        pids["bot"] = bot.process.pid
        began = time.monotonic()
        room = await _make_room(owner, manager, "bench-crowd", nicks[0], timeout)
        for agent in ids:
            await _command(owner, manager, f"room invite {agent} bench-crowd", "➕", timeout)
        for person, nick in zip(crowd[1:], nicks[1:], strict=True):
            await _command(owner, manager, f"room invite {person.bare_jid} bench-crowd", "➕", timeout)
            await person.join(room, nick)
        seated = owner.occupants(room)
        if not {*ids, *nicks} <= seated:
            raise RuntimeError(f"not in {room}: {sorted({*ids, *nicks} - seated)}")
        result["filled_s"] = time.monotonic() - began
        log(f"  rooms: {agents} agents and {people} people in {room} ({result['filled_s']:.1f} s)")

        targets = {"bare_direct": (bot.jid, "echo"), "bare_room": (bare, "echo"), "direct": (lone_jid, lone),
                   "room": (one, lone), "crowded_room": (room, lone)}  # fmt: skip
        result["latency"] = await measure_latency(owner, targets, round_trips, warmup, block, pids, timeout)
        lat = result["latency"]
        log(f"  rooms: mention → answer p50 {lat['room']['answer']['p50']:.2f} ms, in the crowded room "
            f"{lat['crowded_room']['answer']['p50']:.2f} ms, direct chat {lat['direct']['answer']['p50']:.2f} ms "
            f"({lat['room']['ratio']['p50']:.2f}×, {lat['crowded_room']['ratio']['p50']:.2f}×; the bare bot's "
            f"{lat['bare_room']['ratio']['p50']:.2f}×)")  # fmt: skip

        result["burst"] = await measure_burst(crowd, nicks, room, ids, burst, pids, stall=timeout, timeout=burst_timeout)
        b = result["burst"]
        log(f"  rooms: burst of {burst}: {b['answered']} answered in {b['duration_s']:.1f} s ({b['per_second']:.0f}/s), "
            f"lost {b['lost']}, out of order {b['order_violations']}")  # fmt: skip
    finally:
        for person in crowd:
            await person.disconnect()
        if bot is not None:
            await bot.stop()
        await service.stop()
    return result
