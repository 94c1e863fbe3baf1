"""A mock of OpenAI's Responses API (``POST /v1/responses``, streamed SSE) for the real Codex CLI.

Codex (``codex app-server``, provider ``wire_api = "responses"``) sends the whole conversation as
``input`` items (``message``, ``function_call``, ``function_call_output`` …) and reads SSE events:
``response.created`` → ``response.output_item.added`` → ``response.output_text.delta`` … →
``response.output_item.done`` → ``response.completed``. Each request takes the next scripted answer;
with nothing scripted it echoes the last user text as ``MOCK_REPLY: <text>``, or the last tool output
as ``MOCK_TOOL_RESULT: <output>``::

    async with MockResponses() as api:
        api.script_text("hello", chunks=5, chunk_delay=0.2)
        api.script_shell("echo hi > hi.txt")                # a function_call exec_command
        api.script_call("apply_patch", {"input": patch})    # any other function call
        api.script_error(500)
        await api.wait_for_requests(2)
        api.requests[-1].user_texts()
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class TextAnswer:
    text: str
    chunks: int = 1
    chunk_delay: float = 0.0


@dataclass(frozen=True)
class CallAnswer:
    """A function call: Codex runs the tool and sends its output in the next request."""

    name: str
    arguments: Mapping[str, Any]
    text_before: str | None = None
    # A freeform ("custom") tool such as apply_patch takes its input as text, not JSON arguments.
    custom_input: str | None = None


@dataclass(frozen=True)
class ErrorAnswer:
    status: int = 500
    message: str = "mock forced an error"


Answer = TextAnswer | CallAnswer | ErrorAnswer


@dataclass
class RecordedRequest:
    path: str
    headers: Mapping[str, str]
    body: dict[str, Any]
    answered_with: str = ""

    @property
    def items(self) -> list[dict[str, Any]]:
        raw = self.body.get("input")
        return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []

    def user_texts(self) -> list[str]:
        """What the user typed, oldest first (Codex's own context messages left out)."""
        texts = []
        for item in self.items:
            if item.get("type") == "message" and item.get("role") == "user":
                for part in item.get("content") or []:
                    text = str(part.get("text", "")) if isinstance(part, dict) else ""
                    if text and not text.lstrip().startswith("<"):
                        texts.append(text)
        return texts

    def tool_outputs(self) -> list[str]:
        return [_output_text(item.get("output")) for item in self.items if item.get("type") in _OUTPUT_TYPES]

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools")
        return [str(t.get("name")) for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


_OUTPUT_TYPES = ("function_call_output", "custom_tool_call_output")


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(part.get("text", "")) for part in output if isinstance(part, dict))
    if isinstance(output, dict):
        return str(output.get("content", output))
    return "" if output is None else str(output)


class MockResponses:
    """The Responses API on 127.0.0.1, on a free port (``base_url`` ends in /v1)."""

    def __init__(self) -> None:
        self._script: deque[Answer] = deque()
        self.requests: list[RecordedRequest] = []
        self._request_seen = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def script(self, *answers: Answer) -> None:
        self._script.extend(answers)

    def script_text(self, text: str, *, chunks: int = 1, chunk_delay: float = 0.0) -> None:
        self.script(TextAnswer(text, chunks, chunk_delay))

    def script_call(self, name: str, arguments: Mapping[str, Any], *, text_before: str | None = None) -> None:
        self.script(CallAnswer(name, arguments, text_before))

    def script_patch(self, patch: str, *, text_before: str | None = None) -> None:
        """A file change through Codex's freeform ``apply_patch`` tool (models whose metadata offer it)."""
        self.script(CallAnswer("apply_patch", {}, text_before, custom_input=patch))

    def script_shell(self, command: str, *, text_before: str | None = None) -> None:
        """A shell command, as Codex's own ``exec_command`` tool."""
        self.script_call("exec_command", {"cmd": command}, text_before=text_before)

    def script_error(self, status: int = 500, message: str = "mock forced an error") -> None:
        self.script(ErrorAnswer(status, message))

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()

    async def wait_for_requests(self, count: int, timeout: float = 20.0) -> RecordedRequest:
        async with self._request_seen:
            await asyncio.wait_for(self._request_seen.wait_for(lambda: len(self.requests) >= count), timeout)
            return self.requests[-1]

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MockResponses:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [], "models": []})

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        recorded = RecordedRequest(request.path_qs, dict(request.headers), body)
        async with self._request_seen:
            self.requests.append(recorded)
            self._request_seen.notify_all()
        answer = self._script.popleft() if self._script else TextAnswer(self._echo(recorded))
        recorded.answered_with = type(answer).__name__
        if isinstance(answer, ErrorAnswer):
            return web.json_response({"error": {"message": answer.message, "type": "server_error"}}, status=answer.status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            async for event in self._events(answer, str(body.get("model") or "mock-model")):
                await response.write(event)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            recorded.answered_with = "aborted"  # Codex dropped the stream: an interrupt
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        return response

    @staticmethod
    def _echo(request: RecordedRequest) -> str:
        for item in reversed(request.items):
            if item.get("type") in _OUTPUT_TYPES:
                return f"MOCK_TOOL_RESULT: {_output_text(item.get('output'))}"
            if item.get("type") == "message" and item.get("role") == "user":
                texts = request.user_texts()
                return f"MOCK_REPLY: {texts[-1] if texts else ''}"
        return "MOCK_REPLY: "

    async def _events(self, answer: TextAnswer | CallAnswer, model: str) -> AsyncIterator[bytes]:
        response_id = _id("resp_")
        shell = {"id": response_id, "object": "response", "model": model, "status": "in_progress", "output": []}
        yield _sse("response.created", {"type": "response.created", "response": shell})
        output: list[dict[str, Any]] = []
        texts = [(answer.text, answer.chunks, answer.chunk_delay)] if isinstance(answer, TextAnswer) else []
        if isinstance(answer, CallAnswer) and answer.text_before:
            texts.append((answer.text_before, 1, 0.0))
        for text, chunks, delay in texts:
            index = len(output)
            item_id = _id("msg_")
            item: dict[str, Any] = {"type": "message", "id": item_id, "role": "assistant", "status": "in_progress", "content": []}
            yield _sse("response.output_item.added", {"type": "response.output_item.added", "output_index": index, "item": item})
            for number, piece in enumerate(_split(text, chunks)):
                if number and delay:
                    await asyncio.sleep(delay)
                yield _sse("response.output_text.delta", {"type": "response.output_text.delta", "item_id": item_id, "output_index": index, "content_index": 0, "delta": piece})
            done = {**item, "status": "completed", "content": [{"type": "output_text", "text": text, "annotations": []}]}
            yield _sse("response.output_item.done", {"type": "response.output_item.done", "output_index": index, "item": done})
            output.append(done)
        if isinstance(answer, CallAnswer):
            call: dict[str, Any] = {"id": _id("fc_"), "call_id": _id("call_"), "name": answer.name, "status": "completed"}
            if answer.custom_input is not None:
                call.update(type="custom_tool_call", input=answer.custom_input)
            else:
                call.update(type="function_call", arguments=json.dumps(dict(answer.arguments)))
            yield _sse("response.output_item.added", {"type": "response.output_item.added", "output_index": len(output), "item": call})
            yield _sse("response.output_item.done", {"type": "response.output_item.done", "output_index": len(output), "item": call})
            output.append(call)
        usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 10,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 110}
        completed = {**shell, "status": "completed", "output": output, "usage": usage}
        yield _sse("response.completed", {"type": "response.completed", "response": completed})


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _split(text: str, parts: int) -> list[str]:
    if parts <= 1 or len(text) < parts:
        return [text]
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]
