"""The service: start-up and shutdown order, and the wiring between the pieces."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import uuid
from pathlib import Path

from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import BackendSpec
from agentchat.agents.backends.factory import available_backends, create_backend
from agentchat.agents.sandbox import AgentDirs, Sandbox, open_sandbox
from agentchat.agents.supervisor import AGENT_ID_ENV, AgentSupervisor
from agentchat.config import Settings
from agentchat.logs import register_secret
from agentchat.manager.access import AccessPolicy
from agentchat.manager.bot import ManagerBot
from agentchat.permissions.audit import AuditLog
from agentchat.permissions.mcp_server import PermissionMcpServer
from agentchat.permissions.registry import PermissionRegistry
from agentchat.provisioning.adhoc import AdhocProvisioner
from agentchat.provisioning.admin_rest import AdminRestProvisioner
from agentchat.provisioning.base import Provisioner
from agentchat.server.embedded import SECRETS_FILE
from agentchat.server.prosody_config import ServiceJids
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord
from agentchat.tasks import TaskGroup
from agentchat.xmpp.agent_bot import AgentBot
from agentchat.xmpp.connection import BotConnection

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
        for environment in (os.environ, settings.agents.claude.env,
                            *(backend.env for backend in settings.agents.command_backends.values())):
            for name, value in environment.items():
                if _SECRET_ENV_NAME.search(name) and len(value) >= _SECRET_MIN_LENGTH:
                    register_secret(value)
        self.store = StateStore(settings.home / "state.db")
        self.permissions = PermissionRegistry(
            settings.mcp.permission_timeout / 1000, AuditLog(settings.home / "audit.jsonl")
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
            chat_factory=self._open_agent_chat,
            backend_factory=lambda kind, spec: create_backend(kind, spec, settings.agents),
            spec_factory=self._backend_spec,
            max_concurrent=settings.agents.max_concurrent,
            idle_timeout=settings.agents.idle_timeout / 1000,
            service_accounts=self.service_jids,
            on_agent_removed=self._agent_removed,
        )
        log.info("Agent registry initialized")
        # Before any agent process: the CLI exits if the permission tool is missing at first use.
        await self.mcp.start()
        log.info("MCP server started on port %d", self.mcp.port)
        log.info("Permission prompt tool registered")
        if self.service_jids is not None:
            await self.service_jids.add(settings.manager_jid, settings.xmpp.admin_jid)
        self.manager = ManagerBot(
            self._manager_connection,
            supervisor=self.supervisor,
            access=AccessPolicy(settings.manager.allowed_users, settings.xmpp.domain, self._is_service_jid),
            base_path=settings.work.base_path,
            backends=lambda: available_backends(settings.agents),
        )
        await self.manager.start()
        self.provisioner = self._make_provisioner()
        self.supervisor.provisioner = self.provisioner
        restored = await self.supervisor.restore()
        self._restored.set()
        for agent in restored:
            if agent.chat is not None:
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

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_requested.set)
        try:
            await self.start()
            await stop_requested.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()

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

    def _manager_connection(self, *, on_message):  # type: ignore[no-untyped-def]
        settings = self.settings
        assert settings.manager.password is not None

        async def after_restore(msg):  # type: ignore[no-untyped-def]
            # Messages that arrive while the agents are restored wait (in order), not answered wrongly.
            await self._restored.wait()
            await on_message(msg)

        return BotConnection(
            settings.manager_jid,
            settings.manager.password.get_secret_value(),
            settings.xmpp,
            on_message=after_restore,
            extra_plugins=("xep_0004", "xep_0050"),
        )

    def _make_provisioner(self) -> Provisioner:
        settings = self.settings
        if settings.provisioning.method == "adhoc":
            assert self.manager is not None
            return AdhocProvisioner(self.manager.connection.client, settings.xmpp.domain)
        assert settings.xmpp.admin_password is not None
        return AdminRestProvisioner(
            settings.admin_rest_url,
            settings.xmpp.domain,
            settings.xmpp.admin_jid,
            settings.xmpp.admin_password.get_secret_value(),
        )

    def _is_service_jid(self, jid: str) -> bool:
        local, _, domain = jid.partition("@")
        if domain != self.settings.xmpp.domain:
            return False
        if jid in (self.settings.manager_jid, self.settings.xmpp.admin_jid):
            return True
        return self.supervisor is not None and self.supervisor.get(local) is not None

    async def _open_agent_chat(self, agent: Agent, password: str) -> AgentBot:
        assert self.supervisor is not None
        bot = AgentBot(
            agent,
            self.supervisor.jid_of(agent.id),
            password,
            self.settings.xmpp,
            permissions=self.permissions,
            store=self.store,
            kill_agent=self.supervisor.kill,
        )
        token = self.permissions.register_agent(
            agent.id, agent.owner, bot, repository=agent.repo_path(), session=lambda: agent.record.session_id
        )
        register_secret(token)
        self._tokens[agent.id] = token
        await bot.open()
        return bot

    def _agent_removed(self, agent_id: str) -> None:
        self._tokens.pop(agent_id, None)
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
            env={AGENT_ID_ENV: record.id},
            sandbox=self.sandbox,
            dirs=AgentDirs.of(self.settings.home, record.id),
        )
