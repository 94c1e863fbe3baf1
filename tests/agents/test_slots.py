"""agents.maxConcurrent: waiters are served in arrival order, one idle agent is stopped per slot
needed (never the same one twice), busy agents are left alone, and a cancelled wait leaks nothing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from agentchat.agents import slots as slots_module
from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import (
    BackendSpec,
)
from agentchat.agents.slots import ProcessSlots
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord, AgentStatus
from tests.support.instant_backend import AnsweredChat, InstantBackend

TIMEOUT = 5.0


async def settle() -> None:
    """Let the tasks already scheduled (evictions) take their next step; no time passes."""
    for _ in range(3):
        await asyncio.sleep(0)


class FakeAgent:
    """What ProcessSlots looks at in an Agent; stop_process() frees the slot like the real one."""

    def __init__(
        self, slots: ProcessSlots, name: str, last_active: float = 0.0
    ) -> None:
        self.slots = slots
        self.id = name
        self.record = SimpleNamespace(last_active=last_active)
        self.in_turn = False
        self.queued = 0
        self.process_running = False
        self.stop_calls = 0
        self.stopping = asyncio.Event()
        # Closed: a stop stays under way until the test opens it (the process takes a while to end).
        self.may_stop = asyncio.Event()
        self.may_stop.set()

    async def start_turn(self) -> None:
        """Like Agent._run_turn: busy from before it asks for a slot."""
        self.in_turn = True
        await self.slots.acquire(self)  # type: ignore[arg-type]
        self.process_running = True

    def end_turn(self, *, notify: bool = True) -> None:
        self.in_turn = False
        if notify:
            self.slots.agent_became_idle(self)  # type: ignore[arg-type]

    async def stop_process(self, status: AgentStatus) -> None:
        self.stop_calls += 1
        self.stopping.set()
        await self.may_stop.wait()
        self.process_running = False
        self.slots.release(self)  # type: ignore[arg-type]


async def running(
    slots: ProcessSlots, name: str, last_active: float = 0.0
) -> FakeAgent:
    agent = FakeAgent(slots, name, last_active)
    await agent.start_turn()
    agent.end_turn(notify=False)
    return agent


def start(agent: FakeAgent) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(
        agent.start_turn(), name=f"turn:{agent.id}"
    )


async def test_waiters_get_slots_in_arrival_order_with_one_stop_per_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="agentchat.agents.slots")
    slots = ProcessSlots(1)
    holder = await running(slots, "holder")
    holder.may_stop.clear()
    a, b, c = (FakeAgent(slots, name) for name in "abc")
    turns = {agent.id: start(agent) for agent in (a, b, c)}
    await asyncio.wait_for(holder.stopping.wait(), TIMEOUT)
    # While the holder is being stopped, more wake-ups must not pick it (or anyone) again.
    for _ in range(3):
        slots.agent_became_idle(holder)  # type: ignore[arg-type]
        await settle()
    assert holder.stop_calls == 1
    assert slots.waiting == 3
    holder.may_stop.set()

    granted: list[str] = []
    for agent in (a, b, c):
        await asyncio.wait_for(turns[agent.id], TIMEOUT)
        granted.append(agent.id)
        await settle()
        # The one slot is held by a busy agent: nobody else gets in, nobody is stopped.
        assert [h.id for h in slots.holders()] == [agent.id]
        assert not any(t.done() for name, t in turns.items() if name not in granted)
        agent.end_turn()
    assert granted == ["a", "b", "c"]
    assert (holder.stop_calls, a.stop_calls, b.stop_calls, c.stop_calls) == (1, 1, 1, 0)
    stops = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("stopping idle agent")
    ]
    assert stops == [
        "stopping idle agent holder to make room for a",
        "stopping idle agent a to make room for b",
        "stopping idle agent b to make room for c",
    ]


async def test_least_recently_active_idle_agent_gives_way() -> None:
    slots = ProcessSlots(3)
    recent = await running(slots, "recent", last_active=200.0)
    oldest = await running(slots, "oldest", last_active=100.0)
    busy = FakeAgent(slots, "busy", last_active=1.0)
    await busy.start_turn()  # older still, but in a turn
    newcomer = FakeAgent(slots, "newcomer")
    await asyncio.wait_for(newcomer.start_turn(), TIMEOUT)
    assert (oldest.stop_calls, recent.stop_calls, busy.stop_calls) == (1, 0, 0)
    assert {h.id for h in slots.holders()} == {"recent", "busy", "newcomer"}


async def test_a_victim_that_starts_a_turn_before_it_is_stopped_is_spared() -> None:
    slots = ProcessSlots(1)
    holder = await running(slots, "holder")
    waiter = FakeAgent(slots, "waiter")
    turn = start(waiter)
    await asyncio.sleep(
        0
    )  # the waiter queues and picks the holder; the stop has not run yet
    holder.in_turn = True  # a message arrived for the holder in between
    await settle()
    assert holder.stop_calls == 0 and not turn.done()
    holder.end_turn()
    await asyncio.wait_for(turn, TIMEOUT)
    assert holder.stop_calls == 1


async def test_an_agent_that_goes_idle_without_saying_so_is_found_by_the_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slots_module, "POLL_SECONDS", 0.01)
    slots = ProcessSlots(1)
    holder = FakeAgent(slots, "holder")
    await holder.start_turn()
    waiter = FakeAgent(slots, "waiter")
    turn = start(waiter)
    await settle()
    holder.end_turn(notify=False)
    await asyncio.wait_for(turn, TIMEOUT)
    assert holder.stop_calls == 1


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    slots = ProcessSlots(1)
    holder = FakeAgent(slots, "holder")
    await holder.start_turn()
    first, second = FakeAgent(slots, "first"), FakeAgent(slots, "second")
    first_turn, second_turn = start(first), start(second)
    await settle()
    first_turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first_turn
    assert slots.waiting == 1
    holder.end_turn()
    await asyncio.wait_for(second_turn, TIMEOUT)
    assert [h.id for h in slots.holders()] == ["second"]
    assert holder.stop_calls == 1 and first.stop_calls == 0


async def test_a_waiter_cancelled_just_after_its_slot_came_hands_it_on() -> None:
    slots = ProcessSlots(1)
    holder = FakeAgent(slots, "holder")
    await holder.start_turn()
    first, second = FakeAgent(slots, "first"), FakeAgent(slots, "second")
    first_turn, second_turn = start(first), start(second)
    await settle()
    slots.release(holder)  # the slot goes to `first` at once…
    first_turn.cancel()  # …which is cancelled before it could use it
    with pytest.raises(asyncio.CancelledError):
        await first_turn
    await asyncio.wait_for(second_turn, TIMEOUT)
    assert [h.id for h in slots.holders()] == ["second"]
    assert slots.waiting == 0


async def test_has_room_only_while_a_slot_is_free_or_an_idle_agent_is_not_promised() -> (
    None
):
    slots = ProcessSlots(1)
    assert slots.has_room()
    holder = FakeAgent(slots, "holder")
    await holder.start_turn()
    assert not slots.has_room()  # the only running agent is busy
    holder.in_turn = False
    assert slots.has_room()  # it is idle: it would be stopped for a newcomer
    holder.in_turn = True
    waiter = FakeAgent(slots, "waiter")
    turn = start(waiter)
    await settle()
    holder.in_turn = False  # idle, but the waiter already queued for it
    assert not slots.has_room()
    slots.agent_became_idle(holder)  # type: ignore[arg-type]
    await asyncio.wait_for(turn, TIMEOUT)
    assert not slots.has_room()  # the waiter got the slot and is in its turn


# With real agents: five agents, two slots, one message each.


async def test_every_agent_answers_with_one_stop_per_start_beyond_the_limit(
    store: StateStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Far beyond the test's timeout: only Agent's own agent_became_idle() can hand the slots on.
    monkeypatch.setattr(slots_module, "POLL_SECONDS", 60)
    monkeypatch.setattr(InstantBackend, "starts", 0)
    caplog.set_level(logging.INFO, logger="agentchat.agents.slots")
    slots = ProcessSlots(2)

    def spec(record: AgentRecord) -> BackendSpec:
        return BackendSpec(
            agent_id=record.id, cwd=tmp_path, session_id=record.session_id
        )

    agents: list[Agent] = []
    chats: list[AnsweredChat] = []
    for n in range(5):
        record = AgentRecord(
            id=f"agent-{n}",
            owner="alice@test",
            repo=str(tmp_path),
            backend="fake",
            session_id=f"s{n}",
        )
        await store.save_agent(record)
        agent = Agent(
            record,
            store=store,
            backend_factory=lambda _spec: InstantBackend(),
            spec_factory=spec,
            slots=slots,
            idle_timeout=3600,
        )
        agent.chat = chat = AnsweredChat()
        await agent.load()
        await agent.start()
        agents.append(agent)
        chats.append(chat)
    try:
        for agent in agents:
            agent.submit(f"hello {agent.id}", None)
        await asyncio.wait_for(
            asyncio.gather(*(chat.answered.wait() for chat in chats)), TIMEOUT
        )
        stops = [
            r
            for r in caplog.records
            if r.getMessage().startswith("stopping idle agent")
        ]
        assert InstantBackend.starts == 5
        assert len(stops) == 5 - 2
        assert slots.used == 2
    finally:
        await asyncio.gather(*(agent.shutdown() for agent in agents))
    assert slots.used == 0
