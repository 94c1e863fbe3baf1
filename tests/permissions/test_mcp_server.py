"""The permission MCP server over real HTTP on a free loopback port, driven by the mcp SDK's own client.

Both protocol eras are exercised: "auto" negotiates the stateless 2026-07-28 protocol that CLI 2.1.330
uses, "legacy" the classic initialize session (what CLI 2.1.197 and older clients use).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult
from pydantic import BaseModel

from agentchat.errors import PermissionPromptError, RepositoryError
from agentchat.permissions.audit import AuditLog
from agentchat.permissions.mcp_server import AgentTool, PermissionMcpServer
from agentchat.permissions.registry import AnswerStatus, PermissionRegistry
from agentchat.permissions.requests import Decision, PermissionRequest

OWNER = "owner@example.org"
WAIT = 10.0
MODES = ["auto", "legacy"]

log = logging.getLogger(__name__)


class Listener:
    """Records prompts; optionally answers each one at once with ``reply(request)``."""

    def __init__(self, registry: PermissionRegistry, agent_id: str, reply: Any = None) -> None:
        self.registry = registry
        self.agent_id = agent_id
        self.reply = reply
        self.opened: asyncio.Queue[PermissionRequest] = asyncio.Queue()
        self.cancelled: asyncio.Queue[PermissionRequest] = asyncio.Queue()
        self.timed_out: asyncio.Queue[PermissionRequest] = asyncio.Queue()
        self.wrong_agent: list[PermissionRequest] = []

    async def prompt_opened(self, request: PermissionRequest) -> None:
        if request.agent_id != self.agent_id or request.input.get("agent", self.agent_id) != self.agent_id:
            self.wrong_agent.append(request)
        if self.reply is not None:
            result = self.registry.answer(self.agent_id, self.reply(request), OWNER)
            assert result.status is AnswerStatus.RESOLVED, result
        self.opened.put_nowait(request)

    async def prompt_resolved(self, request: PermissionRequest, decision: Decision) -> None:
        pass

    async def prompt_timed_out(self, request: PermissionRequest) -> None:
        self.timed_out.put_nowait(request)

    async def prompt_cancelled(self, request: PermissionRequest) -> None:
        self.cancelled.put_nowait(request)

    async def next_opened(self) -> PermissionRequest:
        return await asyncio.wait_for(self.opened.get(), WAIT)


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[PermissionRegistry]:
    audit = AuditLog(tmp_path / "permissions.jsonl")
    reg = PermissionRegistry(timeout_seconds=30, audit=audit)
    yield reg
    await reg.close()
    await audit.close()


@pytest.fixture
async def server(registry: PermissionRegistry) -> AsyncIterator[PermissionMcpServer]:
    srv = PermissionMcpServer(registry, port=0)
    await srv.start()
    yield srv
    await srv.stop()


@asynccontextmanager
async def connect(server: PermissionMcpServer, token: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(server.url, http_client=http)
        async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
            yield client


async def call(client: Client, tool_name: str, tool_input: Any, tool_use_id: str | None = "toolu_1") -> CallToolResult:
    arguments: dict[str, Any] = {"tool_name": tool_name, "input": tool_input}
    if tool_use_id is not None:
        arguments["tool_use_id"] = tool_use_id
    return await asyncio.wait_for(client.call_tool("permission_prompt", arguments), WAIT)


def decision_of(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert len(result.content) == 1 and result.content[0].type == "text"
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


async def raw_post(
    server: PermissionMcpServer, headers: dict[str, str], body: dict[str, Any]
) -> tuple[int, str, dict[str, str]]:
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with aiohttp.ClientSession() as session:
        async with session.post(server.url, json=body, headers={**base, **headers}) as response:
            return response.status, await response.text(), dict(response.headers)


INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


# -- binding ---------------------------------------------------------------------------------------

async def test_binds_loopback_on_a_free_port(server: PermissionMcpServer) -> None:
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/mcp"


async def test_refuses_non_loopback_and_busy_ports(registry: PermissionRegistry) -> None:
    with pytest.raises(PermissionPromptError, match="loopback"):
        await PermissionMcpServer(registry, host="0.0.0.0", port=0).start()
    with pytest.raises(PermissionPromptError, match="loopback"):
        await PermissionMcpServer(registry, host="example.org", port=0).start()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        with pytest.raises(PermissionPromptError, match="cannot listen"):
            await PermissionMcpServer(registry, port=busy.getsockname()[1]).start()
    finally:
        busy.close()


# -- authentication --------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zm9vOmJhcg=="},
                                     {"Authorization": "Bearer "}])
async def test_missing_or_wrong_token_is_401(server: PermissionMcpServer, registry: PermissionRegistry,
                                             headers: dict[str, str]) -> None:
    registry.register_agent("agent-1", OWNER, Listener(registry, "agent-1"))
    status, body, response_headers = await raw_post(server, headers, INITIALIZE)
    assert status == 401 and json.loads(body)["error"] == "invalid_token"
    assert response_headers["WWW-Authenticate"].startswith("Bearer")


async def test_sdk_client_with_wrong_token_cannot_connect(
    server: PermissionMcpServer, registry: PermissionRegistry
) -> None:
    registry.register_agent("agent-1", OWNER, Listener(registry, "agent-1"))
    for mode in MODES:
        # The SDK's transport task group surfaces the 401 as an MCPError inside an ExceptionGroup.
        with pytest.raises(ExceptionGroup) as caught:
            async with asyncio.timeout(WAIT), connect(server, "not-a-token", mode):
                pass
        assert caught.group_contains(MCPError, depth=2)


async def test_unregistered_agent_token_stops_working(
    server: PermissionMcpServer, registry: PermissionRegistry
) -> None:
    token = registry.register_agent("agent-1", OWNER, Listener(registry, "agent-1"))
    status, _, _ = await raw_post(server, {"Authorization": f"Bearer {token}"}, INITIALIZE)
    assert status == 200
    registry.unregister_agent("agent-1")
    status, _, _ = await raw_post(server, {"Authorization": f"Bearer {token}"}, INITIALIZE)
    assert status == 401


async def test_a_session_is_bound_to_its_token(server: PermissionMcpServer, registry: PermissionRegistry) -> None:
    one = registry.register_agent("agent-1", OWNER, Listener(registry, "agent-1"))
    two = registry.register_agent("agent-2", OWNER, Listener(registry, "agent-2"))
    status, _, headers = await raw_post(server, {"Authorization": f"Bearer {one}"}, INITIALIZE)
    assert status == 200
    session_id = headers["mcp-session-id"]
    hijack = {"Authorization": f"Bearer {two}", "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    status, _, _ = await raw_post(server, hijack, body)
    assert status == 404


@pytest.mark.parametrize("mode", MODES)
async def test_each_token_reaches_only_its_own_agent(server: PermissionMcpServer, registry: PermissionRegistry,
                                                     mode: str) -> None:
    one, two = Listener(registry, "agent-1"), Listener(registry, "agent-2")
    token_one = registry.register_agent("agent-1", OWNER, one)
    registry.register_agent("agent-2", OWNER, two)
    async with connect(server, token_one, mode) as client:
        pending = asyncio.create_task(call(client, "Write", {"file_path": "a", "agent": "agent-1"}))
        request = await one.next_opened()
        assert request.agent_id == "agent-1" and registry.pending("agent-2") == [] and two.opened.empty()
        # Answers for agent-2 never reach agent-1's prompt.
        assert registry.answer("agent-2", f"#{request.request_id} yes", OWNER).status is AnswerStatus.UNKNOWN_ID
        assert not pending.done()
        registry.answer("agent-1", "no", OWNER)
        assert decision_of(await pending)["behavior"] == "deny"


# -- the tool --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_lists_one_tool(server: PermissionMcpServer, registry: PermissionRegistry, mode: str) -> None:
    token = registry.register_agent("agent-1", OWNER, Listener(registry, "agent-1"))
    async with connect(server, token, mode) as client:
        tools = (await client.list_tools()).tools
    assert [tool.name for tool in tools] == ["permission_prompt"]
    assert set(tools[0].input_schema["required"]) == {"tool_name", "input"}


@pytest.mark.parametrize("mode", MODES)
async def test_allow_returns_the_input_unchanged(
    server: PermissionMcpServer, registry: PermissionRegistry, mode: str
) -> None:
    token = registry.register_agent("agent-1", OWNER, Listener(registry, "agent-1", reply=lambda r: "yes"))
    tool_input = {"file_path": "/repo/src/auth.ts", "content": "ünïcode ✓\n" * 3, "nested": {"a": [1, None, True]}}
    async with connect(server, token, mode) as client:
        result = await call(client, "Write", tool_input)
    assert decision_of(result) == {"behavior": "allow", "updatedInput": tool_input}


@pytest.mark.parametrize("mode", MODES)
async def test_deny_carries_the_message(server: PermissionMcpServer, registry: PermissionRegistry, mode: str) -> None:
    token = registry.register_agent("agent-1", OWNER, Listener(registry, "agent-1", reply=lambda r: "no, use pnpm"))
    async with connect(server, token, mode) as client:
        result = await call(client, "Bash", {"command": "npm install"})
    assert decision_of(result) == {"behavior": "deny", "message": "use pnpm"}


async def test_timeout_denies_and_a_late_answer_is_refused(server: PermissionMcpServer, tmp_path: Path) -> None:
    registry = PermissionRegistry(timeout_seconds=0.3, audit=None)
    srv = PermissionMcpServer(registry, port=0)
    await srv.start()
    try:
        listener = Listener(registry, "agent-1")
        token = registry.register_agent("agent-1", OWNER, listener)
        async with connect(srv, token) as client:
            decision = decision_of(await call(client, "Write", {"file_path": "x"}))
        assert decision["behavior"] == "deny" and "timed out" in decision["message"]
        request = await asyncio.wait_for(listener.timed_out.get(), WAIT)
        late = registry.answer("agent-1", "yes", OWNER)
        assert late.status is AnswerStatus.EXPIRED and request.request_id in late.text and "Sorry" in late.text
    finally:
        await registry.close()
        await srv.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_allow_always_skips_the_second_identical_request(
    server: PermissionMcpServer, registry: PermissionRegistry, mode: str
) -> None:
    listener = Listener(registry, "agent-1", reply=lambda r: "always")
    token = registry.register_agent("agent-1", OWNER, listener)
    async with connect(server, token, mode) as client:
        assert decision_of(await call(client, "Bash", {"command": "make test"}))["behavior"] == "allow"
        await listener.next_opened()
        assert decision_of(await call(client, "Bash", {"command": "make test"}))["behavior"] == "allow"
        assert listener.opened.empty()  # not asked again
        listener.reply = lambda r: "no"
        assert decision_of(await call(client, "Bash", {"command": "make deploy"}))["behavior"] == "deny"
        assert (await listener.next_opened()).bash_command == "make deploy"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"input": {}}, "tool_name"),
        ({"tool_name": "Write"}, "input"),
        ({"tool_name": "Write", "input": "not an object"}, "input"),
        ({"tool_name": "", "input": {}}, "tool_name"),
        ({"tool_name": 5, "input": {}}, "tool_name"),
        ({"tool_name": "Write", "input": {}, "tool_use_id": ["x"]}, "tool_use_id"),
        ({"tool_name": "Write", "input": [1, 2]}, "input"),
    ],
)
async def test_malformed_arguments_get_a_clear_tool_error(server: PermissionMcpServer, registry: PermissionRegistry,
                                                          arguments: dict[str, Any], field: str) -> None:
    listener = Listener(registry, "agent-1")
    token = registry.register_agent("agent-1", OWNER, listener)
    async with connect(server, token) as client:
        result = await asyncio.wait_for(client.call_tool("permission_prompt", arguments), WAIT)
        assert result.is_error and field in result.content[0].text  # type: ignore[union-attr]
        # The server is still fine afterwards.
        listener.reply = lambda r: "yes"
        assert decision_of(await call(client, "Read", {"file_path": "x"}))["behavior"] == "allow"
    assert listener.opened.qsize() == 1


async def test_unknown_tool_and_extra_arguments(server: PermissionMcpServer, registry: PermissionRegistry) -> None:
    token = registry.register_agent("agent-1", OWNER, Listener(registry, "agent-1", reply=lambda r: "yes"))
    async with connect(server, token, "legacy") as client:
        result = await asyncio.wait_for(client.call_tool("other_tool", {}), WAIT)
        assert result.is_error
        # CLI versions add fields (mcp_skill_ask); they are ignored.
        extra = {"tool_name": "Write", "input": {"a": 1}, "tool_use_id": "t", "mcp_skill_ask": {"x": 1}}
        result = await asyncio.wait_for(client.call_tool("permission_prompt", extra), WAIT)
        assert decision_of(result)["behavior"] == "allow"


@pytest.mark.parametrize("mode", MODES)
async def test_dropped_call_withdraws_the_prompt(
    server: PermissionMcpServer, registry: PermissionRegistry, mode: str
) -> None:
    listener = Listener(registry, "agent-1")
    token = registry.register_agent("agent-1", OWNER, listener)
    async with connect(server, token, mode) as client:
        pending = asyncio.create_task(call(client, "Write", {"file_path": "x"}))
        request = await listener.next_opened()
        pending.cancel()  # what an interrupt does on the CLI side
        cancelled = await asyncio.wait_for(listener.cancelled.get(), WAIT)
        assert cancelled.request_id == request.request_id and registry.pending("agent-1") == []


@pytest.mark.parametrize("mode", MODES)
async def test_shutdown_denies_pending(registry: PermissionRegistry, mode: str) -> None:
    srv = PermissionMcpServer(registry, port=0)
    await srv.start()
    listener = Listener(registry, "agent-1")
    token = registry.register_agent("agent-1", OWNER, listener)
    try:
        async with connect(srv, token, mode) as client:
            pending = [asyncio.create_task(call(client, "Write", {"file_path": str(i)})) for i in range(3)]
            for _ in pending:
                await listener.next_opened()
            await registry.close()  # the service's shutdown order: registry first, then the server
            for task in pending:
                decision = decision_of(await task)
                assert decision["behavior"] == "deny" and "shutting down" in decision["message"]
    finally:
        started = time.perf_counter()
        await srv.stop()
        assert time.perf_counter() - started < 5


async def test_stop_is_idempotent_and_restart_needs_a_new_object(registry: PermissionRegistry) -> None:
    srv = PermissionMcpServer(registry, port=0)
    await srv.start()
    with pytest.raises(PermissionPromptError):
        await srv.start()
    port = srv.port
    await srv.stop()
    await srv.stop()
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()


# -- load ------------------------------------------------------------------------------------------

class RawMcpCaller:
    """permission_prompt calls as bare HTTP POSTs, shaped like CLI 2.1.330's (modern) or a classic session's.

    The flood uses this rather than the SDK client: that client's own overhead (about 9 s per 1000 calls in
    "auto" mode, 33 s in "legacy" on this machine) would dwarf the server's (about 1.5 s).
    """

    MODERN = "2026-07-28"
    CLASSIC = "2025-11-25"

    def __init__(self, session: aiohttp.ClientSession, server: PermissionMcpServer, token: str, modern: bool) -> None:
        self._session, self._url, self._modern = session, server.url, modern
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
        self._next_id = 0

    async def open(self) -> None:
        if self._modern:
            self._headers["MCP-Protocol-Version"] = self.MODERN
            return
        status, body, headers = await self._post(INITIALIZE)
        assert status == 200, body
        self._headers.update({"Mcp-Session-Id": headers["mcp-session-id"], "MCP-Protocol-Version": self.CLASSIC})
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def call(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        params: dict[str, Any] = {"name": "permission_prompt", "arguments": arguments}
        headers = {}
        if self._modern:
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": self.MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "claude-code", "version": "2.1.330"},
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            headers = {"Mcp-Method": "tools/call", "Mcp-Name": "permission_prompt"}
        status, body, response_headers = await self._post(
            {"jsonrpc": "2.0", "id": self._next_id, "method": "tools/call", "params": params}, headers)
        assert status == 200, body
        if response_headers.get("Content-Type", "").startswith("text/event-stream"):
            body = [line[5:] for line in body.splitlines() if line.startswith("data:")][-1]
        result = json.loads(body)["result"]
        assert not result.get("isError"), result
        return json.loads(result["content"][0]["text"])

    async def _post(self, body: dict[str, Any], extra: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
        async with self._session.post(self._url, json=body, headers={**self._headers, **(extra or {})}) as response:
            return response.status, await response.text(), dict(response.headers)


async def test_flood_of_1000_calls(server: PermissionMcpServer, registry: PermissionRegistry) -> None:
    """1000 concurrent calls over 10 agents (half modern, half classic sessions): each answered for its own
    agent and input, none lost, none crossing agents."""
    agents = [f"agent-{n}" for n in range(10)]

    def reply(request: PermissionRequest) -> str:
        n = request.input["n"]
        return f"#{request.request_id} yes" if n % 2 == 0 else f"#{request.request_id} no deny {request.agent_id} {n}"

    listeners = {agent: Listener(registry, agent, reply=reply) for agent in agents}
    tokens = {agent: registry.register_agent(agent, OWNER, listeners[agent]) for agent in agents}

    async def one_agent(
        session: aiohttp.ClientSession, index: int, agent: str
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        caller = RawMcpCaller(session, server, tokens[agent], modern=index % 2 == 0)
        await caller.open()
        inputs = [{"agent": agent, "n": n, "file_path": f"{agent}/{n}"} for n in range(100)]
        decisions = await asyncio.gather(
            *(caller.call({"tool_name": "Write", "input": tool_input, "tool_use_id": f"t{n}"})
              for n, tool_input in enumerate(inputs))
        )
        return list(zip(inputs, decisions, strict=True))

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(one_agent(session, index, agent) for index, agent in enumerate(agents))), 60)
    elapsed = time.perf_counter() - started
    log.warning("flood: 1000 permission calls over 10 agents in %.2f s", elapsed)
    count = 0
    for agent_outcomes in outcomes:
        for tool_input, decision in agent_outcomes:
            count += 1
            if tool_input["n"] % 2 == 0:
                assert decision == {"behavior": "allow", "updatedInput": tool_input}
            else:
                assert decision == {"behavior": "deny", "message": f"deny {tool_input['agent']} {tool_input['n']}"}
    assert count == 1000
    assert all(not listener.wrong_agent for listener in listeners.values())
    assert all(registry.pending(agent) == [] for agent in agents)


async def test_sdk_client_concurrency(server: PermissionMcpServer, registry: PermissionRegistry) -> None:
    """The SDK's own client, 50 calls in flight at once on one connection."""
    listener = Listener(registry, "agent-1", reply=lambda r: f"#{r.request_id} yes")
    token = registry.register_agent("agent-1", OWNER, listener)
    async with connect(server, token) as client:
        inputs = [{"n": n} for n in range(50)]
        results = await asyncio.gather(*(call(client, "Write", tool_input) for tool_input in inputs))
    assert [decision_of(result)["updatedInput"] for result in results] == inputs


async def test_call_overhead(server: PermissionMcpServer, registry: PermissionRegistry) -> None:
    """Round trip of one immediately answered call on loopback (logged; the bound is only a sanity check)."""
    token = registry.register_agent("agent-1", OWNER, Listener(registry, "agent-1", reply=lambda r: "yes"))
    figures = {}
    for mode in MODES:
        async with connect(server, token, mode) as client:
            await call(client, "Write", {"warm": "up"})
            samples = []
            for n in range(40):
                started = time.perf_counter()
                await call(client, "Write", {"n": n})
                samples.append((time.perf_counter() - started) * 1000)
        figures[mode] = statistics.median(samples)
    log.warning("permission call p50 over loopback: %s", ", ".join(f"{m} {ms:.1f} ms" for m, ms in figures.items()))
    assert all(ms < 500 for ms in figures.values())


class EchoArguments(BaseModel):
    text: str


async def test_an_agent_tool_is_listed_called_as_its_agent_and_refuses_cleanly(registry: PermissionRegistry) -> None:
    calls: list[tuple[str, str]] = []

    async def echo(agent_id: str, arguments: EchoArguments) -> str:
        if arguments.text == "refuse":
            raise RepositoryError("that path is outside the repository")
        calls.append((agent_id, arguments.text))
        return f"echo: {arguments.text}"

    server = PermissionMcpServer(registry, port=0)
    server.add_tool(AgentTool("echo", "Echoes its text.", EchoArguments, echo))
    with pytest.raises(PermissionPromptError):
        server.add_tool(AgentTool("echo", "again", EchoArguments, echo))
    assert server.tool_names == ["mcp__agentchat__echo"]
    await server.start()
    try:
        token = registry.register_agent("agent-7", OWNER, Listener(registry, "agent-7", reply=lambda r: "yes"))
        async with connect(server, token, "legacy") as client:
            listed = await asyncio.wait_for(client.list_tools(), WAIT)
            assert sorted(tool.name for tool in listed.tools) == ["echo", "permission_prompt"]
            result = await asyncio.wait_for(client.call_tool("echo", {"text": "hi"}), WAIT)
            assert not result.is_error and result.content[0].text == "echo: hi"  # type: ignore[union-attr]
            refused = await asyncio.wait_for(client.call_tool("echo", {"text": "refuse"}), WAIT)
            assert refused.is_error and "outside the repository" in refused.content[0].text  # type: ignore[union-attr]
            malformed = await asyncio.wait_for(client.call_tool("echo", {"nope": 1}), WAIT)
            assert malformed.is_error and "check text" in malformed.content[0].text  # type: ignore[union-attr]
        assert calls == [("agent-7", "hi")]  # the token decided which agent called
    finally:
        await server.stop()
