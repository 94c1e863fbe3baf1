"""The service: start-up and shutdown order, and the wiring between the pieces."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable

from agentchat.agent_host import AgentHost, register_environment_secrets
from agentchat.agents.agent import Agent
from agentchat.agents.backends.factory import available_backends, create_backend
from agentchat.agents.sandbox import Sandbox
from agentchat.agents.supervisor import AgentSupervisor
from agentchat.bots.agent.bot import AgentBot
from agentchat.bots.manager.access import AccessPolicy
from agentchat.bots.manager.bot import ManagerBot
from agentchat.bots.manager.forms import manager_forms
from agentchat.bots.room.bot import RoomBot
from agentchat.bots.room.tools import room_tools
from agentchat.chat.port import Outbound
from agentchat.config import Settings
from agentchat.logs import register_secret
from agentchat.provisioning.adhoc import AdhocProvisioner
from agentchat.provisioning.admin_rest import AdminRestProvisioner
from agentchat.provisioning.base import Provisioner
from agentchat.provisioning.contacts import introduce
from agentchat.runners.hub import RunnerHub
from agentchat.runners.protocol import NAMESPACE as RUNNER_NAMESPACE
from agentchat.server.embedded import SECRETS_FILE
from agentchat.server.prosody_config import ServiceJids, Tombstones, tombstones_path
from agentchat.store.database import StateStore
from agentchat.xmpp.iq import IqChannel
from agentchat.xmpp.scram import ScramLoginCache
from agentchat.xmpp.session import XmppSession
from agentchat.xmpp.xep_0050_commands import AdHocCommands

log = logging.getLogger("agentchat")


class Service:
    """Owns every long-lived piece; start() and stop() run in a fixed order."""

    def __init__(self, settings: Settings) -> None:
        settings.require_secrets()
        self.settings = settings
        for secret in (settings.xmpp.admin_password, settings.manager.password):
            if secret is not None:
                register_secret(secret.get_secret_value())
        register_environment_secrets(settings, os.environ)
        self.store = StateStore(settings.home / "state.db")
        # The agents' side (registry, MCP endpoint, sandbox, how an agent is put together), as on a runner.
        self.agent_host = AgentHost(
            settings, self.store, lookup=self._lookup, secret_files=[settings.home / SECRETS_FILE],
            rooms=settings.rooms.enabled,
        )
        self.permissions = self.agent_host.permissions
        self.mcp = self.agent_host.mcp
        self.service_jids = (
            ServiceJids(settings.prosody.service_jids_file) if settings.prosody.service_jids_file else None
        )
        self.provisioner: Provisioner | None = None
        self.supervisor: AgentSupervisor | None = None
        self.runner_hub: RunnerHub | None = None
        self.tombstones = Tombstones(tombstones_path(self.service_jids.path)) if self.service_jids else None
        self.manager: ManagerBot | None = None
        self.manager_session: XmppSession | None = None
        self.rooms: RoomBot | None = None
        self._stopped = asyncio.Event()
        # Set once the agents of the last run are back: until then the manager's answers
        # ("list", "kill <id>") would not know them.
        self._restored = asyncio.Event()

    async def start(self) -> None:
        settings = self.settings
        log.info("Configuration loaded")
        await self.agent_host.open_sandbox()
        await self.store.open()
        log.info("State loaded")
        self.supervisor = AgentSupervisor(
            domain=settings.xmpp.domain,
            store=self.store,
            chat_factory=self._agent_chat,
            backend_factory=lambda kind, spec: create_backend(kind, spec, settings.agents),
            spec_factory=self.agent_host.backend_spec,
            max_concurrent=settings.agents.max_concurrent,
            idle_timeout=settings.agents.idle_timeout / 1000,
            service_accounts=self.service_jids,
            on_agent_removed=self._agent_removed,
            tombstones=self.tombstones,
            manager_jid=settings.manager_jid,
            login_cache=ScramLoginCache(),
        )
        log.info("Agent registry initialized")
        assert settings.manager.password is not None
        self.manager_session = XmppSession(
            settings.manager_jid,
            settings.manager.password.get_secret_value(),
            settings.xmpp,
            extra_plugins=("xep_0004", "xep_0050"),
            rooms=settings.rooms.enabled,
        )
        if self.manager_session.rooms is not None:
            self.rooms = RoomBot(
                self.manager_session, self.manager_session.rooms, store=self.store, supervisor=self.supervisor,
                permissions=self.permissions, settings=settings.rooms, service=settings.rooms_service,
                ready=self._restored,
            )
            for tool in room_tools(self.rooms):
                self.mcp.add_tool(tool)
        await self.agent_host.start_endpoint()
        if self.service_jids is not None:
            await self.service_jids.add(settings.manager_jid, settings.xmpp.admin_jid)
        # Other machines: the manager's account is the hub they answer to (agentchat.runners).
        self.runner_hub = RunnerHub(store=self.store, supervisor=self.supervisor, settings=settings.runners,
                                    domain=settings.xmpp.domain, notify=self._tell, service_accounts=self.service_jids)
        self.runner_hub.attach(IqChannel(self.manager_session.client, RUNNER_NAMESPACE))
        await self.runner_hub.load()
        if self.rooms is not None:
            self.rooms.runner_of = self._runner_of
        self.manager = ManagerBot(
            self.manager_session,
            store=self.store,
            supervisor=self.supervisor,
            access=AccessPolicy(settings.manager.allowed_users, settings.xmpp.domain, self._is_service_jid),
            base_path=settings.work.base_path,
            backends=lambda: available_backends(settings.agents),
            ready=self._restored,
            open_transport=self.manager_session.start,
            close_transport=self.manager_session.stop,
            introduce_user=self._introduce_manager,
            rooms=self.rooms,
            runners=self.runner_hub,
        )
        self.manager_session.attach(self.manager.deliver)
        AdHocCommands(self.manager_session, manager_forms(self.manager)).install()  # its forms (XEP-0050)
        await self.manager.start()
        self.provisioner = self._make_provisioner()
        self.supervisor.provisioner = self.provisioner
        restored = await self.supervisor.restore()
        if self.rooms is not None:
            await self.rooms.start()  # after the agents: they take their seats again
        await self.runner_hub.start()
        self._restored.set()
        for agent in restored:
            if agent.chat is not None and agent.interrupted is None:
                await agent.chat.notify(
                    "🔄 agentchat restarted. This agent is stopped; your next message resumes its session."
                )
        log.info("Manager bot started (%s); %d agent(s) restored", settings.manager_jid, len(restored))
        log.info("Agent Chat Service started successfully")
        log.info("Listening for messages...")

    async def stop(self) -> None:
        """Deny pending prompts, end agents' processes, log out, save state; safe to call twice."""
        log.info("Agent Chat Service stopping...")
        await self.permissions.close()
        if self.supervisor is not None:
            await self.supervisor.shutdown()
        if self.runner_hub is not None:
            await self.runner_hub.stop()
        if self.rooms is not None:
            await self.rooms.stop()
        if self.manager is not None:
            await self.manager.stop()
        await self.agent_host.close()
        if self.provisioner is not None:
            await self.provisioner.close()
        await self.store.close()
        log.info("Agent Chat Service stopped")
        self._stopped.set()

    async def run_until_signalled(self, then: Callable[[], Awaitable[None]] | None = None) -> None:
        """Serve until SIGINT or SIGTERM, then stop, and then run ``then`` (the embedded Prosody's stop),
        with repeated signals ignored until all of it is done."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()

        def on_signal(sig: signal.Signals) -> None:
            # The handlers stay through stop(): a repeated signal (a second Ctrl-C, `docker stop`
            # then `kill`) would otherwise end the shutdown half-way. SIGKILL still ends it at once.
            if stop_requested.is_set():
                log.warning("%s while stopping: ignored, the shutdown goes on", sig.name)
            else:
                log.info("%s received", sig.name)
                stop_requested.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await self.start()
            await stop_requested.wait()
        finally:
            stop_requested.set()  # from here on, any signal is a repeat
            try:
                await self.stop()
                if then is not None:
                    await then()
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    # wiring

    def _make_provisioner(self) -> Provisioner:
        settings = self.settings
        if settings.provisioning.method == "adhoc":
            assert self.manager_session is not None
            return AdhocProvisioner(self.manager_session.client, settings.xmpp.domain)
        assert settings.xmpp.admin_password is not None
        return AdminRestProvisioner(
            settings.admin_rest_url,
            settings.xmpp.domain,
            settings.xmpp.admin_jid,
            settings.xmpp.admin_password.get_secret_value(),
        )

    async def _introduce_manager(self, user: str) -> None:
        assert self.provisioner is not None and self.manager_session is not None
        await introduce(self.provisioner, user, self.settings.manager_jid, "agentchat manager",
                        request_subscription=self.manager_session.request_subscription)

    def _is_service_jid(self, jid: str) -> bool:
        local, _, domain = jid.partition("@")
        if domain != self.settings.xmpp.domain:
            return False
        if jid in (self.settings.manager_jid, self.settings.xmpp.admin_jid):
            return True
        if self.runner_hub is not None and self.runner_hub.is_service_jid(jid):
            return True  # a runner, or an agent that runs on one
        return self.supervisor is not None and self.supervisor.get(local) is not None

    def _tell(self, user: str, text: str) -> None:
        """The manager says something to a person unasked (a runner went away, came back)."""
        if self.manager_session is not None:
            self.manager_session.send(Outbound(user, text))

    @property
    def sandbox(self) -> Sandbox:
        return self.agent_host.sandbox

    def _lookup(self, agent_id: str) -> Agent | None:
        return self.supervisor.get(agent_id) if self.supervisor is not None else None

    def _runner_of(self, agent_id: str, owner: str) -> str | None:
        remote = self.runner_hub.get(agent_id) if self.runner_hub is not None else None
        return remote.runner if remote is not None and remote.owner == owner else None

    def _agent_chat(self, agent: Agent, password: str) -> AgentBot:
        """An agent's bot on its own account (opened by the supervisor)."""
        assert self.supervisor is not None
        return self.agent_host.agent_chat(agent, self.supervisor.jid_of(agent.id), password, kill_agent=self.supervisor.kill)

    def _agent_removed(self, agent_id: str) -> None:
        if self.rooms is not None:
            self.rooms.agent_left(agent_id)
        self.agent_host.agent_removed(agent_id)
