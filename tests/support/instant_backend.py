"""An in-memory backend and chat side for the Agent's own tests: no process, no XMPP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agentchat.agents.backends.base import (
    AgentBackend,
    AgentEvent,
    EventChannel,
    TurnResult,
)
from agentchat.store.records import AgentStatus


class InstantBackend(AgentBackend):
    """Answers every message at once; counts its starts."""

    kind = "fake"
    starts = 0

    def __init__(self) -> None:
        self._channel = EventChannel()
        self._running = False

    async def start(self) -> None:
        InstantBackend.starts += 1
        self._running = True

    async def send(self, text: str) -> None:
        self._channel.emit(TurnResult(is_error=False, text=f"done: {text}"))

    async def interrupt(self) -> None:
        pass

    async def stop(self) -> None:
        self._running = False
        self._channel.close()

    def events(self) -> AsyncIterator[AgentEvent]:
        return self._channel.stream()

    @property
    def running(self) -> bool:
        return self._running


class AnsweredChat:
    def __init__(self) -> None:
        self.answered = asyncio.Event()

    async def show_event(self, event: AgentEvent) -> None:
        if isinstance(event, TurnResult):
            self.answered.set()

    async def notify(self, text: str) -> None:
        pass

    def status_changed(self, status: AgentStatus) -> None:
        pass

    def recover_unhandled(self, messages: list[object]) -> None:
        pass

    def turn_changed(self, turn: object) -> None:
        pass
