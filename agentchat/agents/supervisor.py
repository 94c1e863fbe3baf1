"""The agent registry: creates, restores, finds and kills agents. The one owner of every Agent."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agentchat.agents.agent import Agent, ChatPort
from agentchat.agents.backends.base import AgentBackend, BackendSpec
from agentchat.agents.names import new_agent_name
from agentchat.agents.slots import ProcessSlots
from agentchat.errors import AgentChatError, ProvisioningError, StateError
from agentchat.logs import register_secret
from agentchat.provisioning.base import AccountExists, AccountMissing, Provisioner
from agentchat.provisioning.contacts import forget, introduce
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord, AgentStatus, InboundMessage

log = logging.getLogger(__name__)


class ChatSide(ChatPort, Protocol):
    """An agent's chat presence (its bot and account), made by the ChatFactory, then opened."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def request_contact(self) -> None:
        """Ask the owner for a presence subscription (where rosters cannot be edited on the server)."""


ChatFactory = Callable[[Agent, str], ChatSide]


class TombstoneList(Protocol):
    """Ended agents, so that a message to one gets an answer saying so (mod_agentchat_tombstones)."""

    async def add(self, jid: str, text: str, now: float) -> None: ...

    async def remove(self, jid: str) -> None: ...


class LoginCache(Protocol):
    """What a login derives from a password to prove it (agentchat.xmpp.scram), kept with the password
    so that the next run's login need not derive it again."""

    def seed(self, password: str, cached: str) -> None: ...

    def export(self, password: str) -> str | None: ...


class ServiceAccounts(Protocol):
    """Keeps the list of the service's own JIDs (they are exempt from Prosody's rate limits)."""

    async def add(self, *jids: str) -> None: ...

    async def remove(self, *jids: str) -> None: ...


# How many agents restore() brings back at once. Each one is mostly waiting on the XMPP server
# (its login), so one at a time took 40 s for 500 agents; a few at a time overlap the waits
# without flooding the server with logins.
RESTORE_CONCURRENCY = 32


class AgentLimitReached(AgentChatError):
    pass


@dataclass
class CreatedAgent:
    agent: Agent
    jid: str
    seconds: float


class AgentSupervisor:
    def __init__(
        self,
        *,
        domain: str,
        store: StateStore,
        chat_factory: ChatFactory,
        backend_factory: Callable[[str, BackendSpec], AgentBackend],
        spec_factory: Callable[[AgentRecord], BackendSpec],
        max_concurrent: int,
        idle_timeout: float,
        service_accounts: ServiceAccounts | None = None,
        on_agent_removed: Callable[[str], None] | None = None,
        tombstones: TombstoneList | None = None,
        manager_jid: str = "",
        login_cache: LoginCache | None = None,
    ) -> None:
        self.domain = domain
        self._store = store
        # Set once the XMPP side is up: XEP-0133 provisioning runs over the manager's session.
        self.provisioner: Provisioner | None = None
        self._chat_factory = chat_factory
        self._backend_factory = backend_factory
        self._spec_factory = spec_factory
        self._idle_timeout = idle_timeout
        self._service_accounts = service_accounts
        self._tombstones = tombstones
        self._manager_jid = manager_jid
        self._on_agent_removed = on_agent_removed
        self._login_cache = login_cache
        self.slots = ProcessSlots(max_concurrent)
        self._agents: dict[str, Agent] = {}
        self._chats: dict[str, ChatSide] = {}
        self._lock = asyncio.Lock()  # creation and removal only; each agent serialises its own work
        # Agents' names in use elsewhere (on runners: agentchat.runners.hub), never given to a new one here.
        self.names_taken_elsewhere: Callable[[], Iterable[str]] = lambda: ()

    def _require_provisioner(self) -> Provisioner:
        if self.provisioner is None:
            raise ProvisioningError("no provisioner yet: the manager bot has not started")
        return self.provisioner

    # queries

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id.strip().lower())

    def all(self) -> list[Agent]:
        return list(self._agents.values())

    def owned_by(self, owner: str) -> list[Agent]:
        return [a for a in self._agents.values() if a.owner == owner]

    def jid_of(self, agent_id: str) -> str:
        return f"{agent_id}@{self.domain}"

    # creation

    def can_start_another(self) -> bool:
        return self.slots.has_room()

    async def create(self, owner: str, backend: str, repo: Path, first_task: str | None) -> CreatedAgent:
        started = time.perf_counter()
        if not self.slots.has_room():
            raise AgentLimitReached(
                f"All {self.slots.limit} agent slots are busy. Free one with `kill <id>`, "
                "or wait until an agent finishes its turn."
            )
        async with self._lock:
            name = new_agent_name(set(self._agents) | set(self.names_taken_elsewhere()))
            # Idle until its first message: the process starts with the first turn.
            record = AgentRecord(
                id=name, owner=owner, repo=str(repo), backend=backend, session_id=str(uuid.uuid4()), status=AgentStatus.IDLE
            )
            # Reserve the name before the slow steps so two creations never pick the same one.
            agent = self._new_agent(record)
            self._agents[name] = agent
        try:
            password = await self._provision(name)
            await self._store.save_agent(record)
            await self._open_chat(agent, password)
            await self._store.save_agent_secrets([self._secret_row(name, password)])
        except BaseException:
            await self._discard(agent)
            raise
        await self._introduce(agent)
        await agent.start()
        if first_task:
            # Recorded first, like every message to an agent: a crash before its turn must not lose it.
            try:
                record_id: int | None = await self._store.add_inbound(agent.id, owner, first_task)
            except StateError as exc:
                log.error("agent %s: first task kept in memory only: %s", agent.id, exc)
                record_id = None
            agent.submit(first_task, record_id)
        return CreatedAgent(agent, self.jid_of(name), time.perf_counter() - started)

    def _new_agent(self, record: AgentRecord) -> Agent:
        return Agent(
            record,
            store=self._store,
            backend_factory=lambda spec: self._backend_factory(record.backend, spec),
            spec_factory=self._spec_factory,
            slots=self.slots,
            idle_timeout=self._idle_timeout,
        )

    async def _provision(self, name: str, *, add_service_account: bool = True, new_name: bool = True) -> str:
        """A fresh random password; an account left over from a crash is taken over."""
        if self._tombstones is not None and new_name:
            await self._tombstones.remove(self.jid_of(name))  # a name given again is no longer ended
        password = secrets.token_urlsafe(24)
        register_secret(password)
        try:
            await self._require_provisioner().create_account(name, password)
        except AccountExists:
            await self._require_provisioner().change_password(name, password)
        if add_service_account and self._service_accounts is not None:
            await self._service_accounts.add(self.jid_of(name))
        return password

    # accounts of agents that run elsewhere (agentchat.runners.hub): made and ended as this supervisor's own

    async def provision_account(self, name: str) -> str:
        """A new agent's account (and service-account entry); its password."""
        return await self._provision(name)

    async def discard_account(self, name: str) -> None:
        """The account of an agent whose creation failed (no tombstone: it never was)."""
        try:
            await self._require_provisioner().delete_account(name)
        except AccountMissing:
            pass
        if self._service_accounts is not None:
            await self._service_accounts.remove(self.jid_of(name))

    async def end_account(self, agent_id: str, ended_by: str, owner: str) -> bool:
        """An ended agent's roster entry, account, service-account entry and tombstone; False if the account
        could not be deleted (the caller tries again at its next start)."""
        await self._finish_removal(agent_id, ended_by, owner)
        try:
            return not await self._require_provisioner().account_exists(agent_id)
        except ProvisioningError:
            return False

    def _secret_row(self, agent_id: str, password: str) -> tuple[str, str, str | None]:
        return agent_id, password, self._login_cache.export(password) if self._login_cache is not None else None

    async def _introduce(self, agent: Agent) -> None:
        """The agent in its owner's roster, named after itself and its repository (both ways)."""
        chat = self._chats.get(agent.id)
        try:
            await introduce(
                self._require_provisioner(), agent.owner, self.jid_of(agent.id),
                f"{agent.id} ({Path(agent.record.repo).name})",
                request_subscription=(lambda _jid: chat.request_contact()) if chat is not None else None,
            )
        except ProvisioningError as exc:
            log.warning("agent %s: not put into the roster of %s: %s", agent.id, agent.owner, exc)

    async def _open_chat(self, agent: Agent, password: str, pending: list[InboundMessage] | None = None) -> None:
        chat = self._chat_factory(agent, password)
        agent.chat = chat
        self._chats[agent.id] = chat
        # The agent's own queue first (what waited at the last stop), then the chat's: new messages
        # that arrive once it is online come after them.
        await agent.load(pending)
        await chat.open()

    async def _discard(self, agent: Agent) -> None:
        self._agents.pop(agent.id, None)
        chat = self._chats.pop(agent.id, None)
        if chat is not None:
            await chat.close()
        try:
            await self._require_provisioner().delete_account(agent.id)
        except (AccountMissing, ProvisioningError) as exc:
            log.debug("agent %s: account cleanup: %s", agent.id, exc)

    # restore after a restart

    async def restore(self) -> list[Agent]:
        """Bring every known agent back online as stopped; its next message resumes the session.

        Each logs in with the password its account was given (kept in the state file): no provisioning
        at all, unless the server refuses it (a server whose accounts were lost, a password changed
        elsewhere): then the account is made or reset again. Returns the agents restored, in the
        records' order; one that fails is logged and left out.
        """
        secrets_by_agent = await self._store.load_agent_secrets()
        pending = await self._store.pending_inbound_by_bot()
        agents: list[Agent] = []
        for record in await self._store.load_agents():
            if record.status == AgentStatus.KILLED:
                # A kill the last run did not finish: the process, the account and the row still go.
                kill_stale_process_group(record.pid, record.id)
                await self._finish_removal(record.id, owner=record.owner)
                continue
            kill_stale_process_group(record.pid, record.id)
            record.pid = None
            record.status = AgentStatus.STOPPED
            agent = self._new_agent(record)
            self._agents[record.id] = agent  # in the records' order, whatever order they come back in
            agents.append(agent)
        each_adds_itself = True
        if self._service_accounts is not None and agents:
            # Before any of them logs in; one rewrite of the file instead of one per agent.
            try:
                await self._service_accounts.add(*(self.jid_of(a.id) for a in agents))
                each_adds_itself = False
            except AgentChatError as exc:
                log.warning("service accounts: %s; adding them one at a time", exc)
        if agents:
            await self._store.save_agents([a.record for a in agents])  # STOPPED, pid cleared: one commit
        limit = asyncio.Semaphore(RESTORE_CONCURRENCY)
        changed: list[tuple[str, str, str | None]] = []

        async def restore_one(agent: Agent) -> Agent | None:
            async with limit:
                return await self._restore_agent(agent, secrets_by_agent.get(agent.id), changed,
                                                 pending.get(agent.id, []), add_service_account=each_adds_itself)

        tasks = [asyncio.create_task(restore_one(a), name=f"restore:{a.id}") for a in agents]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            # An unexpected error (or our own cancellation): leave no restoration running behind.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        try:
            await self._store.save_agent_secrets(changed)
        except StateError as exc:
            log.warning("agents' passwords not saved (the next start resets them): %s", exc)
        return [agent for agent in results if agent is not None]

    async def _restore_agent(
        self, agent: Agent, stored: tuple[str, str | None] | None, changed: list[tuple[str, str, str | None]],
        pending: list[InboundMessage], *, add_service_account: bool,
    ) -> Agent | None:
        try:
            if stored is None:
                password = await self._provision(agent.id, add_service_account=add_service_account, new_name=False)
                await self._open_chat(agent, password, pending)
            else:
                password, cached = stored
                register_secret(password)
                if cached and self._login_cache is not None:
                    self._login_cache.seed(password, cached)
                try:
                    await self._open_chat(agent, password, pending)
                except AgentChatError as exc:
                    log.warning("agent %s: its account refused the stored password (%s); setting a new one", agent.id, exc)
                    agent = await self._replace_agent(agent)
                    password = await self._provision(agent.id, add_service_account=add_service_account, new_name=False)
                    await self._open_chat(agent, password, pending)
                    await self._introduce(agent)  # a server that lost the account lost its roster entries too
            row = self._secret_row(agent.id, password)
            if stored is None or row[1:] != stored:
                changed.append(row)
            chat = self._chats.get(agent.id)
            if chat is not None and not self._require_provisioner().edits_rosters:
                # Its roster entry is on the server already where it can be edited; else ask again.
                chat.request_contact()
        except AgentChatError as exc:
            log.error("agent %s could not be restored: %s", agent.id, exc)
            self._agents.pop(agent.id, None)
            return None
        await agent.start()
        return agent

    async def _replace_agent(self, agent: Agent) -> Agent:
        """A new Agent for the same record, its chat side closed: to load and open it again from the start."""
        chat = self._chats.pop(agent.id, None)
        if chat is not None:
            await chat.close()
        fresh = self._new_agent(agent.record)
        self._agents[agent.id] = fresh
        return fresh

    # removal

    async def kill(self, agent_id: str, ended_by: str = "agentchat") -> Agent | None:
        """End an agent for good; None if there is no such agent. Safe to call twice.

        Failure-atomic: the record is marked KILLED first (if that cannot be saved, the agent stays as it
        was and the error goes to the caller), then the process stops, the chat closes, the account and
        the row are deleted; a restart finishes whatever a crash left undone.
        """
        async with self._lock:
            agent = self._agents.get(agent_id)
            if agent is None:
                return None
            if agent.record.status is not AgentStatus.KILLED:
                previous = agent.record.status
                agent.record.status = AgentStatus.KILLED
                try:
                    await self._store.save_agent(agent.record)
                except BaseException:
                    agent.record.status = previous
                    raise
            self._agents.pop(agent_id, None)
        # Its prompts are denied first, while the CLI still waits for them: the audit log and the chat
        # both say "denied" (ending the process first made the CLI drop them: "withdrawn" in the log).
        if self._on_agent_removed is not None:
            self._on_agent_removed(agent.id)
        await agent.shutdown()
        chat = self._chats.pop(agent.id, None)
        if chat is not None:
            await chat.close()
        await self._finish_removal(agent.id, ended_by, agent.owner)
        return agent

    async def _finish_removal(self, agent_id: str, ended_by: str = "agentchat", owner: str | None = None) -> None:
        """Roster entry, account, service-JID entry and row of a killed agent; what fails is logged and left
        for the next start."""
        if owner is not None:
            try:
                # Before the account goes: Prosody would only end the subscriptions, leaving a dead contact.
                await forget(self._require_provisioner(), owner, self.jid_of(agent_id))
            except ProvisioningError as exc:
                log.warning("agent %s: still in the roster of %s: %s", agent_id, owner, exc)
        try:
            await self._require_provisioner().delete_account(agent_id)
        except AccountMissing:
            pass
        except ProvisioningError as exc:
            # The row stays KILLED: the next start tries again, so no account is orphaned.
            log.error("agent %s: its account could not be deleted (the next start tries again): %s", agent_id, exc)
            return
        if self._service_accounts is not None:
            try:
                await self._service_accounts.remove(self.jid_of(agent_id))
            except AgentChatError as exc:
                log.warning("agent %s: service accounts: %s", agent_id, exc)
        if self._tombstones is not None:
            now = time.time()
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(now))
            after = f" Send `new` to {self._manager_jid} to start another agent." if self._manager_jid else ""
            try:
                await self._tombstones.add(
                    self.jid_of(agent_id), f"⚰️ {agent_id} was ended by {ended_by} on {when} UTC, so this message "
                    f"was not delivered.{after}", now
                )
            except OSError as exc:
                log.warning("agent %s: tombstone not written: %s", agent_id, exc)
        await self._store.delete_agent(agent_id)

    async def shutdown(self) -> None:
        """Service stop: every process ended, every bot offline, records kept."""
        agents = list(self._agents.values())
        await asyncio.gather(*(a.shutdown() for a in agents), return_exceptions=True)
        chats = list(self._chats.values())
        await asyncio.gather(*(c.close() for c in chats), return_exceptions=True)
        self._chats.clear()


AGENT_ID_ENV = "AGENTCHAT_AGENT_ID"


def kill_stale_process_group(pid: int | None, agent_id: str) -> None:
    """A crash of the previous run can leave its backend behind: end that process group.

    Pids get reused, so only a group leader whose environment carries this agent's id
    (every backend is started with AGENTCHAT_AGENT_ID) is signalled.
    """
    if not pid or pid == os.getpid():
        return
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        pgid = os.getpgid(pid)
    except (OSError, ProcessLookupError):
        return
    if f"{AGENT_ID_ENV}={agent_id}".encode() not in environ.split(b"\0") or pgid != pid:
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
        log.warning("agent %s: ended process group %d left over from a previous run", agent_id, pgid)
    except (ProcessLookupError, PermissionError) as exc:
        log.debug("agent %s: stale group %d: %s", agent_id, pgid, exc)
