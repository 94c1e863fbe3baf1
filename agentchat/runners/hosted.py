"""The agents a runner runs: the below-the-manager half of the service, on the runner's own machine.

Each is an ``Agent`` with its ``AgentBot`` logged in here, its CLI, sandbox and permission endpoint on this
machine's loopback, and its inbox and records in this runner's own state database. What a runner does not
do is provisioning: the hub made the account and hands over its password in the create command; the
runner keeps it (0600 state file) so that its own restart brings the agents back without the hub.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import AgentBackend, BackendSpec
from agentchat.agents.repos import list_repositories, resolve_repository
from agentchat.agents.slots import ProcessSlots
from agentchat.agents.supervisor import ChatSide, LoginCache, kill_stale_process_group
from agentchat.errors import AgentChatError, StateError
from agentchat.logs import register_secret
from agentchat.runners import protocol as p
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord, AgentStatus, InboundMessage
from agentchat.tasks import TaskGroup
from agentchat.xmpp.iq import IqRefused

log = logging.getLogger(__name__)

RESTORE_CONCURRENCY = 32

ChatFactory = Callable[[Agent, str], ChatSide]


class HostedAgents:
    """The one owner of this runner's Agent objects."""

    def __init__(
        self,
        *,
        store: StateStore,
        base_path: Path,
        backends: Callable[[], list[tuple[str, str]]],
        chat_factory: ChatFactory,
        backend_factory: Callable[[str, BackendSpec], AgentBackend],
        spec_factory: Callable[[AgentRecord], BackendSpec],
        max_concurrent: int,
        idle_timeout: float,
        login_cache: LoginCache | None = None,
        on_agent_removed: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self.base_path = base_path
        self._backends = backends
        self._chat_factory = chat_factory
        self._backend_factory = backend_factory
        self._spec_factory = spec_factory
        self._idle_timeout = idle_timeout
        self._login_cache = login_cache
        self._on_agent_removed = on_agent_removed
        self.slots = ProcessSlots(max_concurrent)
        self._agents: dict[str, Agent] = {}
        self._chats: dict[str, ChatSide] = {}
        # Agents whose account refused the stored password at start (ended on the hub meanwhile, or reset).
        self.login_refused: set[str] = set()
        self._lock = asyncio.Lock()
        self._retries = TaskGroup("hosted-agents")

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def all(self) -> list[Agent]:
        return list(self._agents.values())

    def summaries(self) -> list[p.AgentSummary]:
        listed = [p.AgentSummary(id=a.id, status=a.record.status.value, queued=a.queued) for a in self._agents.values()]
        return listed + [p.AgentSummary(id=i, status="stopped", login_refused=True) for i in sorted(self.login_refused)]

    async def create(self, command: p.CreateAgent) -> Agent:
        """Run the agent the hub provisioned; IqRefused with the reason when it cannot be."""
        kinds = {kind for kind, _ in self._backends()}
        if command.backend not in kinds:
            raise IqRefused("item-not-found", f"no agent type {command.backend!r} here; this runner has {', '.join(sorted(kinds))}")
        try:
            listed = await asyncio.to_thread(list_repositories, self.base_path)
            repository = await asyncio.to_thread(resolve_repository, self.base_path, command.repository, listed)
        except AgentChatError as exc:
            raise IqRefused("item-not-found", str(exc)) from None
        register_secret(command.password)
        async with self._lock:
            if command.agent_id in self._agents:
                raise IqRefused("conflict", f"an agent {command.agent_id} runs here already")
            record = AgentRecord(id=command.agent_id, owner=command.owner, repo=str(repository.path),
                                 backend=command.backend, session_id=str(uuid.uuid4()), status=AgentStatus.IDLE)  # fmt: skip
            agent = self._new_agent(record)
            self._agents[record.id] = agent
        try:
            await self._store.save_agent(record)
            await self._store.save_agent_secrets([(record.id, command.password, None)])
            await self._open_chat(agent, command.password, [])
            await self._store.save_agent_secrets([self._secret_row(record.id, command.password)])
        except BaseException:
            await self._forget(agent.id)
            raise
        chat = self._chats.get(agent.id)
        if command.request_contact and chat is not None:
            chat.request_contact()
        await agent.start()
        if not command.first_task and chat is not None:
            # Its own chat says hello: else the new contact is silent until spoken to.
            await chat.notify(f"👋 {agent.id} ready in {repository.name}; send the first task.")
        if command.first_task:
            try:
                record_id: int | None = await self._store.add_inbound(agent.id, agent.owner, command.first_task)
            except StateError as exc:
                log.error("agent %s: first task kept in memory only: %s", agent.id, exc)
                record_id = None
            agent.submit(command.first_task, record_id)
        return agent

    async def restore(self) -> list[Agent]:
        """Every agent of the last run, logged in with its stored password, stopped until its next message."""
        secrets_by_agent = await self._store.load_agent_secrets()
        pending = await self._store.pending_inbound_by_bot()
        agents: list[Agent] = []
        for record in await self._store.load_agents():
            kill_stale_process_group(record.pid, record.id)
            if record.status is AgentStatus.KILLED or record.id not in secrets_by_agent:
                await self._store.delete_agent(record.id)  # a kill this runner did not finish
                continue
            record.pid, record.status = None, AgentStatus.STOPPED
            agent = self._new_agent(record)
            self._agents[record.id] = agent
            agents.append(agent)
        if agents:
            await self._store.save_agents([a.record for a in agents])
        gate = asyncio.Semaphore(RESTORE_CONCURRENCY)
        changed: list[tuple[str, str, str | None]] = []

        async def restore_one(agent: Agent) -> Agent | None:
            password, cached = secrets_by_agent[agent.id]
            register_secret(password)
            if cached and self._login_cache is not None:
                self._login_cache.seed(password, cached)
            async with gate:
                try:
                    await self._open_chat(agent, password, pending.get(agent.id, []))
                except AgentChatError as exc:
                    await self._refused(agent, exc)
                    return None
                except TimeoutError as exc:
                    log.warning("agent %s: %s; trying again in the background", agent.id, exc)
                    self._retries.spawn(self._open_later(agent), f"open:{agent.id}")
            row = self._secret_row(agent.id, password)
            if row[1:] != (password, cached):
                changed.append(row)
            await agent.start()
            return agent

        restored = await asyncio.gather(*(restore_one(a) for a in agents))
        await self._store.save_agent_secrets(changed)
        return [a for a in restored if a is not None]

    async def kill(self, agent_id: str) -> bool:
        """End an agent for good here (the hub deletes its account); False if there is none."""
        self.login_refused.discard(agent_id)
        async with self._lock:
            agent = self._agents.pop(agent_id, None)
        if agent is None:
            await self._store.delete_agent(agent_id)  # a refused one's rows
            return False
        agent.record.status = AgentStatus.KILLED
        await self._store.save_agent(agent.record)
        if self._on_agent_removed is not None:
            self._on_agent_removed(agent_id)  # its prompts denied while the CLI still waits for them
        await agent.shutdown()
        await self._close_chat(agent_id)
        await self._store.delete_agent(agent_id)
        return True

    async def shutdown(self) -> None:
        await self._retries.cancel_all()
        agents = list(self._agents.values())
        await asyncio.gather(*(a.shutdown() for a in agents), return_exceptions=True)
        chats = list(self._chats.values())
        await asyncio.gather(*(c.close() for c in chats), return_exceptions=True)
        self._chats.clear()

    # internals

    def _new_agent(self, record: AgentRecord) -> Agent:
        return Agent(
            record,
            store=self._store,
            backend_factory=lambda spec: self._backend_factory(record.backend, spec),
            spec_factory=self._spec_factory,
            slots=self.slots,
            idle_timeout=self._idle_timeout,
        )

    async def _open_chat(self, agent: Agent, password: str, pending: list[InboundMessage]) -> None:
        chat = self._chat_factory(agent, password)
        agent.chat = chat
        self._chats[agent.id] = chat
        await agent.load(pending)  # what waited at the last stop first, then what arrives once online
        await chat.open()

    async def _refused(self, agent: Agent, exc: Exception) -> None:
        log.error("agent %s: not restored: %s", agent.id, exc)
        await self._close_chat(agent.id)
        self._agents.pop(agent.id, None)
        await agent.shutdown()
        self.login_refused.add(agent.id)

    async def _open_later(self, agent: Agent) -> None:
        """A login that timed out at start (the server slow or away): again, with growing waits."""
        wait = 2.0
        while agent.chat is not None and self._agents.get(agent.id) is agent:
            await asyncio.sleep(wait)
            chat = self._chats.get(agent.id)
            if chat is None:
                return
            try:
                await chat.open()
                return
            except AgentChatError as exc:
                await self._refused(agent, exc)
                return
            except TimeoutError:
                wait = min(wait * 2, 60.0)

    async def _close_chat(self, agent_id: str) -> None:
        chat = self._chats.pop(agent_id, None)
        if chat is not None:
            await chat.close()

    async def _forget(self, agent_id: str) -> None:
        self._agents.pop(agent_id, None)
        await self._close_chat(agent_id)
        try:
            await self._store.delete_agent(agent_id)
        except StateError as exc:
            log.warning("agent %s: rows left after a failed creation: %s", agent_id, exc)

    def _secret_row(self, agent_id: str, password: str) -> tuple[str, str, str | None]:
        return agent_id, password, self._login_cache.export(password) if self._login_cache is not None else None
