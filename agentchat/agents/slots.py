"""agents.maxConcurrent: how many backend processes run at once, and who gives way."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agentchat.store.records import AgentStatus

if TYPE_CHECKING:
    from agentchat.agents.agent import Agent

log = logging.getLogger(__name__)


class ProcessSlots:
    """A slot per running process. When all are taken, the least recently active idle agent
    is stopped to make room; when every running agent is busy, callers wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._holders: dict[str, Agent] = {}
        self._freed = asyncio.Condition()

    @property
    def used(self) -> int:
        return len(self._holders)

    def holders(self) -> list[Agent]:
        return list(self._holders.values())

    def evictable(self) -> list[Agent]:
        """Running agents that are neither in a turn nor waiting on anything, oldest activity first."""
        idle = [a for a in self._holders.values() if not a.in_turn and a.queued == 0]
        return sorted(idle, key=lambda a: a.record.last_active)

    def has_room(self) -> bool:
        return self.used < self.limit or bool(self.evictable())

    async def acquire(self, agent: Agent) -> None:
        while True:
            if agent.id in self._holders:
                return
            if self.used < self.limit:
                self._holders[agent.id] = agent
                return
            candidates = [a for a in self.evictable() if a.id != agent.id]
            if candidates:
                victim = candidates[0]
                log.info("stopping idle agent %s to make room for %s", victim.id, agent.id)
                await victim.stop_process(AgentStatus.STOPPED)
                continue
            # A busy agent becoming idle does not notify; look again at least twice a second.
            async with self._freed:
                try:
                    await asyncio.wait_for(self._freed.wait(), 0.5)
                except (TimeoutError, asyncio.TimeoutError):
                    pass

    def release(self, agent: Agent) -> None:
        if self._holders.pop(agent.id, None) is not None:
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._freed:
            self._freed.notify_all()
