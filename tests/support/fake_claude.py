#!/usr/bin/env python3
"""A fake Claude Code CLI for fast tests: the same argv, stdin and stdout protocol as
``claude -p --input-format stream-json --output-format stream-json --verbose`` (CLI 2.1.330),
standard library only, starting in a few tens of milliseconds.

Point the backend at it with ``ClaudeSettings(path=<this file>)`` (it is executable), or, faster
(no pyenv shim, no site import), at ``write_launcher(tmp_dir)``, a two-line sh script.

What a user message does (the directive may sit anywhere in the text):

    anything else                 echo turn: the reply is ``MOCK_REPLY: <text>`` (as MockAnthropic)
    [[fixture:NAME]]              replay tests/fixtures/NAME.jsonl (a path works too), recorded
                                  from the real CLI; see the list in tests/fixtures
    [[tool:NAME {json input}]]    a tool-use turn: tool_use, permission prompt, tool_result, then
                                  (an MCP tool of the configured server, ``mcp__agentchat__send_message``,
                                  is called on that server for real; ``--allowedTools`` skips its prompt)
                                  the text ``MOCK_TOOL_RESULT: <result>``; e.g.
                                  ``[[tool:Bash {"command": "echo hi > out.txt"}]]``; a value
                                  ``{"__repeat__": TEXT, "times": N}`` becomes TEXT N times
                                  (a Write of megabytes from a short chat message)
    [[tools:N [SECONDS]]]         a long turn: N tool uses (Read, asking nobody) SECONDS apart, a remark
                                  before every tenth, then the text ``MOCK_REPLY: N tools used``
    [[recall]]                    reply ``MOCK_HISTORY: <earlier user texts of the session, " | ">``
    [[sleep:SECONDS]]             the turn takes that long (an interrupt ends it early), then echoes
    [[exit:CODE]]                 print init, then die with that exit code (stderr says why)

A user message with image blocks (a picture sent in the chat) reads ``[image <type>, <N> bytes]`` for
each, so the echo shows it. ``[[tool:mcp__agentchat__NAME {…}]]`` calls the service's own MCP tool NAME
(send_file…) on the permission tool's server, without a prompt, as the real CLI does with --allowedTools.

Environment:

    FAKE_CLAUDE_FIXTURE=NAME      replay this fixture for every message without a directive
    FAKE_CLAUDE_FIXTURES=DIR      where fixtures are found (default: tests/fixtures)
    FAKE_CLAUDE_EXIT_BEFORE_INIT=CODE[:MESSAGE]   die at start, before reading stdin
    FAKE_CLAUDE_ASK_TOOLS=A,B     tools that need permission (default Bash, Edit, MultiEdit,
                                  NotebookEdit, Write, WebFetch, WebSearch)
    FAKE_CLAUDE_IGNORE_INTERRUPT=1  never acknowledge an interrupt (a hung CLI)
    FAKE_CLAUDE_LOG=FILE          append JSON lines: argv/cwd/MCP_TOOL_TIMEOUT at start, every
                                  stdin line, every permission decision
    MCP_TOOL_TIMEOUT=MS           as the real CLI: a permission answer slower than this is a tool error

Permissions, as the real CLI does them: with ``--permission-prompt-tool mcp__<server>__<tool>`` and
``--mcp-config`` (a JSON string or file), the fake connects to the server at the start of each turn
until it succeeds (classic streamable HTTP: ``initialize``, ``notifications/initialized``, with
the configured headers, e.g. the bearer token), and before running a tool from the ask list it
calls ``tools/call`` with ``{"tool_name", "input", "tool_use_id"}``. The answer must be one text
block of JSON (with ``structuredContent`` it is refused, as 2.1.330 refuses it). ``allow`` runs the tool with ``updatedInput`` (Write writes the file, Bash runs the
command in the cwd, anything else just succeeds); ``deny`` gives an is_error tool_result with the
message, which the model sees; ``deny`` + ``interrupt`` and an interrupt while the prompt is
pending end the turn (``error_during_execution``, ``aborted_tools``); the pending HTTP request is
dropped and ``notifications/cancelled`` sent. If the server was never reachable, the fake prints
the CLI's "MCP tool … not found" to stderr and exits 1 without a result, as the real one does.
Without a permission tool, replays show what was recorded and synthesized tools are allowed.
With one, a fixture's recorded tool result is replaced by what the live decision gives (the text
after it stays as recorded: for consistent text use ``[[tool:…]]``).

Also as the real CLI: ``--session-id`` of an existing session fails ("is already in use", exit 1);
``--resume`` of an unknown one prints "No conversation found with session ID: …" and a result,
then exits 1 at stdin EOF; sessions live in ``$HOME/.fake-claude/sessions/<id>.json``. Interrupts
(control_request) are acknowledged at once; a non-JSON stdin line or a user message without a role
kills the process with exit 1; EOF exits 0 after the running turn (1 if the last turn failed);
SIGTERM exits 143. Permission modes as 2.1.330's (``--permission-mode``, the control requests
``set_permission_mode`` and ``set_model``, answered and followed by ``system/status``; bypassPermissions
only when started with --allow-dangerously-skip-permissions, which as root needs IS_SANDBOX=1; ``--help``
lists the modes; an approved ExitPlanMode leaves plan mode). Fixture lines may carry ``{"__fake__": …}`` directives: ``raw`` (text or b64,
optionally without newline), ``wait_interrupt``, ``sleep``, ``stderr``, ``exit``, ``kill``,
``huge_text`` (an assistant text line of N bytes), ``split`` (one line in pieces with pauses).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import re
import signal
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

VERSION = "2.1.330"
MODEL = "claude-opus-5-5"
FIXTURES = Path(os.environ.get("FAKE_CLAUDE_FIXTURES") or Path(__file__).resolve().parent.parent / "fixtures")
DEFAULT_ASK_TOOLS = {"Bash", "Edit", "MultiEdit", "NotebookEdit", "Write", "WebFetch", "WebSearch"}
TURN_COST = 0.0005
TOOLS = [
    "Task", "AskUserQuestion", "Bash", "CronCreate", "CronDelete", "CronList", "Edit", "EnterPlanMode",
    "EnterWorktree", "ExitPlanMode", "ExitWorktree", "ListAgents", "ListMcpResourcesTool", "Monitor",
    "NotebookEdit", "Read", "ReadMcpResourceDirTool", "ReadMcpResourceTool", "ReportFindings",
    "ScheduleWakeup", "SendMessage", "Skill", "TaskStop", "ToolSearch", "WebFetch", "WebSearch", "Workflow", "Write",
]  # fmt: skip
REJECTED = (
    "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, "
    "the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to proceed."
)
INVALID_TEXT_BLOCK = 'Permission prompt tool returned an invalid result. Expected a single text block param with type="text" and a string text value.'
INVALID_DECISION = (
    "The permission prompt tool returned an invalid permission result. Expected {behavior: 'allow', updatedInput?: object} "
    "or {behavior: 'deny', message: string}. updatedPermissions may hold at most 4096 updates, rules and directories in all."
)
DIRECTIVE = re.compile(r"\[\[(fixture|tools|tool|recall|sleep|exit)(?::(.*?))?\]\]", re.DOTALL)
MODES = ("acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan")
HELP = """Usage: claude [options] [command] [prompt]

Options:
  --permission-mode <mode>              Permission mode to use for the session
                                        (choices: "acceptEdits", "auto",
                                        "bypassPermissions", "manual",
                                        "dontAsk", "plan")
"""
ROOT_REFUSED = "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons"


# --- small helpers ---------------------------------------------------------------------------------


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_uuid() -> str:
    return str(uuid.uuid4())


def expand_repeats(value: Any) -> Any:
    """``{"__repeat__": TEXT, "times": N}`` anywhere in a tool input becomes TEXT repeated N times."""
    if isinstance(value, dict):
        if set(value) == {"__repeat__", "times"}:
            return str(value["__repeat__"]) * int(value["times"])
        return {key: expand_repeats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_repeats(item) for item in value]
    return value


def die(code: int, message: str = "") -> None:
    if message:
        sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)


class Args:
    """The CLI flags the fake understands; unknown flags are ignored."""

    def __init__(self, argv: list[str]) -> None:
        self.print_mode = False
        self.verbose = False
        self.output_format = "text"
        self.input_format = "text"
        self.model: str | None = None
        self.session_id: str | None = None
        self.resume: str | None = None
        self.mcp_configs: list[str] = []
        self.permission_tool: str | None = None
        self.permission_mode = "default"
        self.allow_bypass = False
        self.help = False
        self.version = False
        self.allowed_tools: set[str] = set()
        valued = {"--model", "--session-id", "--resume", "-r", "--permission-prompt-tool", "--permission-mode", "--output-format", "--input-format", "--allowedTools"}
        i = 0
        while i < len(argv):
            arg = argv[i]
            value = argv[i + 1] if arg in valued and i + 1 < len(argv) else None
            if arg in ("-p", "--print"):
                self.print_mode = True
            elif arg == "--verbose":
                self.verbose = True
            elif arg in ("-v", "--version"):
                self.version = True
            elif arg == "--dangerously-skip-permissions":
                self.permission_mode = "bypassPermissions"
            elif arg == "--allow-dangerously-skip-permissions":
                self.allow_bypass = True
            elif arg in ("-h", "--help"):
                self.help = True
            elif arg == "--mcp-config":
                # Variadic, as in the real CLI: everything up to the next flag.
                i += 1
                while i < len(argv) and not argv[i].startswith("-"):
                    self.mcp_configs.append(argv[i])
                    i += 1
                continue
            elif arg == "--allowedTools" and value is not None:
                self.allowed_tools.update(part for part in value.replace(",", " ").split() if part)
                i += 1
            elif value is not None:
                attribute = {"--session-id": "session_id", "-r": "resume", "--resume": "resume", "--permission-prompt-tool": "permission_tool"}.get(arg, arg[2:].replace("-", "_"))
                setattr(self, attribute, value)
                i += 1
            i += 1


# --- the MCP client (classic streamable HTTP) --------------------------------------------------------


class McpError(Exception):
    pass


class McpClient:
    def __init__(self, name: str, url: str, headers: dict[str, str]) -> None:
        self.name = name
        self.url = url
        self.headers = headers
        self.session_id: str | None = None
        self.protocol_version = "2025-11-25"
        self.connected = False
        self._ids = 0

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def connect(self) -> bool:
        try:
            status, headers, response = await self.post(
                {"jsonrpc": "2.0", "id": self.next_id(), "method": "initialize", "params": {"protocolVersion": self.protocol_version, "capabilities": {}, "clientInfo": {"name": "claude-code", "version": VERSION}}},
                expect_response=True,
            )
            if status != 200 or not response or "result" not in response:
                return False
            self.session_id = headers.get("mcp-session-id")
            self.protocol_version = str(response["result"].get("protocolVersion") or self.protocol_version)
            status, _, _ = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, expect_response=False)
            self.connected = status in (200, 202, 204)
        except (OSError, McpError, asyncio.TimeoutError, ValueError):
            self.connected = False
        return self.connected

    async def call_tool(self, request_id: int, tool: str, arguments: dict[str, Any], tool_use_id: str) -> dict[str, Any]:
        payload = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": {"claudecode/toolUseId": tool_use_id, "progressToken": request_id}},
        }
        status, _, response = await self.post(payload, expect_response=True)
        if status != 200 or response is None:
            raise McpError(f"HTTP {status}")
        return response

    async def cancel(self, request_id: int) -> None:
        payload = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id, "reason": "AbortError: remote-cancel"}}
        try:
            await asyncio.wait_for(self.post(payload, expect_response=False), 2)
        except (OSError, McpError, asyncio.TimeoutError, ValueError):
            pass  # best effort, as the real CLI's

    async def post(self, payload: dict[str, Any], expect_response: bool) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 80
        body = json.dumps(payload).encode()
        headers = {
            "Host": f"{host}:{port}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Content-Length": str(len(body)),
            "Connection": "close",
            "MCP-Protocol-Version": self.protocol_version,
            **self.headers,
        }
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            if not status_line:
                raise McpError("connection closed")
            status = int(status_line.split()[1])
            response_headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                key, _, value = line.decode("latin-1").partition(":")
                response_headers[key.strip().lower()] = value.strip()
            if not expect_response or status != 200:
                return status, response_headers, None
            want = payload.get("id")
            if "text/event-stream" in response_headers.get("content-type", ""):
                return status, response_headers, await _read_sse(reader, response_headers, want)
            raw = b"".join([chunk async for chunk in _body_chunks(reader, response_headers)])
            return status, response_headers, _match(json.loads(raw), want)
        finally:
            writer.close()


async def _body_chunks(reader: asyncio.StreamReader, headers: dict[str, str]) -> Any:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            yield await reader.readexactly(size)
            await reader.readline()
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        while chunk := await reader.read(65536):
            yield chunk


def _match(message: Any, want: Any) -> dict[str, Any] | None:
    for item in message if isinstance(message, list) else [message]:
        if isinstance(item, dict) and item.get("id") == want and ("result" in item or "error" in item):
            return item
    return None


async def _read_sse(reader: asyncio.StreamReader, headers: dict[str, str], want: Any) -> dict[str, Any] | None:
    buffer = ""
    async for chunk in _body_chunks(reader, headers):
        buffer += chunk.decode("utf-8", errors="replace")
        while "\n\n" in buffer.replace("\r\n", "\n"):
            buffer = buffer.replace("\r\n", "\n")
            event, buffer = buffer.split("\n\n", 1)
            data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
            if data:
                found = _match(json.loads(data), want)
                if found is not None:
                    return found
    return None


def load_mcp_servers(configs: list[str]) -> dict[str, dict[str, Any]]:
    servers: dict[str, dict[str, Any]] = {}
    for config in configs:
        text = config if config.lstrip().startswith("{") else Path(config).read_text(encoding="utf-8")
        servers.update(json.loads(text).get("mcpServers", {}))
    return servers


# --- the fake itself ------------------------------------------------------------------------------


class Interrupted(Exception):
    """The turn was interrupted while it waited."""


class Fake:
    def __init__(self, args: Args) -> None:
        self.args = args
        self.cwd = os.getcwd()
        self.model = args.model or MODEL
        self.session_id = args.resume or args.session_id or new_uuid()
        self.sessions = Path(os.environ.get("HOME") or ".") / ".fake-claude" / "sessions"
        self.history: list[dict[str, str]] = []
        self.total_cost = 0.0
        self.turns = 0
        self.last_turn_error = False
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.interrupted = asyncio.Event()
        self.stdin_closed = asyncio.Event()
        self.in_turn = False
        self.exit_after_turn = False
        self.resume_failed = False
        ask = os.environ.get("FAKE_CLAUDE_ASK_TOOLS")
        self.ask_tools = {t.strip() for t in ask.split(",") if t.strip()} if ask is not None else DEFAULT_ASK_TOOLS
        self.log_path = os.environ.get("FAKE_CLAUDE_LOG")
        self.started_in_bypass = args.permission_mode == "bypassPermissions"
        self.interrupt_next = False
        self.mcp: McpClient | None = None
        self.permission_tool: str | None = None
        self.setup_permissions()
        # Per turn: tool results decided by the permission tool (replacing recorded ones), denials.
        self.overrides: dict[str, dict[str, Any]] = {}
        self.denials: list[dict[str, Any]] = []

    # -- output

    def write_line(self, data: bytes, newline: bool = True) -> None:
        sys.stdout.buffer.write(data + (b"\n" if newline else b""))
        sys.stdout.buffer.flush()

    def emit(self, event: dict[str, Any]) -> None:
        self.write_line(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())

    def log(self, **entry: Any) -> None:
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

    # -- start

    def setup_permissions(self) -> None:
        tool = self.args.permission_tool
        if not tool or not tool.startswith("mcp__"):
            return
        server_name = tool.split("__")[1]
        try:
            servers = load_mcp_servers(self.args.mcp_configs)
        except (OSError, ValueError) as exc:
            die(1, f"Error: Invalid MCP configuration: {exc}")
        server = servers.get(server_name)
        self.permission_tool = tool
        if server and server.get("type") in ("http", "streamable-http", None) and server.get("url"):
            self.mcp = McpClient(server_name, server["url"], dict(server.get("headers") or {}))

    def session_file(self, session_id: str) -> Path:
        return self.sessions / f"{session_id}.json"

    def check_session(self) -> None:
        if self.args.resume:
            path = self.session_file(self.args.resume)
            if not path.is_file():
                message = f"No conversation found with session ID: {self.args.resume}"
                sys.stderr.write(message + "\n")
                sys.stderr.flush()
                self.emit(self.result_event(None, is_error=True, subtype="error_during_execution", num_turns=0, cost=0.0, errors=[message], terminal_reason=None, stop_reason=None))
                self.resume_failed = True
                return
            self.history = json.loads(path.read_text(encoding="utf-8")).get("turns", [])
        elif self.args.session_id and self.session_file(self.args.session_id).is_file():
            die(1, f"Error: Session ID {self.args.session_id} is already in use.")

    def save_session(self) -> None:
        self.sessions.mkdir(parents=True, exist_ok=True)
        data = {"session_id": self.session_id, "cwd": self.cwd, "turns": self.history}
        self.session_file(self.session_id).write_text(json.dumps(data), encoding="utf-8")

    # -- stdin

    async def read_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 30)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                self.stdin_closed.set()
                await self.queue.put(None)
                return
            text = line.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            self.log(event="stdin", line=text)
            try:
                message = json.loads(text)
            except ValueError:
                die(1, f"Error parsing streaming input line (type=unknown, {len(text)} chars): SyntaxError")
            if not isinstance(message, dict):
                continue
            if message.get("type") == "user":
                inner = message.get("message") or {}
                if inner.get("role") != "user":
                    die(1, f"Error: Expected message role 'user', got '{inner.get('role', 'undefined')}'")
                await self.queue.put(_content_text(inner.get("content")))
            elif message.get("type") == "control_request":
                self.control(message)

    def control(self, message: dict[str, Any]) -> None:
        request = message.get("request") or {}
        request_id = message.get("request_id")
        if request.get("subtype") == "interrupt":
            if os.environ.get("FAKE_CLAUDE_IGNORE_INTERRUPT"):
                return  # a CLI that hangs: no acknowledgement, the turn goes on
            self.emit({"type": "control_response", "response": {"subtype": "success", "request_id": request_id, "response": {"still_queued": []}}})
            if self.in_turn:
                self.interrupted.set()
            elif not self.queue.empty():
                # The real CLI starts a turn as it reads the message: an interrupt read after it ends that turn.
                self.interrupt_next = True
        elif request.get("subtype") == "set_permission_mode":
            mode = request.get("mode")
            if mode == "manual":
                mode = "default"
            if mode not in MODES:
                self.control_error(request_id, "Cannot set permission mode: must be one of " + ", ".join(MODES), "invalid_mode")
            elif mode == "bypassPermissions" and not (self.args.allow_bypass or self.started_in_bypass):
                self.control_error(request_id, "Cannot set permission mode to bypassPermissions because the session was not "
                                   "launched with --dangerously-skip-permissions", "bypass_not_launched")
            else:
                self.args.permission_mode = str(mode)
                self.log(event="mode", mode=mode)
                # As 2.1.330: the answer, then system/status with the new mode.
                self.emit({"type": "control_response", "response": {"subtype": "success", "request_id": request_id, "response": {"mode": mode}}})
                self.switch_mode(str(mode), logged=True)
        elif request.get("subtype") == "set_model":
            wanted = request.get("model")
            self.model = MODEL if wanted in (None, "default") else str(wanted)
            self.emit({"type": "control_response", "response": {"subtype": "success", "request_id": request_id, "response": {"model": self.model}}})
        elif request.get("subtype") == "initialize":
            self.emit({"type": "control_response", "response": {"subtype": "success", "request_id": request_id, "response": {"claude_code_version": VERSION, "pid": os.getpid(), "fake": True}}})
        else:
            self.emit({"type": "control_response", "response": {"subtype": "error", "request_id": request_id, "error": f"Unsupported control request: {request.get('subtype')}"}})

    def control_error(self, request_id: Any, message: str, code: str) -> None:
        self.emit({"type": "control_response", "response": {"subtype": "error", "request_id": request_id, "error": message, "error_code": code}})

    def switch_mode(self, mode: str, logged: bool = False) -> None:
        self.args.permission_mode = mode
        if not logged:
            self.log(event="mode", mode=mode)
        self.emit({"type": "system", "subtype": "status", "status": None, "permissionMode": mode, "uuid": new_uuid(), "session_id": self.session_id})

    # -- main loop

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: die(143))
        loop.add_signal_handler(signal.SIGINT, self.on_sigint)
        self.check_session()
        reader = asyncio.create_task(self.read_stdin())
        while True:
            text = await self.queue.get()
            if text is None:
                break
            if self.resume_failed:
                continue
            await self.turn(text)
            if self.exit_after_turn:
                return 0
        reader.cancel()
        return 1 if (self.last_turn_error or self.resume_failed) else 0

    def on_sigint(self) -> None:
        if not self.in_turn:
            die(0)
        self.interrupted.set()
        self.exit_after_turn = True

    async def turn(self, text: str) -> None:
        self.in_turn = True
        self.interrupted.clear()
        if self.interrupt_next:
            self.interrupt_next = False
            self.interrupted.set()
        self.overrides = {}
        self.denials = []
        self.turns += 1
        # Saved first, as the real CLI appends the user message before calling the model.
        entry = {"user": text, "reply": ""}
        self.history.append(entry)
        self.save_session()
        if self.mcp is not None and not self.mcp.connected:
            await self.mcp.connect()
        match = DIRECTIVE.search(text)
        kind, argument = (match.group(1), (match.group(2) or "").strip()) if match else (None, "")
        fixture = argument if kind == "fixture" else (None if kind else os.environ.get("FAKE_CLAUDE_FIXTURE"))
        try:
            if fixture:
                reply = await self.replay(fixture)
            elif kind == "tool":
                name, _, raw_input = argument.partition(" ")
                reply = await self.tool_turn(name, expand_repeats(json.loads(raw_input)) if raw_input.strip() else {})
            elif kind == "tools":
                count, _, pause = argument.partition(" ")
                reply = await self.many_tools(int(count or 1), float(pause or 0))
            elif kind == "recall":
                reply = "MOCK_HISTORY: " + " | ".join(turn["user"] for turn in self.history[:-1])
                self.simple_turn(reply)
            elif kind == "sleep":
                self.emit(self.init_event())
                await self.wait_or_interrupt(float(argument or 1))
                reply = f"MOCK_REPLY: {text}"
                self.emit(self.assistant_event([{"type": "text", "text": reply}]))
                self.emit(self.result_event(reply))
            elif kind == "exit":
                self.emit(self.init_event())
                die(int(argument or 1), f"fake_claude: exiting with code {argument or 1} as asked")
            else:
                reply = f"MOCK_REPLY: {text}"
                self.simple_turn(reply)
        except Interrupted:
            reply = None
            self.emit_interrupted_streaming()
        entry["reply"] = reply or ""
        self.save_session()
        self.in_turn = False

    def simple_turn(self, reply: str) -> None:
        self.emit(self.init_event())
        self.emit(self.assistant_event([{"type": "text", "text": reply}]))
        self.emit(self.result_event(reply))

    async def wait_or_interrupt(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.interrupted.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise Interrupted

    # -- synthesized tool turn

    async def tool_turn(self, name: str, tool_input: dict[str, Any]) -> str:
        self.emit(self.init_event())
        message_id = "msg_fake_" + uuid.uuid4().hex[:24]
        tool_use_id = "toolu_fake_" + uuid.uuid4().hex[:24]
        self.emit(self.assistant_event([{"type": "tool_use", "id": tool_use_id, "name": name, "input": tool_input}], message_id))
        outcome = await self.permission(name, tool_input, tool_use_id)
        if outcome is None:
            return ""  # the turn ended (interrupt)
        kind, value = outcome
        if kind == "allow" and name == "ExitPlanMode" and self.args.permission_mode == "plan":
            self.switch_mode("default")  # an approved plan leaves plan mode, as 2.1.330 does
        if kind == "allow" or kind == "none":
            content, is_error, extra = await self.run_tool(name, value if kind == "allow" else tool_input)
            self.emit(self.tool_result_event(tool_use_id, content, is_error, extra))
        else:
            content, is_error, extra = self.refusal(kind, value)
            self.emit(self.tool_result_event(tool_use_id, content, is_error, extra))
        reply = f"MOCK_TOOL_RESULT{' (error)' if is_error else ''}: {content}"
        self.emit(self.assistant_event([{"type": "text", "text": reply}]))
        self.emit(self.result_event(reply, num_turns=2))
        return reply

    async def many_tools(self, count: int, pause: float) -> str:
        self.emit(self.init_event())
        for number in range(count):
            if number and pause:
                await self.wait_or_interrupt(pause)
            if number % 10 == 0:
                self.emit(self.assistant_event([{"type": "text", "text": f"Looking at part {number // 10 + 1}."}]))
            tool_use_id = "toolu_fake_" + uuid.uuid4().hex[:24]
            tool_input = {"file_path": os.path.join(self.cwd, f"file{number}.txt")}
            self.emit(self.assistant_event([{"type": "tool_use", "id": tool_use_id, "name": "Read", "input": tool_input}]))
            self.emit(self.tool_result_event(tool_use_id, f"contents of file{number}.txt", False, {"tool_use_result": {"fake": True}}))
        reply = f"MOCK_REPLY: {count} tools used"
        self.emit(self.assistant_event([{"type": "text", "text": reply}]))
        self.emit(self.result_event(reply, num_turns=count + 1))
        return reply

    def refusal(self, kind: str, value: Any) -> tuple[str, bool, dict[str, Any]]:
        if kind == "deny":
            return value, True, {"tool_use_result": f"Error: {value}"}
        return f"<tool_use_error>{value}</tool_use_error>", True, {"tool_use_result": str(value)}

    async def run_tool(self, name: str, tool_input: dict[str, Any]) -> tuple[str, bool, dict[str, Any]]:
        if name == "Write" and "file_path" in tool_input:
            path = Path(self.cwd, str(tool_input["file_path"]))
            path.parent.mkdir(parents=True, exist_ok=True)
            existed = path.exists()
            path.write_text(str(tool_input.get("content", "")), encoding="utf-8")
            verb = "updated" if existed else "created"
            return (
                f"File {verb} successfully at: {path} (file state is current in your context — no need to Read it back)",
                False,
                {"tool_use_result": {"type": "update" if existed else "create", "filePath": str(path), "content": tool_input.get("content", "")}},
            )
        if name == "Bash" and "command" in tool_input:
            # In the fake's own process group, so that whoever ends the group ends the command too.
            process = await asyncio.create_subprocess_shell(str(tool_input["command"]), cwd=self.cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await process.communicate()
            stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
            failed = process.returncode != 0
            content = (stdout + stderr).strip() or ("(Bash completed with no output)" if not failed else f"Exit code {process.returncode}")
            return content, failed, {"tool_use_result": {"stdout": stdout, "stderr": stderr, "interrupted": False, "isImage": False}}
        if name.startswith("mcp__") and self.mcp is not None and name.split("__", 2)[1] == self.mcp.name:
            # One of the MCP server's own tools (mcp__<server>__<tool>): called for real, its text is the result.
            try:
                response = await self.mcp.call_tool(self.mcp.next_id(), name.split("__", 2)[2], tool_input, "toolu_fake")
            except (OSError, McpError, ValueError) as exc:
                return f"Error calling tool ({name}): {exc}", True, {"tool_use_result": str(exc)}
            result = response.get("result") or {}
            blocks = result.get("content") or []
            text = "\n".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
            return text, bool(result.get("isError")), {"tool_use_result": text}
        if name == "AskUserQuestion" and isinstance(tool_input.get("answers"), dict):
            # As 2.1.330 words it for the model.
            given = ", ".join(f'"{q}"="{a}"' for q, a in tool_input["answers"].items())
            return f"Your questions have been answered: {given}. You can now continue with these answers in mind.", False, {"tool_use_result": {"answers": tool_input["answers"]}}
        return f"(fake_claude) {name} ran", False, {"tool_use_result": {"fake": True}}

    # -- permissions

    def needs_permission(self, name: str) -> bool:
        if name == "ExitPlanMode":
            return True  # the plan goes to the person, whatever the mode
        if self.args.permission_mode == "bypassPermissions" or name in self.args.allowed_tools:
            return False
        if name.startswith("mcp__"):
            return True  # as the real CLI: an MCP tool asks unless allowed
        if self.args.permission_mode == "acceptEdits" and name in ("Write", "Edit", "MultiEdit", "NotebookEdit"):
            return False
        return name in self.ask_tools

    async def permission(self, name: str, tool_input: dict[str, Any], tool_use_id: str) -> tuple[str, Any] | None:
        """("allow", input) / ("deny", message) / ("error", text) / ("none", None) when nobody is
        asked; None when the turn has ended (deny with interrupt, interrupt while pending)."""
        if not self.permission_tool or not self.needs_permission(name):
            return ("none", None)
        if self.mcp is None or not self.mcp.connected:
            message = f"Error: MCP tool {self.permission_tool} (passed via --permission-prompt-tool) not found. Available MCP tools: none"
            self.emit(self.tool_result_event(tool_use_id, f"<tool_use_error>{message}</tool_use_error>", True, {"tool_use_result": message}))
            die(1, message)
        assert self.mcp is not None
        request_id = self.mcp.next_id()
        tool = self.permission_tool.split("__", 2)[2]
        call = asyncio.ensure_future(self.mcp.call_tool(request_id, tool, {"tool_name": name, "input": tool_input, "tool_use_id": tool_use_id}, tool_use_id))
        interrupt = asyncio.ensure_future(self.interrupted.wait())
        timeout_ms = os.environ.get("MCP_TOOL_TIMEOUT")
        timeout = int(timeout_ms) / 1000 if timeout_ms and timeout_ms.isdigit() else None
        done, _ = await asyncio.wait({call, interrupt}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        interrupt.cancel()
        if call not in done:
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
            if interrupt in done:
                await self.mcp.cancel(request_id)
                self.log(event="permission", tool=name, decision="interrupted")
                self.denials.append({"tool_name": name, "tool_use_id": tool_use_id, "tool_input": tool_input})
                self.emit_interrupted_tools(tool_use_id)
                return None
            seconds = f"{timeout:g}" if timeout is not None else "?"
            return self.decided(name, ("error", f'MCP server "{self.mcp.name}" tool "{tool}" timed out after {seconds}s'))
        try:
            response = call.result()
        except (OSError, McpError, ValueError) as exc:
            reason = "ECONNREFUSED: Unable to connect" if isinstance(exc, ConnectionRefusedError) else str(exc)
            return self.decided(name, ("error", f"Error calling tool ({name}): {reason}"))
        decision = self.interpret(name, tool_input, response)
        if decision[0] == "deny_interrupt":
            self.log(event="permission", tool=name, decision="deny_interrupt")
            self.denials.append({"tool_name": name, "tool_use_id": tool_use_id, "tool_input": tool_input})
            self.emit_interrupted_tools(tool_use_id)
            return None
        if decision[0] == "deny":
            self.denials.append({"tool_name": name, "tool_use_id": tool_use_id, "tool_input": tool_input})
        return self.decided(name, decision)

    def decided(self, name: str, decision: tuple[str, Any]) -> tuple[str, Any]:
        self.log(event="permission", tool=name, decision=decision[0], value=decision[1])
        return decision

    def interpret(self, name: str, tool_input: dict[str, Any], response: dict[str, Any]) -> tuple[str, Any]:
        if "error" in response:
            error = response["error"] or {}
            return ("error", f"Error calling tool ({name}): MCP error {error.get('code')}: {error.get('message')}")
        result = response.get("result") or {}
        content = result.get("content")
        if result.get("structuredContent") is not None or not (
            isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict) and content[0].get("type") == "text" and isinstance(content[0].get("text"), str)
        ):
            return ("error", f"Error calling tool ({name}): {INVALID_TEXT_BLOCK}")
        if result.get("isError"):
            return ("error", f"Error calling tool ({name}): {content[0]['text']}")
        try:
            answer = json.loads(content[0]["text"])
        except ValueError:
            return ("deny", INVALID_DECISION)
        if isinstance(answer, dict) and answer.get("behavior") == "allow":
            updated = answer.get("updatedInput", tool_input)
            return ("allow", updated) if isinstance(updated, dict) else ("deny", INVALID_DECISION)
        if isinstance(answer, dict) and answer.get("behavior") == "deny" and isinstance(answer.get("message"), str):
            return ("deny_interrupt", answer["message"]) if answer.get("interrupt") else ("deny", answer["message"])
        return ("deny", INVALID_DECISION)

    # -- interrupt endings (as recorded: interrupt.jsonl, permission_interrupted.jsonl)

    def emit_interrupted_streaming(self) -> None:
        self.emit(self.user_text_event("[Request interrupted by user]"))
        self.emit(self.result_event(None, is_error=True, subtype="error_during_execution", terminal_reason="aborted_streaming", stop_reason=None, errors=["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"]))

    def emit_interrupted_tools(self, tool_use_id: str) -> None:
        self.emit(self.tool_result_event(tool_use_id, REJECTED, True, {"tool_use_result": "User rejected tool use", "tool_result_meta": [{"id": tool_use_id, "non_execution_kind": "user-rejected"}]}))
        self.emit(self.user_text_event("[Request interrupted by user for tool use]"))
        self.emit(self.result_event(None, is_error=True, subtype="error_during_execution", terminal_reason="aborted_tools", stop_reason="tool_use", num_turns=2, errors=["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=tool_use"]))

    # -- fixture replay

    async def replay(self, name: str) -> str | None:
        path = Path(name) if ("/" in name or name.endswith(".jsonl")) else FIXTURES / f"{name}.jsonl"
        if not path.is_file():
            die(2, f"fake_claude: no fixture {path}")
        lines = path.read_text(encoding="utf-8").splitlines()
        meta = json.loads(lines[0]) if lines and '"__fake__": "meta"' in lines[0] else {}
        substitutions = [(meta.get("session_id"), self.session_id), (meta.get("cwd"), self.cwd)]
        reply: str | None = None
        # After a permission decision, the recorded lines up to that tool's result are replaced.
        decided: str | None = None
        for raw in lines[1 if meta else 0 :]:
            for old, new in substitutions:
                if old:
                    raw = raw.replace(old, new)
            entry = json.loads(raw)
            kind = entry.get("type")
            results = [b for b in _blocks(entry) if b.get("type") == "tool_result"] if kind == "user" else []
            if decided is not None:
                if any(b.get("tool_use_id") == decided for b in results):
                    self.emit(await self.decided_result(decided))
                    decided = None
                continue
            if "__fake__" in entry:
                await self.directive(entry)
                continue
            if kind == "system" and entry.get("subtype") == "init":
                entry = {**entry, "mcp_servers": self.mcp_status(), "model": self.model}
            elif kind == "result":
                entry = self.patched_result(entry)
                reply = entry.get("result")
            self.emit(entry)
            if kind != "assistant":
                continue
            for block in _blocks(entry):
                if block.get("type") == "text" and not entry.get("is_api_error_message"):
                    reply = block.get("text")
                if block.get("type") != "tool_use":
                    continue
                tool_input = block.get("input") or {}
                outcome = await self.permission(block["name"], tool_input, block["id"])
                if outcome is None:
                    return None  # the turn ended (interrupt)
                if outcome[0] != "none":
                    self.overrides[block["id"]] = {"name": block["name"], "input": tool_input, "outcome": outcome}
                    decided = block["id"]
        return reply

    async def decided_result(self, tool_use_id: str) -> dict[str, Any]:
        """The tool result for what the permission tool decided (the recording may differ)."""
        override = self.overrides[tool_use_id]
        kind, value = override["outcome"]
        if kind == "allow":
            content, is_error, extra = await self.run_tool(override["name"], value)
        else:
            content, is_error, extra = self.refusal(kind, value)
        return self.tool_result_event(tool_use_id, content, is_error, extra)

    def patched_result(self, entry: dict[str, Any]) -> dict[str, Any]:
        # Each fixture holds one turn of a fresh process: its total is the turn's own cost.
        cost = float(entry.get("total_cost_usd") or 0.0)
        self.total_cost += cost
        self.last_turn_error = bool(entry.get("is_error"))
        patched = {**entry, "total_cost_usd": self.total_cost, "result_index": self.turns - 1, "session_id": self.session_id}
        if self.denials:
            patched["permission_denials"] = self.denials
        return patched

    async def directive(self, entry: dict[str, Any]) -> None:
        what = entry["__fake__"]
        if what == "raw":
            data = base64.b64decode(entry["b64"]) if "b64" in entry else str(entry.get("text", "")).encode()
            self.write_line(data, newline=entry.get("newline", True))
        elif what == "wait_interrupt":
            # The real CLI finishes a turn when stdin ends; so does this wait.
            waits = [asyncio.ensure_future(self.interrupted.wait()), asyncio.ensure_future(self.stdin_closed.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
        elif what == "sleep":
            await asyncio.sleep(float(entry.get("seconds", 0.1)))
        elif what == "stderr":
            sys.stderr.write(str(entry.get("text", "")).rstrip("\n") + "\n")
            sys.stderr.flush()
        elif what == "exit":
            die(int(entry.get("code", 1)))
        elif what == "kill":
            sys.stdout.flush()
            os.kill(os.getpid(), getattr(signal, str(entry.get("signal", "SIGKILL"))))
        elif what == "huge_text":
            self.emit(self.assistant_event([{"type": "text", "text": "x" * int(entry.get("bytes", 10 * 1024 * 1024))}]))
        elif what == "split":
            line = entry["line"] if isinstance(entry["line"], str) else json.dumps(entry["line"])
            data = (line + "\n").encode()
            parts = max(1, int(entry.get("parts", 2)))
            size = -(-len(data) // parts)
            for start in range(0, len(data), size):
                sys.stdout.buffer.write(data[start : start + size])
                sys.stdout.buffer.flush()
                await asyncio.sleep(float(entry.get("pause", 0.05)))
        # "meta" and unknown directives: nothing to do

    # -- event templates (shaped after the recorded fixtures)

    def mcp_status(self) -> list[dict[str, Any]]:
        if self.mcp is None:
            return []
        return [{"name": self.mcp.name, "status": "connected" if self.mcp.connected else "failed", "source": "dynamic"}]

    def init_event(self) -> dict[str, Any]:
        return {
            "type": "system",
            "subtype": "init",
            "cwd": self.cwd,
            "session_id": self.session_id,
            "tools": TOOLS,
            "mcp_servers": self.mcp_status(),
            "model": self.model,
            "permissionMode": self.args.permission_mode,
            "slash_commands": ["compact", "context", "init", "review"],
            "apiKeySource": "ANTHROPIC_API_KEY",
            "claude_code_version": VERSION,
            "output_style": "default",
            "agents": ["general-purpose", "Explore", "Plan"],
            "skills": [],
            "plugins": [],
            "analytics_disabled": True,
            "uuid": new_uuid(),
            "original_cwd": self.cwd,
            "fake_claude": True,
        }

    def assistant_event(self, content: list[dict[str, Any]], message_id: str | None = None) -> dict[str, Any]:
        return {
            "type": "assistant",
            "message": {
                "id": message_id or "msg_fake_" + uuid.uuid4().hex[:24],
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": content,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 100, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
                "context_management": None,
            },
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": new_uuid(),
            "timestamp": now(),
        }

    def tool_result_event(self, tool_use_id: str, content: str, is_error: bool, extra: dict[str, Any]) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "tool_result", "content": content, "tool_use_id": tool_use_id}
        if is_error:
            block["is_error"] = True
        return {
            "type": "user",
            "message": {"role": "user", "content": [block]},
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": new_uuid(),
            "timestamp": now(),
            **extra,
        }

    def user_text_event(self, text: str) -> dict[str, Any]:
        return {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": text}]}, "parent_tool_use_id": None, "session_id": self.session_id, "uuid": new_uuid(), "timestamp": now()}

    def result_event(
        self,
        text: str | None,
        *,
        is_error: bool = False,
        subtype: str = "success",
        num_turns: int = 1,
        cost: float = TURN_COST,
        errors: list[str] | None = None,
        terminal_reason: str | None = "completed",
        stop_reason: str | None = "end_turn",
    ) -> dict[str, Any]:
        self.total_cost += cost
        self.last_turn_error = is_error
        output_tokens = len(text or "") // 4 + 1
        usage = {"input_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": output_tokens, "service_tier": "standard"}
        model_usage = {self.model: {"inputTokens": 100, "outputTokens": output_tokens, "costUSD": cost, "contextWindow": 1000000}}
        event: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "duration_ms": 12,
            "duration_api_ms": 5,
            "num_turns": num_turns,
            "stop_reason": stop_reason,
            "session_id": self.session_id,
            "total_cost_usd": self.total_cost,
            "usage": usage,
            "modelUsage": model_usage,
            "permission_denials": self.denials,
            "terminal_reason": terminal_reason,
            "api_error_status": None,
            "uuid": new_uuid(),
            "result_index": max(0, self.turns - 1),
            "queued_turn_count": 0,
            "model_usage_since_last_result": model_usage,
        }
        if subtype == "success":
            event["result"] = text or ""
        if errors:
            event["errors"] = errors
        return event


def _blocks(entry: dict[str, Any]) -> list[dict[str, Any]]:
    message = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _content_text(content: Any) -> str:
    """The text of a user message; an image block reads ``[image <media type>, <N> bytes]`` (the echo shows it)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif block.get("type") == "image":
                source = block.get("source") or {}
                size = len(base64.b64decode(str(source.get("data", ""))))
                parts.append(f"[image {source.get('media_type')}, {size} bytes]")
        return "\n".join(parts)
    return ""


def write_launcher(directory: Path, python: str | None = None) -> Path:
    """A ``claude`` shell script in ``directory`` that runs this fake with ``python -S``.

    For tests: faster than the ``#!/usr/bin/env python3`` line (no site import, no pyenv shim).
    """
    launcher = Path(directory) / "claude"
    launcher.write_text(f'#!/bin/sh\nexec "{python or sys.executable}" -S "{Path(__file__).resolve()}" "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    return launcher


def main() -> None:
    args = Args(sys.argv[1:])
    if args.version:
        print(f"{VERSION} (Claude Code)")
        return
    if args.help:
        print(HELP, end="")
        return
    bypass = args.allow_bypass or args.permission_mode == "bypassPermissions"
    if bypass and os.geteuid() == 0 and os.environ.get("IS_SANDBOX") != "1":
        die(1, ROOT_REFUSED)
    early = os.environ.get("FAKE_CLAUDE_EXIT_BEFORE_INIT")
    if early:
        code, _, message = early.partition(":")
        die(int(code or 1), message or "fake_claude: failing before init as asked")
    if args.print_mode and args.output_format == "stream-json" and not args.verbose:
        die(1, "Error: When using --print, --output-format=stream-json requires --verbose")
    fake = Fake(args)
    fake.log(event="start", argv=sys.argv[1:], cwd=fake.cwd, env={k: v for k, v in os.environ.items() if k == "MCP_TOOL_TIMEOUT" or k.startswith(("FAKE_", "AGENTCHAT_"))})
    exit_code = asyncio.run(fake.run())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


if __name__ == "__main__":
    main()
