"""The MCP endpoint Claude Code calls before each tool use: ``permission_prompt(tool_name, input, tool_use_id)``.

Claude Code is started with ``--permission-prompt-tool mcp__agentchat__permission_prompt`` and an
``--mcp-config`` naming ``http://127.0.0.1:{port}/mcp`` with ``Authorization: Bearer <agent token>``.
This module serves that: the ``mcp`` SDK's streamable HTTP transport (a low-level ``Server`` with one
tool) under uvicorn, as a task of our own event loop, bound to loopback only.

* Start it before any agent process: a CLI that finds the tool missing at its first tool use exits
  with code 1 (reference §5.5).
* Every HTTP request must carry a registered agent's bearer token, else 401. The token decides which
  agent the call is for; the tool never takes an agent id from the caller.
* CLI 2.1.330 talks the stateless 2026-07-28 protocol: ``server/discover``, ``tools/list``, then one
  ``tools/call`` POST per prompt (this server offers no prompts, resources or subscriptions, so the CLI
  opens no long-lived stream). Classic clients open an ``initialize`` session; the SDK serves both on
  the same path. A classic session is bound to the token that opened it (another token gets 404).
* The listening socket is created here (loopback only, ``IPPROTO_TCP`` so asyncio sets TCP_NODELAY on
  accepted connections: without it each answer waited ~40 ms for a delayed ACK).
* The tool answers one text block holding the decision JSON (``Decision.to_wire()``); malformed
  arguments get ``isError`` with a short reason, never a crash.
* A call the CLI drops (an interrupt) cancels the waiting ``ask()``; the registry then withdraws the prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from agentchat.errors import AgentChatError, PermissionPromptError
from agentchat.permissions.registry import PermissionRegistry

log = logging.getLogger(__name__)

SERVER_NAME = "agentchat"
TOOL_NAME = "permission_prompt"
MCP_PATH = "/mcp"
# Claude's Write tool sends whole files through the prompt; the SDK's default 4 MiB would refuse big ones.
MAX_REQUEST_BODY = 32 * 1024 * 1024
# Where the bearer middleware leaves the caller's agent id for the tool (Starlette request state).
_AGENT_STATE_KEY = "agentchat_agent_id"
# How long stop() lets open streams (the CLI's subscriptions/listen SSE) finish before cutting them.
_GRACEFUL_SECONDS = 1


class PermissionPromptArguments(BaseModel):
    """The tool's arguments as CLI 2.1.330 sends them (reference §5.3); extra keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    tool_name: str = Field(min_length=1, max_length=512, description="The tool Claude wants to use.")
    input: dict[str, Any] = Field(description="The tool's input, exactly as the model wrote it.")
    tool_use_id: str | None = Field(default=None, max_length=512, description="The tool_use block's id.")


_TOOL = types.Tool(
    name=TOOL_NAME,
    description=(
        "Asks the agent's owner, over chat, whether Claude Code may use a tool. "
        "Answers {behavior: allow, updatedInput} or {behavior: deny, message}."
    ),
    input_schema=PermissionPromptArguments.model_json_schema(),
)


@dataclass(frozen=True)
class AgentTool:
    """A tool the agents may call besides the permission prompt (the model sees it as
    ``mcp__agentchat__<name>``). ``handler(agent_id, arguments)`` answers one text block; an
    AgentChatError it raises becomes a tool error the model reads."""

    name: str
    description: str
    arguments: type[BaseModel]
    handler: Callable[[str, Any], Awaitable[str]]

    @property
    def definition(self) -> types.Tool:
        return types.Tool(name=self.name, description=self.description, input_schema=self.arguments.model_json_schema())


class PermissionMcpServer:
    """The permission prompt tool (and the agents' other tools) over streamable HTTP on loopback.
    ``start()`` before spawning agents."""

    def __init__(self, registry: PermissionRegistry, host: str = "127.0.0.1", port: int = 3001) -> None:
        self._registry = registry
        self._tools: dict[str, AgentTool] = {}
        self._host = "127.0.0.1" if host == "localhost" else host
        self._requested_port = port
        self._port: int | None = None
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        # Also served on this Unix socket (0600) when set before start(): sandboxes without network
        # relay the loopback port to it (agentchat.agents.sandbox_relay).
        self.unix_socket: Path | None = None

    def add_tool(self, tool: AgentTool) -> None:
        """Offer one more tool to every agent (before start())."""
        if tool.name == TOOL_NAME or tool.name in self._tools:
            raise PermissionPromptError(f"MCP tool {tool.name!r} registered twice")
        self._tools[tool.name] = tool

    @property
    def tool_names(self) -> list[str]:
        """The tools besides the permission prompt, as the CLI names them (for --allowedTools)."""
        return [f"mcp__{SERVER_NAME}__{name}" for name in self._tools]

    @property
    def port(self) -> int:
        if self._port is None:
            raise PermissionPromptError("the MCP server is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}{MCP_PATH}"

    async def start(self) -> None:
        """Bind (port 0 picks a free port) and serve; raises PermissionPromptError if it cannot."""
        if self._task is not None:
            raise PermissionPromptError("the MCP server is already started")
        sock = _bind_loopback(self._host, self._requested_port)
        sockets = [sock]
        try:
            if self.unix_socket is not None:
                sockets.append(_bind_unix(self.unix_socket))
            config = uvicorn.Config(
                _BearerAuth(self._build_mcp_app(), self._registry),
                log_config=None,  # leave the application's logging alone
                log_level="warning",
                access_log=False,
                proxy_headers=False,  # no proxy in front: X-Forwarded-* from a local process means nothing
                lifespan="on",  # runs the SDK's session manager
                timeout_graceful_shutdown=_GRACEFUL_SECONDS,
            )
            server = _EmbeddedUvicorn(config)
        except BaseException:
            for opened in sockets:
                opened.close()
            raise
        self._port = sock.getsockname()[1]
        self._server = server
        self._task = asyncio.create_task(self._serve(server, sockets), name="mcp-permission-server")
        self._task.add_done_callback(self._served)
        ready = asyncio.create_task(server.ready.wait())
        await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            task, self._task, self._server, self._port = self._task, None, None, None
            task.result()  # raises the startup failure
            raise PermissionPromptError("the MCP server stopped while starting")
        log.info("permission MCP server listening on %s", self.url)

    async def stop(self) -> None:
        """Stop serving; idempotent. Deny pending prompts first (``registry.close()``) so their answers go out."""
        task, server = self._task, self._server
        self._task = self._server = None
        if task is None or server is None:
            return
        server.should_exit = True
        try:
            async with asyncio.timeout(_GRACEFUL_SECONDS + 4):
                await asyncio.wait({task})
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            await asyncio.wait({task})
        log.info("permission MCP server stopped")

    def _served(self, task: asyncio.Task[None]) -> None:
        """The server task ended: fine after stop(), worth an error otherwise (agents lose their prompts)."""
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("permission MCP server failed", exc_info=error)
        elif self._task is task:
            log.error("permission MCP server stopped by itself; Claude Code cannot ask for permissions now")

    async def _serve(self, server: _EmbeddedUvicorn, sockets: list[socket.socket]) -> None:
        try:
            await server.serve(sockets=sockets)
        except SystemExit:
            # uvicorn exits the process when the app's lifespan fails to start; we must not.
            raise PermissionPromptError("the MCP server failed to start (lifespan error, see the log)") from None
        finally:
            for sock in sockets:
                sock.close()
            if self.unix_socket is not None:
                self.unix_socket.unlink(missing_ok=True)

    def _build_mcp_app(self) -> ASGIApp:
        server: Server[Any] = Server(
            SERVER_NAME,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            get_tool_input_schema=self._input_schema,
        )
        return server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            host=self._host,
            max_request_body_size=MAX_REQUEST_BODY,
        )

    def _input_schema(self, name: str) -> dict[str, Any] | None:
        if name == TOOL_NAME:
            return _TOOL.input_schema
        tool = self._tools.get(name)
        return tool.definition.input_schema if tool is not None else None

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_TOOL, *(tool.definition for tool in self._tools.values())])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        agent_id = _agent_of(ctx)
        if agent_id is None:  # the bearer middleware makes this unreachable over HTTP
            return _tool_error("Not authenticated.")
        if params.name != TOOL_NAME:
            tool = self._tools.get(params.name)
            if tool is None:
                known = ", ".join([TOOL_NAME, *self._tools])
                return _tool_error(f"Unknown tool {params.name!r}; this server has {known}.")
            return await _call_agent_tool(tool, agent_id, params.arguments or {})
        try:
            arguments = PermissionPromptArguments.model_validate(params.arguments or {})
        except ValidationError as exc:
            fields = sorted({".".join(str(part) for part in error["loc"]) or "arguments" for error in exc.errors()})
            log.warning("agent %s: malformed permission_prompt arguments (%s)", agent_id, ", ".join(fields))
            return _tool_error(f"Invalid arguments for {TOOL_NAME}: check {', '.join(fields)}. "
                               "Expected tool_name (string), input (object), tool_use_id (string).")
        try:
            decision = await self._registry.ask(agent_id, arguments.tool_name, arguments.input, arguments.tool_use_id)
        except PermissionPromptError as exc:
            log.warning("agent %s: permission prompt failed: %s", agent_id, exc)
            return _tool_error(str(exc))
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(decision.to_wire()))])


class _BearerAuth:
    """ASGI middleware: every HTTP request needs a registered agent's token (401 otherwise).

    It marks the request with the agent id for the tool, and as an authenticated user for the SDK,
    which then binds a classic session to the token that opened it.
    """

    def __init__(self, app: ASGIApp, registry: PermissionRegistry) -> None:
        self._app = app
        self._registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self._app(scope, receive, send)
            return
        token = _bearer_token(scope)
        agent_id = self._registry.agent_for_token(token) if token else None
        if agent_id is None:
            client = scope.get("client")
            log.info("refused MCP request %s %s from %s: %s bearer token", scope.get("method"), scope.get("path"),
                     client[0] if client else "?", "wrong" if token else "no")
            await _unauthorized(send)
            return
        # Never the token itself: AccessToken ends up in SDK structures that may be logged.
        user = AuthenticatedUser(AccessToken(token="(agentchat)", client_id=agent_id, scopes=[]))
        scope["user"] = user
        scope["auth"] = AuthCredentials([])
        scope.setdefault("state", {})[_AGENT_STATE_KEY] = agent_id
        await self._app(scope, receive, send)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our loop: no signal handlers (the application owns signals), and a ready event."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


def _agent_of(ctx: ServerRequestContext[Any]) -> str | None:
    request = ctx.request
    scope: Mapping[str, Any] | None = getattr(request, "scope", None)
    if scope is None:
        return None
    state = scope.get("state") or {}
    agent_id = state.get(_AGENT_STATE_KEY)
    return agent_id if isinstance(agent_id, str) else None


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


async def _unauthorized(send: Send) -> None:
    body = json.dumps(
        {"error": "invalid_token", "error_description": "a valid agent bearer token is required"}
    ).encode()
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="agentchat", error="invalid_token"'),
        ],
    })
    await send({"type": "http.response.body", "body": body})


async def _call_agent_tool(tool: AgentTool, agent_id: str, raw: dict[str, Any]) -> types.CallToolResult:
    try:
        arguments = tool.arguments.model_validate(raw)
    except ValidationError as exc:
        fields = sorted({".".join(str(part) for part in error["loc"]) or "arguments" for error in exc.errors()})
        return _tool_error(f"Invalid arguments for {tool.name}: check {', '.join(fields)}.")
    try:
        text = await tool.handler(agent_id, arguments)
    except AgentChatError as exc:
        log.info("agent %s: tool %s refused: %s", agent_id, tool.name, exc)
        return _tool_error(str(exc))
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def _tool_error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _bind_unix(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        path.unlink(missing_ok=True)
        sock.bind(str(path))
        path.chmod(0o600)  # the bearer token still decides; this keeps other local users out
        sock.listen(512)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise PermissionPromptError(f"cannot listen on {path} for the MCP server: {exc.strerror or exc}") from exc
    return sock


def _bind_loopback(host: str, port: int) -> socket.socket:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise PermissionPromptError(f"the MCP server must bind a loopback address, not {host!r}") from None
    if not address.is_loopback:
        raise PermissionPromptError(f"the MCP server must bind a loopback address, not {host}")
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is IPPROTO_TCP, and
    # without it the response body waits ~40 ms behind the headers (Nagle against delayed ACK).
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or exc
        raise PermissionPromptError(f"cannot listen on {host}:{port} for the MCP server: {reason}") from exc
    return sock
