"""What every process that runs agents shares: the service, and a runner on another machine.

The permission registry and its MCP endpoint (with the agents' own tools), the sandbox every agent's process
starts in, and how one agent is put together: its chat (an AgentBot on its own account, with files and forms)
and its backend's spec. The service and agentchat.runners.runner each own one AgentHost, so an agent on a
runner is confined, asks and answers exactly as one on the hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import BackendSpec
from agentchat.agents.sandbox import AgentDirs, Sandbox, open_sandbox
from agentchat.agents.supervisor import AGENT_ID_ENV
from agentchat.bots.agent.bot import AgentBot
from agentchat.bots.agent.forms import agent_forms
from agentchat.config import Settings
from agentchat.files.agent_files import agent_files
from agentchat.files.outgoing import FileSender, send_file_tool
from agentchat.logs import register_secret
from agentchat.permissions.audit import AuditLog
from agentchat.permissions.mcp_server import PermissionMcpServer
from agentchat.permissions.registry import PermissionRegistry
from agentchat.permissions.requests import Decision
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord
from agentchat.tasks import TaskGroup
from agentchat.xmpp.session import XmppSession
from agentchat.xmpp.xep_0050_commands import PLUGINS as ADHOC_PLUGINS
from agentchat.xmpp.xep_0050_commands import AdHocCommands

log = logging.getLogger(__name__)

# Environment variables whose values are credentials (ANTHROPIC_API_KEY, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY…),
# not where they are kept (…_KEY_FILE); short values are settings, and masking them would garble text.
SECRET_ENV_NAME = re.compile(r"(?i)(key|token|secret|password|passwd|credential)(?!.*_(path|file|dir)$)")
SECRET_MIN_LENGTH = 16

KillAgent = Callable[[str, str], Coroutine[Any, Any, object]]


def register_environment_secrets(settings: Settings, environ: Mapping[str, str]) -> None:
    """Credentials the CLIs get (ours by inheritance, their own from the config) stay out of logs and chats:
    a CLI may print them on stderr."""
    for environment in (environ, *settings.agents.engine_envs()):
        for name, value in environment.items():
            if SECRET_ENV_NAME.search(name) and len(value) >= SECRET_MIN_LENGTH:
                register_secret(value)


class AgentHost:
    """The agents' side of one process. ``lookup`` finds a running agent by id (the supervisor's, or a
    runner's hosted agents); ``secret_files`` are JSON files whose every string is a secret no agent's
    environment may carry (the service's secrets.json, a runner's runner.json)."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        *,
        lookup: Callable[[str], Agent | None],
        secret_files: Iterable[Path] = (),
        rooms: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self._lookup = lookup
        self._secret_files = tuple(secret_files)
        self._rooms = rooms
        self.permissions = PermissionRegistry(
            settings.mcp.permission_timeout / 1000, AuditLog(settings.home / "audit.jsonl", engine_of=self._engine_of)
        )
        self.mcp = PermissionMcpServer(self.permissions, host=settings.mcp.host, port=settings.mcp.port)
        self.mcp.add_tool(send_file_tool(self._file_sender))  # the agents' send_file (agentchat.files)
        self.sandbox = Sandbox.off()
        # Agents without network reach the MCP endpoint through a socket in here (see agents/sandbox.py).
        self._mcp_socket_dir: Path | None = None
        self.tokens: dict[str, str] = {}  # each agent's MCP bearer token, by agent id
        self._housekeeping = TaskGroup("agent-host")

    # life cycle

    async def open_sandbox(self) -> None:
        """Agents' processes run in bubblewrap where it works; the start-up log says which and why."""
        settings = self.settings
        sandbox_settings = settings.agents.sandbox
        forbidden = await asyncio.to_thread(self._known_secrets)
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

    async def start_endpoint(self) -> None:
        """Before any agent process: the CLI exits if the permission tool is missing at first use."""
        await self.mcp.start()
        log.info("MCP server started on port %d", self.mcp.port)
        log.info("Permission prompt tool registered")

    async def close(self) -> None:
        await self.mcp.stop()
        await self._housekeeping.cancel_all()
        if self._mcp_socket_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._mcp_socket_dir, True)
            self._mcp_socket_dir = None

    # one agent

    def agent_chat(self, agent: Agent, jid: str, password: str, *, kill_agent: KillAgent) -> AgentBot:
        """An agent's bot on its own account: forms (XEP-0050), what the owner's clients show, files, rooms."""
        settings = self.settings
        session = XmppSession(jid, password, settings.xmpp, extra_plugins=ADHOC_PLUGINS, discover_peers=True,
                              rooms=self._rooms, upload_via=self._upload_via)
        bot = AgentBot(
            agent,
            session,
            permissions=self.permissions,
            store=self.store,
            kill_agent=kill_agent,
            open_transport=session.start,
            close_transport=session.stop,
            rooms=session.rooms,
            files=agent_files(session, agent.owner, agent.id, agent.repo_path(), settings.files),
            claude_settings=settings.agents.claude,
            cli_uid=self.sandbox.process_uid,
        )
        session.attach(bot.deliver)
        AdHocCommands(session, agent_forms(bot, self.permissions)).install()
        token = self.permissions.register_agent(
            agent.id, agent.owner, bot, repository=agent.repo_path(), session=lambda: agent.record.session_id
        )
        register_secret(token)
        self.tokens[agent.id] = token
        return bot

    def backend_spec(self, record: AgentRecord) -> BackendSpec:
        settings = self.settings
        return BackendSpec(
            agent_id=record.id,
            cwd=Path(record.repo),
            session_id=record.session_id or str(uuid.uuid4()),
            resume=record.session_started,
            mcp_url=self.mcp.url,
            mcp_token=self.tokens.get(record.id),
            permission_timeout=settings.mcp.permission_timeout / 1000,
            service_tools=tuple(self.mcp.tool_names),
            env={AGENT_ID_ENV: record.id},
            permissions=_AgentPermissions(self.permissions, record.id),
            state_dir=settings.home / "agents" / record.id,
            sandbox=self.sandbox,
            dirs=AgentDirs.of(settings.home, record.id),
            permission_mode=record.permission_mode,
            model=record.model,
            allow_bypass=settings.agents.claude.allow_bypass_permissions,
        )

    def agent_removed(self, agent_id: str) -> None:
        self.tokens.pop(agent_id, None)
        self.permissions.unregister_agent(agent_id, "the agent was killed")
        # Its home and scratch directories go with it.
        directory = AgentDirs.of(self.settings.home, agent_id).root
        self._housekeeping.spawn(asyncio.to_thread(shutil.rmtree, directory, True), f"remove {directory}")

    # helpers

    def _known_secrets(self) -> frozenset[str]:
        """Every password this process knows, for no child environment to carry (blocking)."""
        settings = self.settings
        found = {secret.get_secret_value()
                 for secret in (settings.xmpp.admin_password, settings.manager.password, settings.runner.password)
                 if secret}  # fmt: skip
        for path in self._secret_files:
            try:
                pending: list[Any] = [json.loads(path.read_text(encoding="utf-8"))]
            except (OSError, ValueError):
                continue
            while pending:
                value = pending.pop()
                if isinstance(value, dict):
                    pending.extend(value.values())
                elif isinstance(value, str) and value:
                    found.add(value)
        return frozenset(found)

    def _engine_of(self, agent_id: str) -> str | None:
        agent = self._lookup(agent_id)
        return agent.record.backend if agent is not None else None

    def _file_sender(self, agent_id: str) -> FileSender | None:
        agent = self._lookup(agent_id)
        bot = agent.chat if agent is not None else None
        return bot.files.sender if isinstance(bot, AgentBot) and bot.files is not None else None

    def _upload_via(self, url: str) -> str:
        """Where this process PUTs an upload slot's URL: the server's own loopback port for its public URL."""
        files = self.settings.files
        if files.upload_url and files.local_upload_url and url.startswith(files.upload_url):
            return files.local_upload_url + url[len(files.upload_url):]
        return url


class _AgentPermissions:
    """One agent's PermissionAsker: engines that ask through their own protocol reach the same registry."""

    def __init__(self, registry: PermissionRegistry, agent_id: str) -> None:
        self._registry = registry
        self._agent_id = agent_id

    async def ask(self, tool_name: str, tool_input: Mapping[str, Any], tool_use_id: str | None) -> Decision:
        return await self._registry.ask(self._agent_id, tool_name, tool_input, tool_use_id)
