"""One Agent with an in-memory backend: what its owner would notice of its bookkeeping.

A turn's end is saved (the message is not run again after a restart, the turn is counted), a bug
in a turn is reported and the next message still gets its answer, and a store operation finishes
even when the coroutine waiting for it is cancelled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path


from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import AgentEvent, BackendSpec, TurnResult
from agentchat.agents.slots import ProcessSlots
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord, AgentStatus, InboundMessage, MessageState
from tests.support.instant_backend import InstantBackend

TIMEOUT = 5.0


class RecordingChat:
    """The chat side: every turn's end and every notice, in order."""

    def __init__(self) -> None:
        self.results: asyncio.Queue[TurnResult] = asyncio.Queue()
        self.notices: list[str] = []
        self.statuses: list[AgentStatus] = []

    async def show_event(self, event: AgentEvent) -> None:
        if isinstance(event, TurnResult):
            self.results.put_nowait(event)

    async def notify(self, text: str) -> None:
        self.notices.append(text)

    def status_changed(self, status: AgentStatus) -> None:
        self.statuses.append(status)

    def recover_unhandled(self, messages: list[InboundMessage]) -> None:
        self.notices.extend(f"unhandled: {m.body}" for m in messages)

    def turn_changed(self, turn: object) -> None:
        pass


class BrokenOnceBackend(InstantBackend):
    """The first message hits a bug of ours (not an AgentChatError); later ones are answered."""

    failed = False

    async def send(self, text: str) -> None:
        if not BrokenOnceBackend.failed:
            BrokenOnceBackend.failed = True
            raise RuntimeError("a bug")
        await super().send(text)


async def make_agent(store: StateStore, tmp_path: Path, backend: type[InstantBackend]) -> tuple[Agent, RecordingChat]:
    record = AgentRecord(id="swift-fox", owner="alice@test", repo=str(tmp_path), backend="fake", session_id="s1")
    await store.save_agent(record)
    agent = Agent(
        record,
        store=store,
        backend_factory=lambda _spec: backend(),
        spec_factory=lambda r: BackendSpec(agent_id=r.id, cwd=tmp_path, session_id=r.session_id),
        slots=ProcessSlots(1),
        idle_timeout=3600,
    )
    agent.chat = chat = RecordingChat()
    await agent.load()
    await agent.start()
    return agent, chat


async def submit(store: StateStore, agent: Agent, text: str) -> None:
    """As the agent's bot does: the message is recorded (by its inbox), then handed to the agent."""
    agent.submit(text, await store.add_inbound(agent.id, agent.owner, text))


async def test_an_answered_message_is_saved_as_done_with_the_turn_counted(store: StateStore, tmp_path: Path) -> None:
    agent, chat = await make_agent(store, tmp_path, InstantBackend)
    try:
        await submit(store, agent, "first")
        await asyncio.wait_for(chat.results.get(), TIMEOUT)
        await submit(store, agent, "second")
        await asyncio.wait_for(chat.results.get(), TIMEOUT)
        for _ in range(100):  # the end of the turn is saved just after its result is shown
            if not await store.pending_inbound(agent.id):
                break
            await asyncio.sleep(0.01)
    finally:
        await agent.shutdown()
    # What a restart would find: nothing to run again, both turns counted.
    assert await store.pending_inbound(agent.id) == []
    [saved] = await store.load_agents()
    assert saved.turns == 2
    states = await store.query("SELECT body, state FROM inbound ORDER BY id")
    assert states == [("first", MessageState.DONE.value), ("second", MessageState.DONE.value)]
    # The chat saw the turn: working, then idle (shown or not, see AgentBot), never left "working".
    assert chat.statuses[-1] in (AgentStatus.IDLE, AgentStatus.STOPPED)


async def test_a_bug_in_a_turn_is_reported_and_the_next_message_is_answered(store: StateStore, tmp_path: Path) -> None:
    BrokenOnceBackend.failed = False
    agent, chat = await make_agent(store, tmp_path, BrokenOnceBackend)
    try:
        await submit(store, agent, "hits the bug")
        await submit(store, agent, "after the bug")
        result = await asyncio.wait_for(chat.results.get(), TIMEOUT)
        assert result.text == "done: after the bug"
        assert any("Internal error" in notice for notice in chat.notices), chat.notices
        assert not agent.in_turn
    finally:
        await agent.shutdown()
    # Not run again at every restart: the owner was told it failed.
    assert await store.pending_inbound(agent.id) == []


async def test_a_store_operation_finishes_when_its_caller_is_cancelled(store: StateStore) -> None:
    record = AgentRecord(id="calm-owl", owner="alice@test", repo="/tmp", backend="fake", session_id="s1")
    saving = asyncio.get_running_loop().create_task(store.save_agent(record))
    await asyncio.sleep(0)  # handed to the store's thread
    saving.cancel()
    await asyncio.gather(saving, return_exceptions=True)
    # Handed to the store, it is done: the next operation runs after it, on the same thread.
    assert [r.id for r in await store.load_agents()] == ["calm-owl"]
