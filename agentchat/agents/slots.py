"""agents.maxConcurrent: how many backend processes run at once, and who gives way."""

from __future__ import annotations

import asyncio
import logging
from itertools import islice
from typing import TYPE_CHECKING

from agentchat.store.records import AgentStatus
from agentchat.tasks import TaskGroup

if TYPE_CHECKING:
    from agentchat.agents.agent import Agent

log = logging.getLogger(__name__)

# A busy agent that becomes idle may not say so (agent_became_idle): waiters look again this often.
POLL_SECONDS = 0.5


class ProcessSlots:
    """A slot per running process. When all are taken, the least recently active idle agent
    is stopped to make room; when every running agent is busy, callers wait.

    Waiters are served first come, first served. Each waiter that no free slot covers gets one
    idle agent stopped for it, and an agent is not chosen again while it is being stopped: at 500
    agents and a limit of 50, letting every waiter pick (the same) victim on every release cost
    100,000 stop attempts for 480 starts.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._holders: dict[str, Agent] = {}
        # In arrival order; a future is resolved once its agent holds a slot.
        self._waiters: dict[asyncio.Future[None], Agent] = {}
        # Agents being stopped to make room (id -> the task stopping it): each covers one waiter.
        self._evicting: dict[str, asyncio.Task[None]] = {}
        self._evictions = TaskGroup("slots")

    @property
    def used(self) -> int:
        return len(self._holders)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def holders(self) -> list[Agent]:
        return list(self._holders.values())

    def evictable(self) -> list[Agent]:
        """Running agents that are neither in a turn nor waiting on anything, nor already being
        stopped to make room; oldest activity first."""
        idle = [
            a for a in self._holders.values() if not a.in_turn and a.queued == 0 and a.id not in self._evicting
        ]
        return sorted(idle, key=lambda a: a.record.last_active)

    def has_room(self) -> bool:
        """Whether one more agent could get a process without waiting for a busy one to finish."""
        uncovered = len(self._waiters) - len(self._evicting)
        return self.limit - self.used + len(self.evictable()) > uncovered

    async def acquire(self, agent: Agent) -> None:
        if agent.id in self._holders:
            return
        if self.used < self.limit and not self._waiters:
            self._holders[agent.id] = agent
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[granted] = agent
        try:
            self._dispatch()
            while not granted.done():
                # Not wait_for: a timeout would cancel the future and lose our place in the line.
                await asyncio.wait((granted,), timeout=POLL_SECONDS)
                if not granted.done() and next(iter(self._waiters)) is granted:
                    # The fallback for agents that became idle without telling us; the first
                    # waiter looks for all of them.
                    self._dispatch()
        except BaseException:
            if self._waiters.pop(granted, None) is None and granted.done():
                # Granted while we were being cancelled: hand the slot on instead of keeping it.
                self.release(agent)
            else:
                self._dispatch()  # one waiter fewer: an eviction under way may now serve the next one
            raise

    def release(self, agent: Agent) -> None:
        if self._holders.pop(agent.id, None) is not None:
            # Stopped to make room: its slot is free now, so it covers no waiter any longer.
            self._evicting.pop(agent.id, None)
            self._dispatch()

    def agent_became_idle(self, agent: Agent) -> None:
        """An agent finished its last queued turn: it may be stopped for a waiter now (saves a poll)."""
        if self._waiters:
            self._dispatch()

    def _dispatch(self) -> None:
        """Free slots go to the first waiters; each waiter left over gets one idle agent stopped."""
        while self._waiters and self.used < self.limit:
            granted = next(iter(self._waiters))
            agent = self._waiters.pop(granted)
            self._holders[agent.id] = agent
            granted.set_result(None)
        uncovered = len(self._waiters) - len(self._evicting)
        if uncovered <= 0:
            return
        victims = self.evictable()[:uncovered]
        waiters = islice(self._waiters.values(), len(self._evicting), None)
        for victim, waiter in zip(victims, waiters):
            self._evicting[victim.id] = self._evictions.spawn(self._evict(victim, waiter), f"evict:{victim.id}")

    async def _evict(self, victim: Agent, waiter: Agent) -> None:
        try:
            # It was idle when chosen; a message may have started a turn since (the task ran later).
            if victim.in_turn or victim.queued or self._holders.get(victim.id) is not victim:
                return
            log.info("stopping idle agent %s to make room for %s", victim.id, waiter.id)
            await victim.stop_process(AgentStatus.STOPPED)
            if self._holders.get(victim.id) is victim and not victim.in_turn and not victim.process_running:
                # It has no process but kept its slot; choosing it again would spin.
                log.warning("agent %s: no process after being stopped, but its slot was not freed", victim.id)
                del self._holders[victim.id]
        finally:
            if self._evicting.get(victim.id) is asyncio.current_task():
                del self._evicting[victim.id]
            self._dispatch()
