"""The service: start-up and shutdown order, and the wiring between the pieces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
import logging
import os
import re
import shutil
import signal
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import BackendSpec
from agentchat.agents.backends.factory import available_backends, create_backend
from agentchat.agents.sandbox import AgentDirs, Sandbox, open_sandbox
from agentchat.agents.supervisor import AGENT_ID_ENV, AgentSupervisor
from agentchat.config import Settings
from agentchat.logs import register_secret
from agentchat.bots.agent.bot import AgentBot
from agentchat.bots.agent.forms import agent_forms
from agentchat.bots.manager.access import AccessPolicy
from agentchat.bots.manager.bot import ManagerBot
from agentchat.bots.room.bot import RoomBot
from agentchat.bots.room.tools import room_tools
from agentchat.files.agent_files import agent_files
from agentchat.files.outgoing import FileSender, send_file_tool
from agentchat.bots.manager.forms import manager_forms
from agentchat.permissions.audit import AuditLog
from agentchat.permissions.mcp_server import PermissionMcpServer
from agentchat.permissions.registry import PermissionRegistry
from agentchat.permissions.requests import Decision
from agentchat.provisioning.adhoc import AdhocProvisioner
from agentchat.provisioning.admin_rest import AdminRestProvisioner
from agentchat.provisioning.base import Provisioner
from agentchat.provisioning.contacts import introduce
from agentchat.server.embedded import SECRETS_FILE
from agentchat.server.prosody_config import ServiceJids, Tombstones, tombstones_path
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord
from agentchat.tasks import TaskGroup
from agentchat.xmpp.session import XmppSession
from agentchat.xmpp.xep_0050_commands import PLUGINS as ADHOC_PLUGINS
from agentchat.xmpp.xep_0050_commands import AdHocCommands

log = logging.getLogger("agentchat")

# Environment variables whose values are credentials (ANTHROPIC_API_KEY, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY…),
# not where they are kept (…_KEY_FILE); short values are settings, and masking them would garble text.
_SECRET_ENV_NAME = re.compile(r"(?i)(key|token|secret|password|passwd|credential)(?!.*_(path|file|dir)$)")
_SECRET_MIN_LENGTH = 16


class Service:
    """Owns every long-lived piece; start() and stop() run in a fixed order."""

    def __init__(self, settings: Settings) -> None:
        settings.require_secrets()
        self.settings = settings
        for secret in (settings.xmpp.admin_password, settings.manager.password):
            if secret is not None:
                register_secret(secret.get_secret_value())
        # The CLIs get these (ours by inheritance, their own from the config) and may print them on stderr.
        for environment in (os.environ, *settings.agents.engine_envs()):
            for name, value in environment.items():
                if _SECRET_ENV_NAME.search(name) and len(value) >= _SECRET_MIN_LENGTH:
                    register_secret(value)
        self.store = StateStore(settings.home / "state.db")
        self.permissions = PermissionRegistry(
            settings.mcp.permission_timeout / 1000, AuditLog(settings.home / "audit.jsonl", engine_of=self._engine_of)
        )
        # Agents without network reach the MCP endpoint through this socket (see agents/sandbox.py).
        self._mcp_socket_dir: Path | None = None
        self.mcp = PermissionMcpServer(self.permissions, host=settings.mcp.host, port=settings.mcp.port)
        self.sandbox = Sandbox.off()
        self._housekeeping = TaskGroup("service")
        self.service_jids = (
            ServiceJids(settings.prosody.service_jids_file) if settings.prosody.service_jids_file else None
        )
        self.provisioner: Provisioner | None = None
        self.supervisor: AgentSupervisor | None = None
        self.manager: ManagerBot | None = None
        self.manager_session: XmppSession | None = None
        self.rooms: RoomBot | None = None
        self._tokens: dict[str, str] = {}
        self._stopped = asyncio.Event()
        # Set once the agents of the last run are back: until then the manager's answers
        # ("list", "kill <id>") would not know them.
        self._restored = asyncio.Event()

    async def start(self) -> None:
        settings = self.settings
        log.info("Configuration loaded")
        await self._open_sandbox()
        await self.store.open()
        log.info("State loaded")
        self.supervisor = AgentSupervisor(
            domain=settings.xmpp.domain,
            store=self.store,
            chat_factory=self._agent_chat,
            backend_factory=lambda kind, spec: create_backend(kind, spec, settings.agents),
            spec_factory=self._backend_spec,
            max_concurrent=settings.agents.max_concurrent,
            idle_timeout=settings.agents.idle_timeout / 1000,
            service_accounts=self.service_jids,
            on_agent_removed=self._agent_removed,
            tombstones=Tombstones(tombstones_path(self.service_jids.path)) if self.service_jids else None,
            manager_jid=settings.manager_jid,
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
        self.mcp.add_tool(send_file_tool(self._file_sender))  # the agents' send_file (agentchat.files)
        # Before any agent process: the CLI exits if the permission tool is missing at first use.
        await self.mcp.start()
        log.info("MCP server started on port %d", self.mcp.port)
        log.info("Permission prompt tool registered")
        if self.service_jids is not None:
            await self.service_jids.add(settings.manager_jid, settings.xmpp.admin_jid)
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
        )
        self.manager_session.attach(self.manager.deliver)
        AdHocCommands(self.manager_session, manager_forms(self.manager)).install()  # its forms (XEP-0050)
        await self.manager.start()
        self.provisioner = self._make_provisioner()
        self.supervisor.provisioner = self.provisioner
        restored = await self.supervisor.restore()
        if self.rooms is not None:
            await self.rooms.start()  # after the agents: they take their seats again
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
        if self.rooms is not None:
            await self.rooms.stop()
        if self.manager is not None:
            await self.manager.stop()
        await self.mcp.stop()
        await self._housekeeping.cancel_all()
        if self._mcp_socket_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._mcp_socket_dir, True)
            self._mcp_socket_dir = None
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

    async def _open_sandbox(self) -> None:
        """Agents' processes run in bubblewrap where it works; the start-up log says which and why."""
        settings = self.settings
        sandbox_settings = settings.agents.sandbox
        forbidden = await asyncio.to_thread(self._service_secrets)
        socket_path: Path | None = None
        if not sandbox_settings.network and sandbox_settings.enabled is not False:
            # Short and private: a Unix socket path may not exceed 107 bytes.
            self._mcp_socket_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="agentchat-mcp-"))
            socket_path = self._mcp_socket_dir / "mcp.sock"
        self.sandbox = await open_sandbox(
            sandbox_settings,
            state_dir=settings.home,
            protected=(settings.work.base_path, Path.home()),
            forbidden_values=forbidden,
            mcp_socket=socket_path,
        )
        if self.sandbox.enabled:
            log.info("%s", self.sandbox.summary())
            self.mcp.unix_socket = socket_path
        else:
            log.warning("%s", self.sandbox.summary())
            if not sandbox_settings.network:
                log.warning("agents.sandbox.network is false, but without the sandbox agents keep the network")

    def _service_secrets(self) -> frozenset[str]:
        """Every password the service knows, for no child environment to carry (blocking)."""
        settings = self.settings
        found = {secret.get_secret_value() for secret in (settings.xmpp.admin_password, settings.manager.password) if secret}
        try:
            stored = json.loads((settings.home / SECRETS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        pending = [stored]
        while pending:
            value = pending.pop()
            if isinstance(value, dict):
                pending.extend(value.values())
            elif isinstance(value, str) and value:
                found.add(value)
        return frozenset(found)

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
        return self.supervisor is not None and self.supervisor.get(local) is not None

    def _agent_chat(self, agent: Agent, password: str) -> AgentBot:
        """An agent's bot on its own account (opened by the supervisor)."""
        assert self.supervisor is not None
        # Forms (XEP-0050), and what the owner's clients show (corrections: how progress is shown).
        session = XmppSession(self.supervisor.jid_of(agent.id), password, self.settings.xmpp,
                              extra_plugins=ADHOC_PLUGINS, discover_peers=True,
                              rooms=self.settings.rooms.enabled, upload_via=self._upload_via)
        bot = AgentBot(
            agent,
            session,
            permissions=self.permissions,
            store=self.store,
            kill_agent=self.supervisor.kill,
            open_transport=session.start,
            close_transport=session.stop,
            rooms=session.rooms,
            files=agent_files(session, agent.owner, agent.id, agent.repo_path(), self.settings.files),
            claude_settings=self.settings.agents.claude,
            cli_uid=self.sandbox.process_uid,
        )
        session.attach(bot.deliver)
        AdHocCommands(session, agent_forms(bot, self.permissions)).install()
        token = self.permissions.register_agent(
            agent.id, agent.owner, bot, repository=agent.repo_path(), session=lambda: agent.record.session_id
        )
        register_secret(token)
        self._tokens[agent.id] = token
        return bot

    def _engine_of(self, agent_id: str) -> str | None:
        agent = self.supervisor.get(agent_id) if self.supervisor is not None else None
        return agent.record.backend if agent is not None else None

    def _file_sender(self, agent_id: str) -> FileSender | None:
        agent = self.supervisor.get(agent_id) if self.supervisor is not None else None
        bot = agent.chat if agent is not None else None
        return bot.files.sender if isinstance(bot, AgentBot) and bot.files is not None else None

    def _upload_via(self, url: str) -> str:
        """Where the service PUTs an upload slot's URL: the server's own loopback port for its public URL."""
        files = self.settings.files
        if files.upload_url and files.local_upload_url and url.startswith(files.upload_url):
            return files.local_upload_url + url[len(files.upload_url):]
        return url

    def _agent_removed(self, agent_id: str) -> None:
        self._tokens.pop(agent_id, None)
        if self.rooms is not None:
            self.rooms.agent_left(agent_id)
        self.permissions.unregister_agent(agent_id, "the agent was killed")
        # Its home and scratch directories go with it.
        directory = AgentDirs.of(self.settings.home, agent_id).root
        self._housekeeping.spawn(asyncio.to_thread(shutil.rmtree, directory, True), f"remove {directory}")

    def _backend_spec(self, record: AgentRecord) -> BackendSpec:
        return BackendSpec(
            agent_id=record.id,
            cwd=Path(record.repo),
            session_id=record.session_id or str(uuid.uuid4()),
            resume=record.session_started,
            mcp_url=self.mcp.url,
            mcp_token=self._tokens.get(record.id),
            permission_timeout=self.settings.mcp.permission_timeout / 1000,
            service_tools=tuple(self.mcp.tool_names),
            env={AGENT_ID_ENV: record.id},
            permissions=_AgentPermissions(self.permissions, record.id),
            state_dir=self.settings.home / "agents" / record.id,
            sandbox=self.sandbox,
            dirs=AgentDirs.of(self.settings.home, record.id),
            permission_mode=record.permission_mode,
            model=record.model,
            allow_bypass=self.settings.agents.claude.allow_bypass_permissions,
        )


class _AgentPermissions:
    """One agent's PermissionAsker: engines that ask through their own protocol reach the same registry."""

    def __init__(self, registry: PermissionRegistry, agent_id: str) -> None:
        self._registry = registry
        self._agent_id = agent_id

    async def ask(self, tool_name: str, tool_input: Mapping[str, Any], tool_use_id: str | None) -> Decision:
        return await self._registry.ask(self._agent_id, tool_name, tool_input, tool_use_id)
