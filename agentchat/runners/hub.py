"""The hub's side of runners: which machines there are, which agent runs where, and the commands to them.

The hub is the manager's account. It keeps the registry of runners (`agentchat runner add`) and of their
agents (agentchat.runners.store), provisions each remote agent's account as it does a local one, then asks
the runner to run it. Only registered runners are heard (by the JID the server stamps on their IQs); only
their own requests (hello, goodbye, end-agent) are accepted from them.

Liveness: every ``runners.pingInterval`` seconds each runner is asked for its state. A runner that is not
online, or that misses two answers in a row, is offline: its own and its agents' sessions are ended on the
server (so a session left behind by a dropped link stops taking messages, which then wait in offline
storage, and the agents' contacts show them unavailable with the status "runner NAME offline"), and their
owners are told by the manager. When it answers again (or says hello after a restart), they are told it is
back; what waited is delivered to its agents as they log in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agentchat.agents.names import new_agent_name
from agentchat.agents.supervisor import AgentSupervisor, ServiceAccounts
from agentchat.config import RunnersSettings
from agentchat.errors import AgentChatError, ProvisioningError
from agentchat.provisioning.base import AccountMissing, SessionsUnsupported
from agentchat.provisioning.contacts import introduce
from agentchat.runners import protocol as p
from agentchat.runners.store import RemoteAgent, RunnerRecord, RunnerStore
from agentchat.store.database import StateStore
from agentchat.tasks import TaskGroup
from agentchat.xmpp.iq import IqChannel, IqFailed, IqRefused, IqRequest

log = logging.getLogger(__name__)

# Every XMPP account agentchat runs binds this resource (agentchat.xmpp.session.RESOURCE).
RESOURCE = "agentchat"
# Timeouts in a row before a runner that is online (from the server's view) is taken for offline.
MISSED_ANSWERS = 2
END_SESSIONS_CONCURRENCY = 8


class RunnerUnavailable(AgentChatError):
    """The runner is offline (``absent``: the server said so), or did not answer in time."""

    def __init__(self, text: str, *, absent: bool = True) -> None:
        super().__init__(text)
        self.absent = absent


def offline_status(name: str) -> str:
    return f"runner {name} offline"


@dataclass
class RunnerLink:
    """What the hub knows of one runner right now."""

    record: RunnerRecord
    online: bool | None = None  # None: not heard from since the hub started
    since: float = field(default_factory=time.time)
    state: p.RunnerState | None = None
    missed: int = 0
    repositories: list[p.RepositoryInfo] = field(default_factory=list)  # as its last hello announced them

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def full_jid(self) -> str:
        return f"{self.record.jid}/{RESOURCE}"


@dataclass(frozen=True)
class CreatedRemote:
    agent_id: str
    jid: str
    runner: str
    repository_path: str
    seconds: float


Notify = Callable[[str, str], None]


class RunnerHub:
    def __init__(
        self,
        *,
        store: StateStore,
        supervisor: AgentSupervisor,
        settings: RunnersSettings,
        domain: str,
        notify: Notify,
        service_accounts: ServiceAccounts | None = None,
    ) -> None:
        self._records = RunnerStore(store)
        self._supervisor = supervisor
        self._settings = settings
        self.domain = domain
        self._notify = notify
        self._service_accounts = service_accounts
        self._channel: IqChannel | None = None
        self._links: dict[str, RunnerLink] = {}
        self._by_jid: dict[str, str] = {}
        self._agents: dict[str, RemoteAgent] = {}
        self._tasks = TaskGroup("runner-hub")
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # creation and removal of remote agents

    # life cycle

    def attach(self, channel: IqChannel) -> None:
        """Serve runners' requests on the manager's account (before it logs in)."""
        self._channel = channel
        channel.serve(self._serve)

    async def load(self) -> None:
        """The registry, before the manager answers anyone (`list` must know every agent)."""
        await self._records.open()
        await self._refresh_runners()
        self._agents = {a.id: a for a in await self._records.agents()}
        self._supervisor.names_taken_elsewhere = lambda: self._agents.keys()
        if self._service_accounts is not None and self._links:
            # Not throttled at their next login (a runner added while the hub ran: at its next restart).
            await self._service_accounts.add(*(link.record.jid for link in self._links.values()))

    async def start(self) -> None:
        """Finish what a crash left (kills), then watch the runners."""
        for agent in [a for a in self._agents.values() if a.killed]:
            await self._finish_kill(agent, "agentchat")
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="runner-hub:watch")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        await self._tasks.cancel_all()
        if self._channel is not None:
            await self._channel.close()

    # what the manager asks

    @property
    def has_runners(self) -> bool:
        return bool(self._links)

    def links(self) -> list[RunnerLink]:
        return list(self._links.values())

    def link(self, name: str) -> RunnerLink | None:
        return self._links.get(name.strip().lower())

    def get(self, agent_id: str) -> RemoteAgent | None:
        agent = self._agents.get(agent_id.strip().lower())
        return agent if agent is not None and not agent.killed else None

    def owned_by(self, owner: str) -> list[RemoteAgent]:
        return [a for a in self._agents.values() if a.owner == owner and not a.killed]

    def on_runner(self, name: str) -> list[RemoteAgent]:
        return [a for a in self._agents.values() if a.runner == name and not a.killed]

    def is_service_jid(self, jid: str) -> bool:
        local, _, domain = jid.partition("@")
        return domain == self.domain and (jid in self._by_jid or local in self._agents)

    def agent_status(self, agent: RemoteAgent) -> str:
        """What `list` says the agent is doing: the runner's last word, or that the runner is away."""
        link = self._links.get(agent.runner)
        if link is not None and link.online is None:
            return f"runner {agent.runner}: not heard from yet"
        if link is None or not link.online or link.state is None:
            return offline_status(agent.runner)
        for summary in link.state.agents:
            if summary.id == agent.id:
                return "account refused its password" if summary.login_refused else summary.status
        return f"not found on {agent.runner}"

    async def details(self, agent: RemoteAgent) -> p.AgentDetails:
        answer = await self._ask(agent.runner, p.Op.STATUS, p.StatusQuery(agent_id=agent.id))
        assert isinstance(answer, p.AgentDetails)
        return answer

    async def repositories(self, name: str) -> p.Repositories:
        answer = await self._ask(name, p.Op.REPOS, p.Empty())
        assert isinstance(answer, p.Repositories)
        return answer

    async def create(
        self, owner: str, runner: str, backend: str, repository: str, first_task: str | None
    ) -> CreatedRemote:
        """Provision the agent's account here, then have the runner run it; the agent is in its owner's roster."""
        started = time.perf_counter()
        link = self._links.get(runner)
        if link is None:
            raise RunnerUnavailable(f"there is no runner named {runner!r}")
        if not link.online:
            raise RunnerUnavailable(f"{offline_status(runner)}: try again once it is back (see `runners`)")
        async with self._lock:
            name = new_agent_name(set(self._agents) | {a.id for a in self._supervisor.all()})
            agent = RemoteAgent(id=name, runner=runner, owner=owner, repo=repository, backend=backend)
            self._agents[name] = agent  # reserved before the slow steps
        provisioner = self._supervisor.provisioner
        try:
            password = await self._supervisor.provision_account(name)
            await self._records.save_agent(agent)
            created = await self._ask(runner, p.Op.CREATE, p.CreateAgent(
                agent_id=name, owner=owner, backend=backend, repository=repository, password=password,
                first_task=first_task, request_contact=provisioner is not None and not provisioner.edits_rosters,
            ), timeout=self._settings.request_timeout)  # fmt: skip
        except BaseException:
            await self._discard(agent)
            raise
        assert isinstance(created, p.AgentCreated)
        agent.repo = created.repository_path
        await self._records.save_agent(agent)
        await self._introduce(agent)
        return CreatedRemote(name, self._supervisor.jid_of(name), runner, created.repository_path,
                             time.perf_counter() - started)  # fmt: skip

    async def kill(self, agent_id: str, ended_by: str) -> RemoteAgent | None:
        """End a remote agent for good: the runner stops it (now, or when it comes back), its account goes."""
        async with self._lock:
            agent = self.get(agent_id)
            if agent is None:
                return None
            agent.killed = True
            await self._records.save_agent(agent)
        try:
            await self._ask(agent.runner, p.Op.KILL, p.KillAgent(agent_id=agent.id, ended_by=ended_by),
                            timeout=self._settings.request_timeout)  # fmt: skip
        except AgentChatError as exc:  # away, or it failed there: the account goes all the same
            log.info("agent %s: %s; its runner ends it when it says hello again", agent.id, exc)
        await self._finish_kill(agent, ended_by)
        return agent

    # liveness

    async def _watch(self) -> None:
        while True:
            try:
                await self._refresh_runners()
                await asyncio.gather(*(self._check(link) for link in list(self._links.values())))
            except Exception:  # a bug, or the state file unreadable: log it, and look again at the next round
                log.exception("runners: checking them failed; again in %g s", self._settings.ping_interval)
            await asyncio.sleep(self._settings.ping_interval)

    async def _check(self, link: RunnerLink) -> None:
        try:
            state = await self._ask(link.name, p.Op.STATE, p.Empty(), timeout=self._settings.ping_timeout)
        except RunnerUnavailable as exc:
            link.missed += 1
            # Not online is certain; a missed answer may be a busy runner: twice in a row, then.
            if exc.absent or link.missed >= MISSED_ANSWERS or link.online is None:
                await self._went_offline(link, str(exc))
            return
        except AgentChatError as exc:  # an error answer: it is there, but says something is wrong
            log.warning("runner %s: state: %s", link.name, exc)
            return
        assert isinstance(state, p.RunnerState)
        await self._went_online(link, state)

    async def _went_online(self, link: RunnerLink, state: p.RunnerState, *, end_strays: bool = True) -> None:
        was, link.online, link.missed, link.state = link.online, True, 0, state
        if was is True:
            return
        link.since = time.time()
        log.info("runner %s is online (%d agents)", link.name, len(state.agents))
        if end_strays:
            await self._end_strays(link, state)
        if was is False:
            self._tell_owners(link, lambda names: f"✅ Runner {link.name} is back: {names} answer again; what you sent "
                                                  "them meanwhile is answered now.")

    async def _went_offline(self, link: RunnerLink, why: str) -> None:
        was, link.online = link.online, False
        if was is False:
            return
        link.since = time.time()
        log.warning("runner %s is offline: %s", link.name, why)
        self._tasks.spawn(self._end_sessions(link), f"end-sessions:{link.name}")
        if was is True:
            self._tell_owners(link, lambda names: f"⚠️ Runner {link.name} is offline: {names} cannot answer until it is "
                                                  "back. What you send them waits on the server and is answered then.")

    async def _end_sessions(self, link: RunnerLink) -> None:
        """Sessions a dropped link left on the server take messages nobody reads: end them, with the reason."""
        provisioner = self._supervisor.provisioner
        if provisioner is None:
            return
        reason = offline_status(link.name)
        gate = asyncio.Semaphore(END_SESSIONS_CONCURRENCY)

        async def end(username: str) -> None:
            async with gate:
                try:
                    await provisioner.end_sessions(username, reason)
                except (SessionsUnsupported, AccountMissing):
                    pass
                except ProvisioningError as exc:
                    log.warning("runner %s: the sessions of %s not ended: %s", link.name, username, exc)

        usernames = [link.record.jid.split("@")[0], *(a.id for a in self.on_runner(link.name))]
        await asyncio.gather(*(end(username) for username in usernames))

    def _tell_owners(self, link: RunnerLink, text: Callable[[str], str]) -> None:
        by_owner: dict[str, list[str]] = {}
        for agent in self.on_runner(link.name):
            by_owner.setdefault(agent.owner, []).append(agent.id)
        for owner, ids in by_owner.items():
            self._notify(owner, text(", ".join(ids)))

    async def _end_strays(self, link: RunnerLink, state: p.RunnerState) -> None:
        """Agents the runner still has that were ended while it was away."""
        known = {a.id for a in self.on_runner(link.name)}
        for summary in state.agents:
            if summary.id not in known and summary.id not in self._agents:
                self._tasks.spawn(self._ask(link.name, p.Op.KILL, p.KillAgent(
                    agent_id=summary.id, ended_by="agentchat (ended while the runner was away)")), f"stray:{summary.id}")

    # requests from runners

    async def _serve(self, request: IqRequest) -> str:
        op = p.parse_op(request.op)
        link = await self._link_of(request.sender_bare)
        if link is None:
            log.warning("runners: refused %s from %s: not a registered runner", op.value, request.sender)
            raise IqRefused("forbidden", "not a registered runner of this hub: run `agentchat runner add NAME` there")
        if op not in p.RUNNER_OPS:
            log.warning("runners: refused %s from runner %s: a runner does not command the hub", op.value, link.name)
            raise IqRefused("forbidden", f"{op.value} is the hub's to ask")
        if op is p.Op.HELLO:
            hello = p.decode(p.Hello, request.body)
            link.repositories = hello.repositories
            await self._went_online(link, hello.state, end_strays=False)  # the answer tells it which to end
            return p.encode(p.HelloAccepted(agents=[a.id for a in self.on_runner(link.name)]))
        if op is p.Op.GOODBYE:
            was, link.online, link.since = link.online, False, time.time()
            log.info("runner %s stopped", link.name)
            if was is True:
                self._tell_owners(link, lambda names: f"⏹ Runner {link.name} stopped: {names} cannot answer until it "
                                                      "starts again. What you send them waits on the server.")
            return p.encode(p.Empty())
        end = p.decode(p.EndAgent, request.body)
        agent = self.get(end.agent_id)
        if agent is None or agent.runner != link.name:
            raise IqRefused("item-not-found", f"no agent {end.agent_id!r} on {link.name}")
        if end.ended_by != agent.owner:
            raise IqRefused("forbidden", "only the agent's owner ends it")
        # Answered first: the kill asks this very runner to stop the agent.
        self._tasks.spawn(self.kill(agent.id, end.ended_by), f"end:{agent.id}")
        return p.encode(p.Empty())

    async def _link_of(self, bare_jid: str) -> RunnerLink | None:
        name = self._by_jid.get(bare_jid)
        if name is None:  # registered since we last looked (`agentchat runner add` runs in another process)
            await self._refresh_runners()
            name = self._by_jid.get(bare_jid)
        return self._links.get(name) if name is not None else None

    async def _refresh_runners(self) -> None:
        records = await self._records.runners()
        names = {r.name for r in records}
        for record in records:
            if record.name not in self._links:
                self._links[record.name] = RunnerLink(record)
                self._by_jid[record.jid.lower()] = record.name
        for name in [n for n in self._links if n not in names]:  # removed with `agentchat runner remove`
            link = self._links.pop(name)
            self._by_jid.pop(link.record.jid.lower(), None)

    # internals

    async def _ask(self, runner: str, op: p.Op, message: p.Message, timeout: float | None = None) -> p.Message:
        link = self._links.get(runner)
        if link is None or self._channel is None:
            raise RunnerUnavailable(f"there is no runner named {runner!r}")
        try:
            body = await self._channel.request(link.full_jid, op.value, p.encode(message),
                                               timeout or self._settings.ping_timeout)  # fmt: skip
        except IqFailed as exc:
            raise RunnerUnavailable(f"{offline_status(runner)} ({exc})", absent=exc.absent) from None
        except IqRefused as exc:
            raise AgentChatError(f"{runner}: {exc.text or exc.condition}") from None
        return p.decode(p.ANSWERS[op], body)

    async def _introduce(self, agent: RemoteAgent) -> None:
        provisioner = self._supervisor.provisioner
        if provisioner is None or not provisioner.edits_rosters:
            return  # the runner's session asks the owner itself (CreateAgent.request_contact)
        try:
            await introduce(provisioner, agent.owner, self._supervisor.jid_of(agent.id),
                            f"{agent.id} ({agent.repo.rstrip('/').rsplit('/', 1)[-1]}, {agent.runner})")  # fmt: skip
        except ProvisioningError as exc:
            log.warning("agent %s: not put into the roster of %s: %s", agent.id, agent.owner, exc)

    async def _discard(self, agent: RemoteAgent) -> None:
        """A creation that failed: no account, no row."""
        self._agents.pop(agent.id, None)
        try:
            await self._records.delete_agent(agent.id)
            await self._supervisor.discard_account(agent.id)
        except AgentChatError as exc:
            log.warning("agent %s: clean-up after a failed creation: %s", agent.id, exc)

    async def _finish_kill(self, agent: RemoteAgent, ended_by: str) -> None:
        self._agents.pop(agent.id, None)
        if await self._supervisor.end_account(agent.id, ended_by, agent.owner):
            await self._records.delete_agent(agent.id)
        # else the row stays, killed: the next start tries again
