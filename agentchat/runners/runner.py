"""`agentchat runner start`: a machine that runs agents for a hub, as one more client of the hub's Prosody.

Outbound connections only (its own account, ``runner-NAME@domain``, and one per agent it runs), so a
laptop behind NAT serves as well as a server. It answers the hub's requests (create, kill, state, status,
repos) and nobody else's; it says hello at every new session (the hub answers with the agents it should
have: any other was ended while it was away), and goodbye when it stops. Its agents are
agentchat.runners.hosted: their chats log in here, their CLIs, permission endpoint and state stay here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from agentchat import __version__
from agentchat.agent_host import AgentHost, register_environment_secrets
from agentchat.agents.agent import Agent
from agentchat.agents.backends.factory import available_backends, create_backend
from agentchat.agents.repos import list_repositories
from agentchat.bots.agent.bot import AgentBot
from agentchat.chat.port import Inbound, Outbound, Release
from agentchat.config import Settings
from agentchat.errors import AgentChatError, ConfigError
from agentchat.logs import register_secret
from agentchat.runners import protocol as p
from agentchat.runners.hosted import HostedAgents
from agentchat.runners.registration import JOIN_FILE
from agentchat.store.database import StateStore
from agentchat.tasks import TaskGroup
from agentchat.xmpp.iq import IqChannel, IqFailed, IqRefused, IqRequest
from agentchat.xmpp.scram import ScramLoginCache
from agentchat.xmpp.session import LoginFailed, XmppSession

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 15.0
GOODBYE_TIMEOUT = 2.0
# Between hellos the hub did not answer (it restarts, or its server is away).
HELLO_RETRY = (1.0, 30.0)
# How long the runner waits for its own first login before saying so again.
CONNECT_ATTEMPT = 15.0
RUNNER_KEEPALIVE = 5.0


class RunnerRefused(AgentChatError):
    """The hub refused this runner (not registered there)."""


class RunnerService:
    """Owns every long-lived piece of a runner; start() and stop() run in a fixed order."""

    def __init__(self, settings: Settings) -> None:
        runner = settings.runner
        if runner.jid is None or runner.password is None:
            raise ConfigError("runner.jid and runner.password are not set: run the line `agentchat runner add NAME` "
                              "printed on the hub")  # fmt: skip
        self.settings = settings
        self.jid = runner.jid.lower()
        local, _, domain = self.jid.partition("@")
        self.name = local.removeprefix(p.ACCOUNT_PREFIX)
        self.hub_jid = (runner.hub or f"manager@{domain}").lower()
        password = runner.password.get_secret_value()
        register_secret(password)
        register_environment_secrets(settings, os.environ)
        self.store = StateStore(settings.home / "state.db")
        # The agents' side as on the hub: the same sandbox, permission endpoint, files and forms.
        self.agent_host = AgentHost(settings, self.store, lookup=self._lookup,
                                    secret_files=[settings.home / JOIN_FILE])  # fmt: skip
        self.permissions = self.agent_host.permissions
        self.mcp = self.agent_host.mcp
        self.agents = HostedAgents(
            store=self.store,
            base_path=settings.work.base_path,
            backends=lambda: available_backends(settings.agents),
            chat_factory=self._agent_chat,
            backend_factory=lambda kind, spec: create_backend(kind, spec, settings.agents),
            spec_factory=self.agent_host.backend_spec,
            max_concurrent=settings.agents.max_concurrent,
            idle_timeout=settings.agents.idle_timeout / 1000,
            login_cache=ScramLoginCache(),
            on_agent_removed=self.agent_host.agent_removed,
        )
        # Its own link is checked often: the hub's requests come over it, and its return wakes the agents' links.
        self.session = XmppSession(self.jid, password, settings.xmpp, keepalive_interval=RUNNER_KEEPALIVE)
        self.channel = IqChannel(self.session.client, p.NAMESPACE)
        self._sessions: dict[str, XmppSession] = {}  # the agents'
        self._told: set[str] = set()
        self._tasks = TaskGroup(f"runner:{self.name}")
        self._ready = False  # the agents are back: hellos may go out
        self._hello: asyncio.Task[None] | None = None
        # Why the hub refused this runner, once it did: run_until_signalled then ends with RunnerRefused.
        self.refusal: str | None = None
        self._refused = asyncio.Event()

    @property
    def hub_full_jid(self) -> str:
        return f"{self.hub_jid}/agentchat"

    async def start(self) -> None:
        await self.agent_host.open_sandbox()
        await self.store.open()
        await self.agent_host.start_endpoint()
        log.info("Runner %s: permission endpoint on %s", self.name, self.mcp.url)
        self.channel.serve(self._serve)
        self.session.attach(self._deliver, on_online=self._online)
        self.session.set_presence(f"agentchat runner {self.name}", None)
        await self._connect()
        restored = await self.agents.restore()
        log.info("Runner %s: %d agent(s) restored", self.name, len(restored))
        for agent in restored:
            if agent.chat is not None and agent.interrupted is None:
                await agent.chat.notify(f"🔄 Runner {self.name} restarted. This agent is stopped; your next message "
                                        "resumes its session.")  # fmt: skip
        self._ready = True
        self._say_hello_soon()
        log.info("Runner %s started: serving %s from %s", self.name, self.hub_jid, self.settings.work.base_path)

    async def stop(self) -> None:
        log.info("Runner %s stopping...", self.name)
        if self._hello is not None:
            self._hello.cancel()
        if self.session.online:
            try:
                await self.channel.request(self.hub_full_jid, p.Op.GOODBYE.value, p.encode(p.Empty()), GOODBYE_TIMEOUT)
            except AgentChatError as exc:
                log.info("Runner %s: goodbye not heard: %s", self.name, exc)
        await self.permissions.close()
        await self.agents.shutdown()
        await self._tasks.cancel_all()
        await self.channel.close()
        await self.session.stop()
        await self.agent_host.close()
        await self.store.close()
        log.info("Runner %s stopped", self.name)

    async def run_until_signalled(self) -> None:
        """Serve until SIGINT or SIGTERM (or the hub refuses us), then stop; repeated signals are ignored."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()

        def on_signal(sig: signal.Signals) -> None:
            if stop_requested.is_set():
                log.warning("%s while stopping: ignored, the shutdown goes on", sig.name)
            else:
                log.info("%s received", sig.name)
                stop_requested.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        refusal: str | None = None
        try:
            await self.start()
            waiting = [asyncio.ensure_future(stop_requested.wait()), asyncio.ensure_future(self._refused.wait())]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiting:
                waiter.cancel()
            refusal = self.refusal
        finally:
            stop_requested.set()
            try:
                await self.stop()
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        if refusal is not None:
            raise RunnerRefused(refusal)

    # the runner's own session

    async def _connect(self) -> None:
        """The first login, however long the server takes to be reachable (a laptop that just woke up)."""
        while True:
            try:
                await self.session.start(timeout=CONNECT_ATTEMPT)
                return
            except LoginFailed:
                raise RunnerRefused(f"the server refused the password of {self.jid}: run the line of "
                                    "`agentchat runner add` on the hub again") from None  # fmt: skip
            except TimeoutError:
                log.warning("Runner %s: the server %s:%d is not reachable yet; still trying", self.name,
                            self.settings.xmpp.host, self.settings.xmpp.port)  # fmt: skip

    async def _online(self, online: bool) -> None:
        if online and self._ready:
            # Back after an outage: the agents' links may be dead ones the server closed meanwhile; a ping on
            # each finds out now, not at its next keepalive, so what waited for them is delivered at once.
            for session in self._sessions.values():
                session.probe()
            self._say_hello_soon()

    def _say_hello_soon(self) -> None:
        if self._hello is None or self._hello.done():
            self._hello = asyncio.get_running_loop().create_task(self._say_hello(), name=f"runner:{self.name}:hello")

    async def _say_hello(self) -> None:
        wait, longest = HELLO_RETRY
        while True:
            try:
                hello = p.Hello(state=self._state(), repositories=(await self._repositories()).repositories)
                body = await self.channel.request(self.hub_full_jid, p.Op.HELLO.value, p.encode(hello), HELLO_TIMEOUT)
            except IqRefused as exc:
                log.error("Runner %s: the hub refused it: %s", self.name, exc.text or exc.condition)
                if exc.condition in ("forbidden", "not-authorized"):
                    self.refusal = f"the hub {self.hub_jid} refused this runner: {exc.text or exc.condition}"
                    self._refused.set()
                return
            except IqFailed as exc:
                log.info("Runner %s: the hub did not answer hello (%s); again in %.0f s", self.name, exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, longest)
                continue
            accepted = p.decode(p.HelloAccepted, body)
            known = set(accepted.agents)
            for agent_id in [a.id for a in self.agents.all()] + sorted(self.agents.login_refused):
                if agent_id not in known:
                    log.warning("Runner %s: agent %s was ended while the runner was away; ending it here", self.name, agent_id)
                    await self.agents.kill(agent_id)
            log.info("Runner %s: the hub %s knows it (%d agents)", self.name, self.hub_jid, len(known))
            return

    def _deliver(self, inbound: Inbound, release: Release) -> None:
        """A chat message to the runner's own account: it talks to the hub only; one line per sender."""
        release()
        if inbound.sender in self._told or inbound.reaction is not None or inbound.sender == self.hub_jid:
            return
        self._told.add(inbound.sender)
        self.session.send(Outbound(inbound.sender, f"🖥 This is agentchat's runner {self.name}: it runs agents for "
                                                   f"{self.hub_jid}. Talk to them there (`new`, `list`).") )  # fmt: skip

    # the hub's requests

    async def _serve(self, request: IqRequest) -> str:
        try:
            return await self._answer(request)
        except IqRefused:
            raise
        except (AgentChatError, TimeoutError) as exc:  # told to the hub, and from there to the person, in one line
            log.error("Runner %s: %s failed: %s", self.name, request.op, exc)
            raise IqRefused("internal-server-error", str(exc) or type(exc).__name__) from None

    async def _answer(self, request: IqRequest) -> str:
        op = p.parse_op(request.op)
        if request.sender_bare != self.hub_jid:
            log.warning("Runner %s: refused %s from %s: only the hub %s commands this runner", self.name, op.value,
                        request.sender, self.hub_jid)  # fmt: skip
            raise IqRefused("forbidden", "only this runner's hub commands it")
        if op not in p.HUB_OPS:
            raise IqRefused("bad-request", f"{op.value} is a runner's to say")
        if op is p.Op.STATE:
            return p.encode(self._state())
        if op is p.Op.CREATE:
            command = p.decode(p.CreateAgent, request.body)
            agent = await self.agents.create(command)
            log.info("Runner %s: agent %s created for %s in %s", self.name, agent.id, agent.owner, agent.record.repo)
            return p.encode(p.AgentCreated(agent_id=agent.id, repository_path=agent.record.repo))
        if op is p.Op.KILL:
            kill = p.decode(p.KillAgent, request.body)
            existed = await self.agents.kill(kill.agent_id)
            self._sessions.pop(kill.agent_id, None)
            log.info("Runner %s: agent %s ended by %s", self.name, kill.agent_id, kill.ended_by)
            return p.encode(p.AgentKilled(existed=existed))
        if op is p.Op.STATUS:
            query = p.decode(p.StatusQuery, request.body)
            hosted = self.agents.get(query.agent_id)
            if hosted is None:
                raise IqRefused("item-not-found", f"no agent {query.agent_id!r} on {self.name}")
            record = hosted.record
            return p.encode(p.AgentDetails(
                id=hosted.id, status=record.status.value, repository_path=record.repo, backend=record.backend,
                session_id=record.session_id, turns=record.turns, total_cost_usd=record.total_cost_usd,
                last_active=record.last_active, queued=hosted.queued,
                pending_prompts=len(self.permissions.pending(hosted.id)),
            ))  # fmt: skip
        return p.encode(await self._repositories())

    async def _repositories(self) -> p.Repositories:
        base = self.settings.work.base_path
        try:
            repositories = await asyncio.to_thread(list_repositories, base)
        except AgentChatError as exc:
            return p.Repositories(base_path=str(base), error=str(exc))
        return p.Repositories(base_path=str(base), repositories=[
            p.RepositoryInfo(name=r.name, path=str(r.path), git=r.is_git) for r in repositories])  # fmt: skip

    def _state(self) -> p.RunnerState:
        agents = self.agents.all()
        return p.RunnerState(
            name=self.name, version=__version__, base_path=str(self.settings.work.base_path),
            backends=[p.BackendInfo(kind=k, label=label) for k, label in available_backends(self.settings.agents)],
            agents=self.agents.summaries(), running=sum(1 for a in agents if a.process_running),
            max_concurrent=self.settings.agents.max_concurrent, load=os.getloadavg()[0], cpus=os.cpu_count() or 1,
        )  # fmt: skip

    # wiring (agentchat.agent_host, as for the hub's own agents)

    def _lookup(self, agent_id: str) -> Agent | None:
        return self.agents.get(agent_id)

    def _agent_chat(self, agent: Agent, password: str) -> AgentBot:
        jid = f"{agent.id}@{self.jid.partition('@')[2]}"
        bot = self.agent_host.agent_chat(agent, jid, password, kill_agent=self._ask_hub_to_end)
        assert isinstance(bot.transport, XmppSession)
        self._sessions[agent.id] = bot.transport
        return bot

    async def _ask_hub_to_end(self, agent_id: str, ended_by: str) -> None:
        """`quit` in an agent's chat: the hub ends it (its account, its contact), and then tells us to."""
        try:
            await self.channel.request(self.hub_full_jid, p.Op.END_AGENT.value,
                                       p.encode(p.EndAgent(agent_id=agent_id, ended_by=ended_by)), HELLO_TIMEOUT)  # fmt: skip
        except AgentChatError as exc:
            agent = self.agents.get(agent_id)
            if agent is not None and agent.chat is not None:
                await agent.chat.notify(f"⚠️ The agent could not be ended now: the hub {self.hub_jid} did not answer "
                                        f"({exc}). Try `kill {agent_id}` at the manager later.")  # fmt: skip
