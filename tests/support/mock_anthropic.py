"""Mocks of the two services the real Claude Code CLI talks to: the Anthropic Messages API and the
permission MCP server. Both run in the test's event loop on 127.0.0.1, on a free port.

MockAnthropic: ``POST /v1/messages`` answered with streaming SSE, as reference §9 describes.
Each request takes the next scripted response from a queue; with nothing scripted it echoes the
last user text as ``MOCK_REPLY: <text>`` (and a tool result as ``MOCK_TOOL_RESULT: <content>``).
Every request is recorded, so a test can assert what the CLI sent (e.g. that a resumed session
carries the earlier messages)::

    async with MockAnthropic() as api:                       # or the ``mock_anthropic`` fixture
        api.script_text("hello")                             # one text answer
        api.script_tool_use("Write", {"file_path": "a.txt", "content": "x\\n"}, final_text="done")
        api.script_error(500, times=3)                       # three HTTP 500s (the CLI retries)
        api.script_text("slow", chunks=20, chunk_delay=0.5)  # streams for 10 s: interrupt it
        env = api.cli_env(home=tmp_path)                     # ANTHROPIC_BASE_URL and friends
        ...
        await api.wait_for_requests(2, timeout=10)
        api.requests[-1].user_texts()                        # what the user said, oldest first

Standalone: ``python -m tests.support.mock_anthropic --port 8089`` serves until interrupted; then
``POST /_mock/script`` with a JSON list of responses (``{"kind":"text","text":"hi"}``,
``{"kind":"tool_use","name":"Bash","input":{"command":"ls"}}``, ``{"kind":"error","status":500}``),
``GET /_mock/requests`` and ``POST /_mock/reset`` drive it from outside.

PermissionStub: an mcp 2.3 ``MCPServer`` named ``agentchat`` serving ``permission_prompt`` over
streamable HTTP at ``/mcp``, checking a bearer token, answering with a test-chosen decision
(allow with ``updatedInput`` by default) and recording every call. It stands in for the real
``agentchat.permissions`` server in backend tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import uvicorn
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

DEFAULT_MODEL = "claude-opus-5-5"


# --- scripted responses (pydantic: they also arrive as JSON on /_mock/script) ---------------------


class _Scripted(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextResponse(_Scripted):
    """A text answer, streamed in ``chunks`` deltas ``chunk_delay`` seconds apart."""

    kind: Literal["text"] = "text"
    text: str
    chunks: int = Field(1, ge=1)
    chunk_delay: float = Field(0.0, ge=0)
    # An extended-thinking block sent before the text.
    thinking: str | None = None


class ToolUseResponse(_Scripted):
    """A tool use (stop_reason tool_use); the CLI runs the tool and sends the result in a new request."""

    kind: Literal["tool_use"] = "tool_use"
    name: str
    input: dict[str, Any]
    # Text in the same API message, before the tool_use block.
    text_before: str | None = None
    tool_use_id: str | None = None


class ErrorResponse(_Scripted):
    """An HTTP error for the next ``times`` requests (the CLI retries 500, 529 and 401)."""

    kind: Literal["error"] = "error"
    status: int = 500
    message: str | None = None
    times: int = Field(1, ge=1)


ScriptedResponse = Annotated[TextResponse | ToolUseResponse | ErrorResponse, Field(discriminator="kind")]
_SCRIPT_ADAPTER: TypeAdapter[list[ScriptedResponse]] = TypeAdapter(list[ScriptedResponse])

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass
class RecordedRequest:
    """One request the mock received, as the CLI sent it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: dict[str, Any]
    # What the mock answered: "text", "tool_use", "error 500", "echo", or "aborted" if the client left.
    answered_with: str = ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    def user_texts(self) -> list[str]:
        """The texts the user typed, oldest first (CLI-injected <system-reminder> blocks left out)."""
        texts: list[str] = []
        for message in self.messages:
            if message.get("role") != "user":
                continue
            for block in _blocks(message.get("content")):
                if block.get("type") == "text" and not str(block.get("text", "")).startswith("<system-reminder>"):
                    texts.append(str(block["text"]))
        return texts

    def tool_results(self) -> list[dict[str, Any]]:
        """Every tool_result block in the conversation, oldest first."""
        return [
            block
            for message in self.messages
            if message.get("role") == "user"
            for block in _blocks(message.get("content"))
            if block.get("type") == "tool_result"
        ]


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


def _tool_result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


class MockAnthropic:
    """The Messages API on 127.0.0.1 (see the module docstring)."""

    def __init__(self, port: int = 0, *, answer_titles: bool = False) -> None:
        self._port = port
        # OpenCode asks the model for a conversation title beside each first turn: answered apart,
        # so that it neither takes a scripted response nor counts as a request.
        self._answer_titles = answer_titles
        self.title_requests = 0
        self._script: deque[TextResponse | ToolUseResponse | ErrorResponse] = deque()
        self.requests: list[RecordedRequest] = []
        self._request_seen = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- scripting

    def script(self, *responses: TextResponse | ToolUseResponse | ErrorResponse) -> None:
        self._script.extend(responses)

    def script_text(self, text: str, *, chunks: int = 1, chunk_delay: float = 0.0, thinking: str | None = None) -> None:
        self.script(TextResponse(text=text, chunks=chunks, chunk_delay=chunk_delay, thinking=thinking))

    def script_tool_use(
        self,
        name: str,
        input: dict[str, Any],
        *,
        final_text: str | None = None,
        text_before: str | None = None,
    ) -> None:
        """A tool use, then (when the tool result comes back) ``final_text`` or the default echo."""
        self.script(ToolUseResponse(name=name, input=input, text_before=text_before))
        if final_text is not None:
            self.script(TextResponse(text=final_text))

    def script_error(self, status: int = 500, *, times: int = 1, message: str | None = None) -> None:
        self.script(ErrorResponse(status=status, times=times, message=message))

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()

    @property
    def pending(self) -> int:
        """Scripted responses not used yet."""
        return len(self._script)

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> RecordedRequest:
        """Wait until ``count`` requests in all have arrived; return the latest."""
        async with self._request_seen:
            await asyncio.wait_for(self._request_seen.wait_for(lambda: len(self.requests) >= count), timeout)
            return self.requests[-1]

    def cli_env(self, *, home: Path, tmpdir: Path | None = None, max_retries: int = 0) -> dict[str, str]:
        """Environment for a real CLI that talks only to this mock, with throwaway HOME and TMPDIR."""
        tmp = tmpdir or home / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return {
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "CLAUDE_CODE_TMPDIR": str(tmp),
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": "dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": str(max_retries),
        }

    # -- serving

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/_mock/script", self._control_script)
        app.router.add_get("/_mock/requests", self._control_requests)
        app.router.add_post("/_mock/reset", self._control_reset)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MockAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        recorded = RecordedRequest(request.method, request.path_qs, dict(request.headers), body)
        if self._answer_titles and _is_title_request(recorded):
            self.title_requests += 1
            return await self._answer(request, recorded, TextResponse(text="Mock title"), body)
        async with self._request_seen:
            self.requests.append(recorded)
            self._request_seen.notify_all()
        scripted = self._next_response()
        if isinstance(scripted, ErrorResponse):
            recorded.answered_with = f"error {scripted.status}"
            return self._error(scripted)
        if scripted is None:
            recorded.answered_with = "echo"
            scripted = TextResponse(text=self._echo(recorded))
        else:
            recorded.answered_with = scripted.kind
        return await self._answer(request, recorded, scripted, body)

    async def _answer(
        self, request: web.Request, recorded: RecordedRequest, scripted: TextResponse | ToolUseResponse, body: dict[str, Any]
    ) -> web.StreamResponse:
        model = str(body.get("model") or DEFAULT_MODEL)
        if not body.get("stream", False):
            return web.json_response(self._message_json(scripted, model))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            async for event in self._sse_events(scripted, model):
                await response.write(event)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            # The CLI dropped the stream (an interrupt): that is an outcome, not a mock failure.
            recorded.answered_with = "aborted"
            if asyncio.current_task() and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
        return response

    def _next_response(self) -> TextResponse | ToolUseResponse | ErrorResponse | None:
        if not self._script:
            return None
        head = self._script[0]
        if isinstance(head, ErrorResponse) and head.times > 1:
            self._script[0] = head.model_copy(update={"times": head.times - 1})
            return head
        return self._script.popleft()

    @staticmethod
    def _echo(request: RecordedRequest) -> str:
        messages = [m for m in request.messages if m.get("role") == "user"]
        if not messages:
            return "MOCK_REPLY: "
        last = _blocks(messages[-1].get("content"))
        results = [b for b in last if b.get("type") == "tool_result"]
        if results:
            flag = " (error)" if results[-1].get("is_error") else ""
            return f"MOCK_TOOL_RESULT{flag}: {_tool_result_text(results[-1])}"
        texts = [str(b.get("text", "")) for b in last if b.get("type") == "text"]
        texts = [t for t in texts if not t.startswith("<system-reminder>")] or texts
        return f"MOCK_REPLY: {texts[-1] if texts else ''}"

    @staticmethod
    def _error(scripted: ErrorResponse) -> web.Response:
        kind = _ERROR_TYPES.get(scripted.status, "api_error")
        message = scripted.message or f"mock forced HTTP {scripted.status}"
        return web.json_response(
            {"type": "error", "error": {"type": kind, "message": message}, "request_id": _id("req_mock_")},
            status=scripted.status,
            headers={"request-id": _id("req_mock_")},
        )

    @staticmethod
    def _message_json(scripted: TextResponse | ToolUseResponse, model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if isinstance(scripted, TextResponse):
            content.append({"type": "text", "text": scripted.text})
            stop = "end_turn"
        else:
            if scripted.text_before:
                content.append({"type": "text", "text": scripted.text_before})
            content.append({"type": "tool_use", "id": scripted.tool_use_id or _id("toolu_mock_"), "name": scripted.name, "input": scripted.input})
            stop = "tool_use"
        return {
            "id": _id("msg_mock_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 10},
        }

    async def _sse_events(self, scripted: TextResponse | ToolUseResponse, model: str) -> AsyncIterator[bytes]:
        message: dict[str, Any] = {
            "id": _id("msg_mock_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }
        yield _sse("message_start", {"type": "message_start", "message": message})
        index = 0
        output_tokens = 1
        if isinstance(scripted, TextResponse) and scripted.thinking is not None:
            yield _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": scripted.thinking}})
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": "mock-signature"}})
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        yield _sse("ping", {"type": "ping"})
        texts: list[tuple[str, int, float]] = []
        if isinstance(scripted, TextResponse):
            texts.append((scripted.text, scripted.chunks, scripted.chunk_delay))
        elif scripted.text_before:
            texts.append((scripted.text_before, 1, 0.0))
        for text, chunks, delay in texts:
            yield _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            for number, piece in enumerate(_split(text, chunks)):
                if number and delay:
                    await asyncio.sleep(delay)
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            output_tokens += len(text) // 4 + 1
            index += 1
        stop_reason = "end_turn"
        if isinstance(scripted, ToolUseResponse):
            block = {"type": "tool_use", "id": scripted.tool_use_id or _id("toolu_mock_"), "name": scripted.name, "input": {}}
            yield _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
            partial = json.dumps(scripted.input)
            for piece in _split(partial, 2):
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            output_tokens += len(partial) // 4 + 1
            stop_reason = "tool_use"
        yield _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": output_tokens}})
        yield _sse("message_stop", {"type": "message_stop"})

    # -- control endpoints (standalone use)

    async def _control_script(self, request: web.Request) -> web.Response:
        responses = _SCRIPT_ADAPTER.validate_python(await request.json())
        self.script(*responses)
        return web.json_response({"pending": self.pending})

    async def _control_requests(self, request: web.Request) -> web.Response:
        return web.json_response(
            [{"path": r.path, "answered_with": r.answered_with, "user_texts": r.user_texts(), "body": r.body} for r in self.requests]
        )

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"pending": 0})


def _is_title_request(request: RecordedRequest) -> bool:
    texts = request.user_texts()
    return bool(texts) and texts[0].startswith("Generate a title for this conversation")


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _split(text: str, parts: int) -> list[str]:
    if parts <= 1 or len(text) < parts:
        return [text]
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


@pytest.fixture
async def mock_anthropic() -> AsyncIterator[MockAnthropic]:
    """A started MockAnthropic; import this name into a conftest to use it."""
    async with MockAnthropic() as api:
        yield api


# --- the permission MCP stub ----------------------------------------------------------------------

Decision = Mapping[str, Any]
Decider = Callable[[str, dict[str, Any], str], Decision | Awaitable[Decision]]


def allow_all(tool_name: str, tool_input: dict[str, Any], tool_use_id: str) -> Decision:
    return {"behavior": "allow", "updatedInput": tool_input}


@dataclass
class PermissionCall:
    tool_name: str
    input: dict[str, Any]
    tool_use_id: str


@dataclass
class PermissionStub:
    """``permission_prompt`` on ``http://127.0.0.1:<port>/mcp``, behind ``Bearer <token>``.

    ``decide`` may be a coroutine (to hold a prompt open); ``calls`` records every call and
    ``called`` is set at the first one.
    """

    token: str = "stub-token"
    decide: Decider = allow_all
    calls: list[PermissionCall] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    # Requests refused for a missing or wrong bearer token.
    unauthorized: int = 0
    _server: Any = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from mcp.server.mcpserver import MCPServer

        mcp = MCPServer("agentchat")
        stub = self

        # structured_output=False: with an outputSchema and structuredContent in the answer, CLI 2.1.330
        # rejects it ("Expected a single text block param"); the contract is one text block of JSON.
        @mcp.tool(name="permission_prompt", description="Ask the user whether a tool may run.", structured_output=False)
        async def permission_prompt(tool_name: str, input: dict[str, Any], tool_use_id: str = "") -> str:
            stub.calls.append(PermissionCall(tool_name, input, tool_use_id))
            stub.called.set()
            decision = stub.decide(tool_name, input, tool_use_id)
            if isinstance(decision, Awaitable):
                decision = await decision
            return json.dumps(dict(decision))

        inner = mcp.streamable_http_app(streamable_http_path="/mcp")

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            # Bearer check in front of the MCP app, as the real server does.
            if scope["type"] == "http":
                headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
                if headers.get("authorization") != f"Bearer {stub.token}":
                    stub.unauthorized += 1
                    await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
                    await send({"type": "http.response.body", "body": b"unauthorized"})
                    return
            await inner(scope, receive, send)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=0.5)
        self._server = _QuietUvicorn(config)
        # The socket already listens, so connections made before serve() accepts simply queue.
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        self.url = f"http://127.0.0.1:{port}/mcp"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, 5)
            except TimeoutError:
                self._task.cancel()
            self._server = None
            self._task = None

    async def __aenter__(self) -> PermissionStub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _QuietUvicorn(uvicorn.Server):
    """uvicorn in the test's loop, leaving the test's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# --- standalone ---------------------------------------------------------------------------------


async def _serve_forever(port: int) -> None:
    async with MockAnthropic(port) as api:
        print(f"mock Anthropic API on {api.base_url} (POST /_mock/script to script answers)", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="A mock of the Anthropic Messages API for Claude Code.")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(_serve_forever(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
