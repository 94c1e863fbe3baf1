"""Test support: a fake Claude Code CLI, mocks of the services the real CLI talks to, fixture
recording, and an event reader for backend tests."""

from __future__ import annotations

import asyncio
import os
from typing import TypeVar

from agentchat.agents.backends.base import AgentBackend, AgentEvent

E = TypeVar("E", bound=AgentEvent)


class EventReader:
    """Reads one backend's events with timeouts; everything read is kept in ``seen``."""

    def __init__(self, backend: AgentBackend) -> None:
        self._events = backend.events().__aiter__()
        self.seen: list[AgentEvent] = []

    async def next(self, timeout: float = 5.0) -> AgentEvent:
        event = await asyncio.wait_for(self._events.__anext__(), timeout)
        self.seen.append(event)
        return event

    async def until(self, kind: type[E], timeout: float = 10.0) -> tuple[list[AgentEvent], E]:
        """The events before the first ``kind``, and that event; within ``timeout`` in all."""
        before: list[AgentEvent] = []
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next(timeout)
                if isinstance(event, kind):
                    return before, event
                before.append(event)

    async def rest(self, timeout: float = 5.0) -> list[AgentEvent]:
        """Everything until the iterator ends (it does after stop())."""
        events: list[AgentEvent] = []
        async with asyncio.timeout(timeout):
            async for event in self._events:
                self.seen.append(event)
                events.append(event)
        return events


def of(kind: type[E], events: list[AgentEvent]) -> list[E]:
    """The events of one kind."""
    return [event for event in events if isinstance(event, kind)]


async def wait_process_gone(pid: int, timeout: float) -> None:
    """Wait for a process that is not our child to end: its pidfd turns readable then."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(descriptor, readable)
    try:
        await asyncio.wait_for(ended, timeout)
    finally:
        loop.remove_reader(descriptor)
        os.close(descriptor)
