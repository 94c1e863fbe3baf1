"""`stop` while the agent waits for a process slot (or its process starts): the message is not with the
agent yet, so it is never sent, and the turn ends as stopped (before, `stop` said "Nothing is running."
and the message ran anyway once the slot came)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from agentchat.agents.agent import Agent, Interrupted
from agentchat.agents.backends.base import AgentEvent, BackendSpec, TurnResult
from agentchat.agents.slots import ProcessSlots
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord
from tests.support.instant_backend import AnsweredChat, InstantBackend

TIMEOUT = 5.0


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.01)


class HeldBackend(InstantBackend):
    """Answers when released; keeps what it was sent."""

    def __init__(self, release: asyncio.Event, sent: list[str]) -> None:
        super().__init__()
        self._release = release
        self._sent = sent

    async def send(self, text: str) -> None:
        self._sent.append(text)
        asyncio.get_running_loop().create_task(self._answer(text))

    async def _answer(self, text: str) -> None:
        await self._release.wait()
        self._channel.emit(TurnResult(is_error=False, text=f"done: {text}"))


class Ends(AnsweredChat):
    def __init__(self) -> None:
        super().__init__()
        self.results: list[TurnResult] = []

    async def show_event(self, event: AgentEvent) -> None:
        if isinstance(event, TurnResult):
            self.results.append(event)
        await super().show_event(event)


async def test_a_stop_while_waiting_for_a_slot_ends_the_turn_unsent(store: StateStore, tmp_path: Path) -> None:
    slots = ProcessSlots(1)
    release = asyncio.Event()
    sent: list[str] = []
    agents: list[Agent] = []
    chats: list[Ends] = []
    for name in ("holder", "waiter"):
        record = AgentRecord(id=name, owner="alice@test", repo=str(tmp_path), backend="fake", session_id=f"s-{name}")
        await store.save_agent(record)
        agent = Agent(record, store=store, backend_factory=lambda _spec: HeldBackend(release, sent),
                      spec_factory=lambda r: BackendSpec(agent_id=r.id, cwd=tmp_path, session_id=r.session_id),
                      slots=slots, idle_timeout=3600)  # fmt: skip
        agent.chat = chat = Ends()
        await agent.load()
        await agent.start()
        agents.append(agent)
        chats.append(chat)
    holder, waiter = agents
    try:
        holder.submit("long job", None)
        await until(lambda: sent == ["long job"])
        waiter.submit("hello", None)
        await until(lambda: waiter.waiting_for_slot)
        outcome = await waiter.interrupt()
        assert outcome.how is Interrupted.STOPPED
        release.set()
        await asyncio.wait_for(chats[1].answered.wait(), TIMEOUT)
        [result] = chats[1].results
        assert result.stopped
        assert sent == ["long job"]  # "hello" never reached a process
        # The next message is sent as usual.
        waiter.submit("again", None)
        await until(lambda: "again" in sent)
    finally:
        await asyncio.gather(*(agent.shutdown() for agent in agents))
