"""A mock of the Gemini API's ``generateContent`` (streamed as SSE) for the real Gemini CLI.

The CLI (``GOOGLE_GEMINI_BASE_URL`` pointing here, ``GEMINI_API_KEY=dummy``) posts
``/v1beta/models/<model>:streamGenerateContent?alt=sse`` with the conversation as ``contents``
(``{"role": "user"|"model", "parts": [{"text"} | {"functionCall"} | {"functionResponse"}]}``) and
reads ``data: {"candidates": [{"content": {"role": "model", "parts": [...]}, "finishReason"}]}`` lines.
Each main-conversation request takes the next scripted answer; with nothing scripted it echoes the last
user text as ``MOCK_REPLY: <text>``, or the last function response as ``MOCK_TOOL_RESULT: <output>``.
The CLI's side requests (a JSON-schema "next speaker" check, token counting) get a neutral answer
and are not counted as turns::

    async with MockGemini() as api:
        api.script_text("hello", chunks=5, chunk_delay=0.2)
        api.script_call("run_shell_command", {"command": "echo hi > hi.txt"})
        api.script_error(500)
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.mock_responses import Answer, CallAnswer, ErrorAnswer, TextAnswer

__all__ = ["MockGemini", "RecordedRequest"]


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]
    answered_with: str = ""

    @property
    def contents(self) -> list[dict[str, Any]]:
        raw = self.body.get("contents")
        return [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []

    def user_texts(self) -> list[str]:
        """What the user typed, oldest first (the CLI's own <session_context> preamble left out)."""
        texts = []
        for content in self.contents:
            if content.get("role") != "user":
                continue
            for part in content.get("parts") or []:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str) and text.strip() and not text.lstrip().startswith("<"):
                    texts.append(text)
        return texts

    def tool_outputs(self) -> list[str]:
        outputs = []
        for content in self.contents:
            for part in content.get("parts") or []:
                if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
                    outputs.append(json.dumps(part["functionResponse"].get("response")))
        return outputs

    @property
    def tool_names(self) -> list[str]:
        names: list[str] = []
        for tool in self.body.get("tools") or []:
            for declaration in (tool.get("functionDeclarations") or []) if isinstance(tool, dict) else []:
                names.append(str(declaration.get("name")))
        return names


class MockGemini:
    """The Gemini API on 127.0.0.1, on a free port; ``base_url`` is what GOOGLE_GEMINI_BASE_URL takes."""

    def __init__(self) -> None:
        self._script: deque[Answer] = deque()
        self.requests: list[RecordedRequest] = []
        self.side_requests = 0
        self._request_seen = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def script(self, *answers: Answer) -> None:
        self._script.extend(answers)

    def script_text(self, text: str, *, chunks: int = 1, chunk_delay: float = 0.0) -> None:
        self.script(TextAnswer(text, chunks, chunk_delay))

    def script_call(self, name: str, arguments: Mapping[str, Any], *, text_before: str | None = None) -> None:
        self.script(CallAnswer(name, arguments, text_before))

    def script_error(self, status: int = 500, message: str = "mock forced an error") -> None:
        self.script(ErrorAnswer(status, message))

    def reset(self) -> None:
        self._script.clear()
        self.requests.clear()

    def cli_env(self, home: Path) -> dict[str, str]:
        """What the CLI needs to talk only to this mock (with settings from write_settings)."""
        return {
            "GOOGLE_GEMINI_BASE_URL": self.base_url,
            "GEMINI_API_KEY": "dummy",
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
        }

    async def wait_for_requests(self, count: int, timeout: float = 20.0) -> RecordedRequest:
        async with self._request_seen:
            await asyncio.wait_for(self._request_seen.wait_for(lambda: len(self.requests) >= count), timeout)
            return self.requests[-1]

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{version}/models/{call}", self._call)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MockGemini:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _call(self, request: web.Request) -> web.StreamResponse:
        call = request.match_info["call"]
        body = await request.json()
        if call.endswith(":countTokens"):
            self.side_requests += 1
            return web.json_response({"totalTokens": 100})
        if _is_side_request(body):
            # The CLI's own checks (next speaker, loop detection): JSON-mode calls, not the conversation.
            self.side_requests += 1
            answer_json = {"next_speaker": "user", "reasoning": "mock", "complexity_reasoning": "mock", "complexity_score": 1}
            payload = _candidate([{"text": json.dumps(answer_json)}], "STOP")
            if call.endswith(":streamGenerateContent"):
                return await self._stream(request, [payload])
            return web.json_response(payload)
        recorded = RecordedRequest(request.path_qs, body)
        async with self._request_seen:
            self.requests.append(recorded)
            self._request_seen.notify_all()
        answer = self._script.popleft() if self._script else TextAnswer(self._echo(recorded))
        recorded.answered_with = type(answer).__name__
        if isinstance(answer, ErrorAnswer):
            return web.json_response(
                {"error": {"code": answer.status, "message": answer.message, "status": "INTERNAL"}}, status=answer.status
            )
        if not call.endswith(":streamGenerateContent"):
            chunks = [chunk async for chunk in self._chunks(answer)]
            parts = [part for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"]]
            return web.json_response(_candidate(parts, "STOP"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            async for chunk in self._chunks(answer):
                await response.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            recorded.answered_with = "aborted"
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        return response

    async def _stream(self, request: web.Request, chunks: list[dict[str, Any]]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
        await response.write_eof()
        return response

    async def _chunks(self, answer: TextAnswer | CallAnswer) -> AsyncIterator[dict[str, Any]]:
        if isinstance(answer, TextAnswer):
            pieces = _split(answer.text, answer.chunks)
            for number, piece in enumerate(pieces):
                if number and answer.chunk_delay:
                    await asyncio.sleep(answer.chunk_delay)
                last = number == len(pieces) - 1
                yield _candidate([{"text": piece}], "STOP" if last else None)
            return
        if answer.text_before:
            yield _candidate([{"text": answer.text_before}], None)
        yield _candidate([{"functionCall": {"name": answer.name, "args": dict(answer.arguments)}}], "STOP")

    @staticmethod
    def _echo(request: RecordedRequest) -> str:
        for content in reversed(request.contents):
            for part in reversed(content.get("parts") or []):
                if not isinstance(part, dict):
                    continue
                if isinstance(part.get("functionResponse"), dict):
                    response = part["functionResponse"].get("response")
                    output = response.get("output", response) if isinstance(response, dict) else response
                    return f"MOCK_TOOL_RESULT: {output}"
            if content.get("role") == "user":
                texts = request.user_texts()
                return f"MOCK_REPLY: {texts[-1] if texts else ''}"
        return "MOCK_REPLY: "


def _is_side_request(body: Mapping[str, Any]) -> bool:
    config = body.get("generationConfig")
    return isinstance(config, dict) and config.get("responseMimeType") == "application/json"


def _candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110},
        "modelVersion": "gemini-mock",
    }


def _split(text: str, parts: int) -> list[str]:
    if parts <= 1 or len(text) < parts:
        return [text]
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]
