#!/usr/bin/env python3
"""An instant stand-in for Claude Code in the benchmarks: stream-json in, stream-json out, no model.

Standard library only and synchronous (no asyncio at start-up): it starts in a few tens of ms, so
the benchmarks measure agentchat and Prosody, not a model or a heavy CLI. It prints the lines the
real CLI prints (shapes as in tests/fixtures/*.jsonl): ``system/init`` at the start of every turn,
one ``assistant`` line per text, ``user`` tool results, and the ``result`` that ends the turn.

What a user message does (the directive may sit anywhere in the text):

    anything else        one assistant text ``ECHO: <text> @<received> <answered>``, then the result
                         (monotonic_ns when the message was read from stdin, and just before the
                         answer was written: the round trip splits into the way in and the way out).
                         Only the text's first paragraph is echoed: a room's turn carries the room's
                         last lines after a blank line, and echoed they would grow every answer by
                         the ones before it and hand the talk on to the agents they mention.
    [[burst:N]]          N assistant texts ``EVT <i> <t>`` written one by one (a write and a flush
                         each), where <t> is time.monotonic_ns() taken just before the write;
                         then the result. CLOCK_MONOTONIC is one clock for every process of the
                         machine, so the receiver can subtract it from its own monotonic_ns().
    [[burst:N:MS]]       the same, MS milliseconds of quiet before each event (an event in the
                         middle of a turn, once the turn's start has been announced)
    [[perm]]             a Write tool use, then the permission tool is called over MCP exactly as
                         the CLI does (--permission-prompt-tool / --mcp-config); the tool result,
                         then the text ``PERM <decision> <t_call> <t_answer>`` (monotonic_ns
                         around the tools/call request alone), then the result.

Interrupts (control_request) are acknowledged at once; EOF on stdin ends the process (exit 0).
The MCP client is the one of tests/support/fake_claude.py, imported on first use only.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

MODEL = "echo"
VERSION = "2.1.330"
_ROOT = Path(__file__).resolve().parent.parent


class Args:
    """The few CLI flags the echo needs; everything else the driver passes is ignored."""

    def __init__(self, argv: list[str]) -> None:
        self.session_id = str(uuid.uuid4())
        self.mcp_configs: list[str] = []
        self.permission_tool: str | None = None
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg in ("--session-id", "--resume", "-r") and i + 1 < len(argv):
                self.session_id = argv[i + 1]
                i += 1
            elif arg == "--permission-prompt-tool" and i + 1 < len(argv):
                self.permission_tool = argv[i + 1]
                i += 1
            elif arg == "--mcp-config":
                while i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                    self.mcp_configs.append(argv[i + 1])
                    i += 1
            i += 1


class Echo:
    def __init__(self, args: Args) -> None:
        self.args = args
        self.cwd = os.getcwd()
        self.out = sys.stdout.buffer
        self.total_cost = 0.0
        self.turns = 0
        self._permission: Any = None  # (event loop, McpClient, tool name) once connected

    # -- output

    def emit(self, event: dict[str, Any]) -> None:
        self.out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

    def init(self) -> dict[str, Any]:
        servers = [{"name": self.args.permission_tool.split("__")[1], "status": "connected"}] if self.args.permission_tool else []
        return {
            "type": "system", "subtype": "init", "cwd": self.cwd, "session_id": self.args.session_id,
            "tools": ["Bash", "Edit", "Read", "Write"], "mcp_servers": servers, "model": MODEL,
            "permissionMode": "default", "apiKeySource": "none", "claude_code_version": VERSION,
            "uuid": str(uuid.uuid4()),
        }  # fmt: skip

    def assistant(self, block: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "assistant",
            "message": {
                "id": "msg_echo_" + uuid.uuid4().hex[:16], "type": "message", "role": "assistant", "model": MODEL,
                "content": [block], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            },
            "parent_tool_use_id": None, "session_id": self.args.session_id, "uuid": str(uuid.uuid4()),
        }  # fmt: skip

    def text(self, text: str) -> dict[str, Any]:
        return self.assistant({"type": "text", "text": text})

    def result(self, text: str, num_turns: int = 1) -> dict[str, Any]:
        self.total_cost += 0.0001
        return {
            "type": "result", "subtype": "success", "is_error": False, "duration_ms": 1, "duration_api_ms": 0,
            "num_turns": num_turns, "result": text, "stop_reason": "end_turn", "session_id": self.args.session_id,
            "total_cost_usd": self.total_cost, "usage": {"input_tokens": 1, "output_tokens": 1},
            "permission_denials": [], "terminal_reason": "completed", "uuid": str(uuid.uuid4()),
        }  # fmt: skip

    # -- turns

    def turn(self, text: str, received: int) -> None:
        self.turns += 1
        self.emit(self.init())
        if "[[burst:" in text:
            count, _, pause = text.split("[[burst:", 1)[1].split("]]", 1)[0].partition(":")
            count = int(count)
            for index in range(count):
                if pause:
                    time.sleep(int(pause) / 1000)
                self.emit(self.text(f"EVT {index} {time.monotonic_ns()}"))
            self.emit(self.result(f"burst of {count}"))
        elif "[[perm]]" in text:
            reply = self.permission_turn()
            self.emit(self.result(reply, num_turns=2))
        else:
            first_paragraph = text.split("\n\n", 1)[0]
            reply = f"ECHO: {first_paragraph} @{received} {time.monotonic_ns()}"
            self.emit(self.text(reply))
            self.emit(self.result(reply))

    def permission_turn(self) -> str:
        tool_use_id = "toolu_echo_" + uuid.uuid4().hex[:16]
        tool_input = {"file_path": os.path.join(self.cwd, "bench.txt"), "content": "x"}
        self.emit(self.assistant({"type": "tool_use", "id": tool_use_id, "name": "Write", "input": tool_input}))
        decision, called, answered = self.ask("Write", tool_input, tool_use_id)
        allowed = decision == "allow"
        content = "Written (not really: the echo backend)" if allowed else f"denied: {decision}"
        result_block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
        if not allowed:
            result_block["is_error"] = True
        self.emit({"type": "user", "message": {"role": "user", "content": [result_block]}, "parent_tool_use_id": None,
                   "session_id": self.args.session_id, "uuid": str(uuid.uuid4())})  # fmt: skip
        reply = f"PERM {decision} {called} {answered}"
        self.emit(self.text(reply))
        return reply

    def ask(self, tool: str, tool_input: dict[str, Any], tool_use_id: str) -> tuple[str, int, int]:
        """(decision, monotonic_ns before tools/call, monotonic_ns after its answer was parsed)."""
        if self._permission is None:
            self._permission = self.connect()
        if self._permission is None:
            return "no-permission-server", 0, 0
        loop, client, tool_name = self._permission
        request_id = client.next_id()
        arguments = {"tool_name": tool, "input": tool_input, "tool_use_id": tool_use_id}
        called = time.monotonic_ns()
        response = loop.run_until_complete(client.call_tool(request_id, tool_name, arguments, tool_use_id))
        try:
            answer = json.loads(response["result"]["content"][0]["text"])
            decision = str(answer.get("behavior", "invalid"))
        except (KeyError, IndexError, TypeError, ValueError):
            decision = "invalid"
        return decision, called, time.monotonic_ns()

    def connect(self) -> Any:
        tool = self.args.permission_tool
        if not tool or not tool.startswith("mcp__") or not self.args.mcp_configs:
            return None
        import asyncio

        sys.path.insert(0, str(_ROOT / "tests" / "support"))
        from fake_claude import (  # stdlib only, like this file
            McpClient,
            load_mcp_servers,
        )

        server_name, tool_name = tool.split("__")[1], tool.split("__", 2)[2]
        server = load_mcp_servers(self.args.mcp_configs).get(server_name) or {}
        client = McpClient(server_name, server.get("url", ""), dict(server.get("headers") or {}))
        loop = asyncio.new_event_loop()
        if not loop.run_until_complete(client.connect()):
            sys.stderr.write(f"echo_backend: cannot connect to the MCP server {server.get('url')}\n")
            return None
        return loop, client, tool_name

    # -- stdin

    def run(self) -> int:
        for raw in sys.stdin.buffer:
            received = time.monotonic_ns()
            line = raw.strip()
            if not line:
                continue
            message = json.loads(line)
            kind = message.get("type")
            if kind == "user":
                content = message.get("message", {}).get("content")
                if isinstance(content, list):
                    content = "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
                self.turn(str(content), received)
            elif kind == "control_request":
                self.emit({"type": "control_response", "response": {"subtype": "success", "request_id": message.get("request_id"), "response": {}}})
        return 0


def write_launcher(directory: Path, python: str | None = None) -> Path:
    """A ``claude`` script in ``directory`` running this file with ``python -S`` (no site import)."""
    launcher = Path(directory) / "claude"
    launcher.write_text(f'#!/bin/sh\nexec "{python or sys.executable}" -S "{Path(__file__).resolve()}" "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    return launcher


if __name__ == "__main__":
    sys.exit(Echo(Args(sys.argv[1:])).run())
