"""The Claude Code backend: one long-lived ``claude -p`` process per agent, spoken to in stream-json.

Life of a process (reference §2–§8): spawned in its own process group in the agent's repository,
silent until the first user message; every turn prints ``system/init … result``; an interrupt is a
control_request that keeps the process; stop closes stdin, then SIGTERMs and finally SIGKILLs the
group. The process is watched through a SubprocessProtocol so that its death is noticed at once,
even when a grandchild still holds stdout open, and stdout is split into lines by our own splitter
(no 64 KiB readline limit).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import signal
from collections import deque
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentchat.agents.backends.base import (
    AgentBackend,
    AgentEvent,
    AssistantText,
    BackendNotice,
    BackendSpec,
    EventChannel,
    PermissionModeChanged,
    ProcessExited,
    SessionStarted,
    SettingNotApplied,
    ToolResult,
    ToolUse,
    TurnResult,
    UserTurn,
)
from agentchat.agents.backends.claude.locate import locate_claude
from agentchat.agents.backends.claude.modes import BYPASS, DEFAULT, bypass_possible
from agentchat.agents.backends.claude.protocol import (
    ApiRetry,
    AssistantMessage,
    ControlRequest,
    ControlResponse,
    DecodeProblem,
    LineSplitter,
    OversizedLine,
    ResultEvent,
    StreamEvent,
    SystemEvent,
    SystemInit,
    SystemStatus,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UnknownBlock,
    UnknownEvent,
    UserMessage,
    decode_line,
    encode_control_error,
    encode_control_request,
    encode_interrupt,
    encode_user_message,
)
from agentchat.agents.backends.process import signal_group, wait_event
from agentchat.agents.sandbox import Bind, Launch
from agentchat.config import ClaudeSettings
from agentchat.errors import BackendError

log = logging.getLogger(__name__)

MCP_SERVER_NAME = "agentchat"
PERMISSION_TOOL = f"mcp__{MCP_SERVER_NAME}__permission_prompt"
# The CLI must wait longer for our permission tool than a person may take to answer it.
MCP_TIMEOUT_MARGIN_S = 30.0
# A login of the service's user (`claude` then /login), relative to a home directory.
CREDENTIALS_FILE = Path(".claude/.credentials.json")
SESSION_NOT_FOUND = "No conversation found"
# --session-id of a session the CLI already holds: "Error: Session ID <id> is already in use."
SESSION_IN_USE = "is already in use"

# How long the CLI has to acknowledge an interrupt (it answers in ~25 ms) before its process is ended.
INTERRUPT_TIMEOUT = 10.0
# How long a mode or model switch may take to be answered (a few ms observed).
CONTROL_TIMEOUT = 10.0
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 4096
# Undecodable lines reported to the chat per process; the rest are only logged.
MAX_REPORTED_PROBLEMS = 5



class _AgentLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        agent_id = self.extra["agent_id"] if self.extra else "?"
        return f"agent {agent_id}: {msg}", kwargs


class StderrTail:
    """The last lines of a child's stderr (at most STDERR_TAIL_LINES lines and STDERR_TAIL_CHARS)."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self._lines: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._splitter = LineSplitter(max_line=STDERR_TAIL_CHARS * 4)
        self._secrets = tuple(s for s in secrets if s)

    def feed(self, data: bytes) -> list[str]:
        """Add a chunk; return the lines it completed."""
        return [self._add(item) for item in self._splitter.feed(data)]

    def finish(self) -> list[str]:
        return [self._add(item) for item in self._splitter.finish()]

    def _add(self, item: bytes | OversizedLine) -> str:
        if isinstance(item, OversizedLine):
            line = f"[a stderr line of {item.length} bytes]"
        else:
            line = item.decode("utf-8", errors="replace").rstrip("\r")
        for secret in self._secrets:
            line = line.replace(secret, "********")
        self._lines.append(line)
        return line

    def text(self) -> str:
        return "\n".join(self._lines)[-STDERR_TAIL_CHARS:]


@dataclass(eq=False)
class _Run:
    """Everything about one process; a restart gets a fresh one, so late callbacks of a dead
    process can never touch its successor."""

    stderr: StderrTail
    # How the process was started (its sandbox, its private files); released once it ended.
    launch: Launch
    stdout: LineSplitter = field(default_factory=LineSplitter)
    transport: asyncio.SubprocessTransport | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    stdout_closed: asyncio.Event = field(default_factory=asyncio.Event)
    stderr_closed: asyncio.Event = field(default_factory=asyncio.Event)
    supervisor: asyncio.Task[None] | None = None
    shutdown: asyncio.Task[None] | None = None
    stopping: bool = False
    session_started: bool = False
    session_not_found: bool = False
    session_in_use: bool = False
    # An interrupt was sent during the current turn: its result is a stop, not a failure.
    interrupt_requested: bool = False
    mcp_failure_reported: bool = False
    # total_cost_usd of the last result: the CLI adds up over the process.
    last_total_cost: float = 0.0
    problems: int = 0
    unknown_kinds: set[str] = field(default_factory=set)
    interrupts: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    # Our other control requests (set_permission_mode, set_model), waiting for their control_response.
    controls: dict[str, asyncio.Future[ControlResponse]] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.transport.get_pid() if self.transport is not None else None

    def close_stdin(self) -> None:
        pipe = self.transport.get_pipe_transport(0) if self.transport is not None else None
        if pipe is not None and not pipe.is_closing():
            pipe.close()

    def write(self, data: bytes) -> None:
        pipe = self.transport.get_pipe_transport(0) if self.transport is not None else None
        if pipe is None or pipe.is_closing() or self.exited.is_set():
            raise BackendError("Claude Code is not running")
        pipe.write(data)  # type: ignore[attr-defined]


class _ProcessProtocol(asyncio.SubprocessProtocol):
    def __init__(self, backend: ClaudeCodeBackend, run: _Run) -> None:
        self._backend = backend
        self._run = run

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._run.transport = transport  # type: ignore[assignment]

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self._backend._on_stdout(self._run, data)
        elif fd == 2:
            self._backend._on_stderr(self._run, data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._run.stdout_closed.set()
        elif fd == 2:
            self._run.stderr_closed.set()

    def process_exited(self) -> None:
        self._run.exited.set()


class ClaudeCodeBackend(AgentBackend):
    """Drives ``claude -p --input-format stream-json --output-format stream-json --verbose``."""

    kind = "claude"

    def __init__(
        self,
        spec: BackendSpec,
        settings: ClaudeSettings,
        *,
        stop_grace: float = 3.0,
        interrupt_timeout: float | None = None,
        drain_timeout: float = 1.0,
    ) -> None:
        self._spec = spec
        self._settings = settings
        self._stop_grace = stop_grace
        self._interrupt_timeout = INTERRUPT_TIMEOUT if interrupt_timeout is None else interrupt_timeout
        self._drain_timeout = drain_timeout
        self._log = _AgentLog(log, {"agent_id": spec.agent_id})
        self._events = EventChannel()
        self._run: _Run | None = None
        self._session_id = spec.session_id
        # Whether the CLI already holds this session: then a (re)start must --resume it.
        self._session_exists = spec.resume
        # What the session cost so far in this backend's life, over all its processes.
        self._session_cost = 0.0
        self._request_ids = itertools.count(1)
        self._version: str | None = None  # from system/init
        # The permission mode as the CLI last reported it (init, system/status), over all its processes.
        self._mode = spec.permission_mode or DEFAULT
        self._model = spec.model or settings.model
        self._launched_model: str | None = None  # the --model of the running process

    # --- AgentBackend

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.exited.is_set()

    @property
    def pid(self) -> int | None:
        return self._run.pid if self._run is not None else None

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def engine_name(self) -> str:
        return "Claude Code"

    @property
    def engine_version(self) -> str | None:
        return self._version

    async def start(self) -> None:
        if self.running:
            return
        binary = await asyncio.to_thread(locate_claude, self._settings.path)
        launch = self._spec.sandbox.launch(self._spec.dirs)
        if launch.sandboxed:
            # Inside, only the CLI's own directory shows, not a symlink to it (~/.local/bin/claude).
            binary = await asyncio.to_thread(binary.resolve)
        run = _Run(stderr=StderrTail(secrets=(self._spec.mcp_token or "",)), launch=launch)
        config_path = launch.private_file("mcp-config.json", self._mcp_config()) if self._spec.mcp_url else None
        argv = self._argv(binary, config_path)
        try:
            binds = await asyncio.to_thread(self._binds, binary)
            await launch.prepare(argv, env=self._environment(), cwd=self._spec.cwd, binds=binds, reach_url=self._spec.mcp_url)
        except (BackendError, OSError) as exc:
            await launch.release()
            raise BackendError(f"cannot start Claude Code in {self._spec.cwd}: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._log.info("starting %s in %s%s", " ".join(argv), self._spec.cwd, " (sandboxed)" if launch.sandboxed else "")
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: _ProcessProtocol(self, run),
                *launch.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=launch.cwd,
                env=launch.env,
                pass_fds=launch.pass_fds,
                umask=launch.umask,
                start_new_session=True,
            )
        except OSError as exc:
            await launch.release()
            raise BackendError(f"cannot start Claude Code ({binary}) in {self._spec.cwd}: {exc.strerror or exc}") from exc
        launch.spawned()
        run.transport = transport
        self._run = run
        self._events.reopen()
        run.supervisor = asyncio.create_task(self._supervise(run), name=f"claude-supervisor-{self._spec.agent_id}")

    async def send(self, text: str) -> None:
        run = self._require_run()
        run.write(encode_user_message(text))

    async def send_turn(self, turn: UserTurn) -> None:
        """Pictures go as image content blocks: Claude sees them (and reads where they were saved)."""
        run = self._require_run()
        run.write(encode_user_message(turn.text_with_paths(), [(image.media_type, image.data) for image in turn.images]))

    async def interrupt(self) -> None:
        run = self._run
        if run is None or run.exited.is_set():
            return
        request_id = f"req_int_{next(self._request_ids)}"
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        run.interrupts[request_id] = answered
        run.interrupt_requested = True
        try:
            run.write(encode_interrupt(request_id))
            await asyncio.wait_for(answered, self._interrupt_timeout)
        except TimeoutError:
            raise BackendError(f"Claude Code did not acknowledge the interrupt within {self._interrupt_timeout:g} s") from None
        finally:
            run.interrupts.pop(request_id, None)

    async def set_permission_mode(self, mode: str) -> None:
        # Taken as ours before the answer: the system/status that follows it must not read as the CLI's own switch.
        previous, self._mode = self._mode, mode
        try:
            await self._control({"subtype": "set_permission_mode", "mode": mode})
        except BaseException:
            self._mode = previous
            raise

    async def set_model(self, model: str | None) -> str | None:
        # "default" takes a running CLI back to the model it was started with, which may be the one chosen
        # before: the configured model is named instead, and the CLI's own one is reached by a new start.
        wanted = model or self._settings.model
        if wanted is None and self._launched_model is not None:
            raise SettingNotApplied(f"Claude Code was started with {self._launched_model}", "started_with_model")
        answer = await self._control({"subtype": "set_model", "model": wanted or "default"})
        effective = (answer.response.response or {}).get("model")
        self._model = model
        return effective if isinstance(effective, str) else model

    async def _control(self, request: dict[str, Any]) -> ControlResponse:
        """Send a control_request and wait for its answer; SettingNotApplied when there is no process or the
        CLI refuses (the setting is then used at the next start)."""
        run = self._run
        if run is None or run.exited.is_set():
            raise SettingNotApplied("Claude Code is not running", "not_running")
        request_id = f"req_ctl_{next(self._request_ids)}"
        answered: asyncio.Future[ControlResponse] = asyncio.get_running_loop().create_future()
        run.controls[request_id] = answered
        try:
            run.write(encode_control_request(request_id, request))
            answer = await asyncio.wait_for(answered, CONTROL_TIMEOUT)
        except TimeoutError:
            raise SettingNotApplied(f"Claude Code did not answer within {CONTROL_TIMEOUT:g} s", "timeout") from None
        except BackendError as exc:
            raise SettingNotApplied(str(exc), "not_running") from None
        finally:
            run.controls.pop(request_id, None)
        if answer.response.subtype != "success":
            code = str((answer.response.model_extra or {}).get("error_code") or answer.response.subtype)
            raise SettingNotApplied(answer.response.error or f"Claude Code refused ({code})", code)
        return answer

    async def stop(self) -> None:
        run = self._run
        if run is not None:
            if run.shutdown is None:
                run.shutdown = asyncio.create_task(self._shut_down(run), name=f"claude-stop-{self._spec.agent_id}")
            # Shielded: a caller cancelled mid-stop must not leave the process half ended.
            await asyncio.shield(run.shutdown)
        # Only now, with ProcessExited queued, may events() end.
        self._events.close()

    def events(self) -> AsyncIterator[AgentEvent]:
        """Every event in order, across restarts; ends once stop() has run and all is delivered."""
        return self._events.stream()

    # --- process start

    def _argv(self, binary: Path, config_path: Path | None) -> list[str]:
        argv = [str(binary), "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
        model = self._launched_model = self._model
        if model:
            argv += ["--model", model]
        argv += self._mode_arguments()
        # --session-id makes the id known before the first turn (init only comes with a turn).
        argv += ["--resume" if self._session_exists else "--session-id", self._session_id]
        argv += self._settings.extra_args
        if config_path is not None and self._spec.service_tools:
            # The service's own tools (a file sent to the chat…) need no prompt; one argument, comma-separated.
            argv += ["--allowedTools", ",".join(self._spec.service_tools)]
        if config_path is not None:
            # --mcp-config is variadic: it goes last so that it swallows nothing of ours.
            argv += ["--permission-prompt-tool", PERMISSION_TOOL, "--mcp-config", str(config_path)]
        return argv

    def _mode_arguments(self) -> list[str]:
        """--permission-mode for a mode chosen from the chat, and what lets a running process take
        bypassPermissions; a bypass the configuration or this machine no longer allows starts as default."""
        bypass = self._spec.allow_bypass and bypass_possible(self._environment(), self._spec.sandbox.process_uid)
        mode = self._mode
        if mode == BYPASS and not bypass:
            self._log.warning("bypassPermissions is not allowed (any more): starting in the default mode")
            mode = self._mode = DEFAULT
            self._emit(PermissionModeChanged(DEFAULT))  # the agent's record follows
        arguments = ["--allow-dangerously-skip-permissions"] if bypass else []
        if mode != DEFAULT:
            arguments += ["--permission-mode", mode]
        return arguments

    def _environment(self) -> dict[str, str]:
        ours: dict[str, str] = {}
        if self._spec.mcp_url:
            ours["MCP_TOOL_TIMEOUT"] = str(int((self._spec.permission_timeout + MCP_TIMEOUT_MARGIN_S) * 1000))
        return self._spec.sandbox.environment(ours, self._settings.env, self._spec.env)

    def _mcp_config(self) -> bytes:
        """The --mcp-config file's content. A file, not an argument: on the command line the bearer
        token would be visible to every local user in /proc/<pid>/cmdline."""
        server: dict[str, Any] = {"type": "http", "url": self._spec.mcp_url}
        if self._spec.mcp_token:
            server["headers"] = {"Authorization": f"Bearer {self._spec.mcp_token}"}
        return json.dumps({"mcpServers": {MCP_SERVER_NAME: server}}).encode()

    def _binds(self, binary: Path) -> list[Bind]:
        """What the sandboxed CLI needs to see: its own files, and a login of the service's user
        (only the credentials file, read-only; blocking: runs in a thread)."""
        sandbox, dirs = self._spec.sandbox, self._spec.dirs
        if not sandbox.enabled or dirs is None:
            return []
        binds = sandbox.program_binds(binary)
        credentials = Path.home() / CREDENTIALS_FILE
        if credentials.is_file():
            binds.append(Bind(credentials, dirs.home / CREDENTIALS_FILE))
        return binds

    def _require_run(self) -> _Run:
        run = self._run
        if run is None or run.exited.is_set():
            raise BackendError("Claude Code is not running")
        return run

    # --- process end

    async def _supervise(self, run: _Run) -> None:
        """The one place that handles the process's end: drain, clean up the group, report."""
        await run.exited.wait()
        assert run.transport is not None
        exit_code = run.launch.exit_code(run.transport.get_returncode())
        pid = run.pid
        try:
            # What the process wrote before dying is still in the pipes; a grandchild that keeps
            # them open must not delay the report, hence the timeout.
            await asyncio.wait_for(asyncio.gather(run.stdout_closed.wait(), run.stderr_closed.wait()), self._drain_timeout)
        except TimeoutError:
            self._log.warning("the pipes of Claude Code (pid %s) stay open after its exit: a child holds them", pid)
        if pid is not None:
            # The rest of the group (tools the CLI started) dies with it: one owner per process.
            signal_group(pid, signal.SIGKILL)
        for item in run.stdout.finish():
            self._handle_line(run, item)
        for line in run.stderr.finish():
            self._note_stderr_line(run, line)
        run.transport.close()
        await run.launch.release()
        for answered in run.interrupts.values():
            if not answered.done():
                answered.set_result(None)
        for control in run.controls.values():
            if not control.done():
                control.set_exception(BackendError("Claude Code exited before it answered"))
        if self._run is run:
            self._run = None
        event = ProcessExited(
            exit_code=exit_code,
            stderr_tail=run.stderr.text(),
            expected=run.stopping,
            session_not_found=run.session_not_found,
            session_in_use=run.session_in_use,
        )
        level = logging.INFO if run.stopping else logging.WARNING
        self._log.log(level, "Claude Code (pid %s) exited with code %s%s", pid, exit_code, "" if run.stopping else ": " + event.stderr_tail[-500:])
        self._emit(event)

    async def _shut_down(self, run: _Run) -> None:
        run.stopping = True
        assert run.supervisor is not None
        run.close_stdin()  # idle: the CLI exits at EOF; busy: it would finish the turn first
        for next_signal in (signal.SIGTERM, signal.SIGKILL):
            if await wait_event(run.exited, self._stop_grace):
                break
            pid = run.pid
            self._log.info("Claude Code (pid %s) still running, sending %s to its group", pid, next_signal.name)
            if pid is not None:
                signal_group(pid, next_signal)
        await run.supervisor

    # --- output

    def _emit(self, event: AgentEvent) -> None:
        self._events.emit(event)

    def _notice(self, message: str) -> None:
        self._emit(BackendNotice(message))

    def _on_stdout(self, run: _Run, data: bytes) -> None:
        for item in run.stdout.feed(data):
            self._handle_line(run, item)

    def _on_stderr(self, run: _Run, data: bytes) -> None:
        for line in run.stderr.feed(data):
            self._note_stderr_line(run, line)

    def _note_stderr_line(self, run: _Run, line: str) -> None:
        self._log.debug("claude stderr: %s", line)
        if SESSION_NOT_FOUND in line:
            self._session_lost(run)
        elif SESSION_IN_USE in line and self._session_id in line:
            # The session exists after all (the owner's resume flag was stale): the Agent resumes it.
            self._session_exists = True
            run.session_in_use = True

    def _session_lost(self, run: _Run) -> None:
        if not run.session_not_found:
            run.session_not_found = True
            # The CLI reports the unknown session, then waits for stdin to end before exiting.
            run.close_stdin()

    def _handle_line(self, run: _Run, item: bytes | OversizedLine) -> None:
        if isinstance(item, OversizedLine):
            self._problem(run, f"dropped a stdout line of {item.length} bytes (over the size limit)")
            return
        if not item.strip():
            return
        event = decode_line(item)
        if isinstance(event, DecodeProblem):
            self._problem(run, f"unreadable line from Claude Code, {event.reason}: {event.excerpt}")
        elif isinstance(event, SystemInit):
            self._on_init(run, event)
        elif isinstance(event, AssistantMessage):
            self._on_assistant(run, event)
        elif isinstance(event, UserMessage):
            self._on_user(run, event)
        elif isinstance(event, ResultEvent):
            self._on_result(run, event)
        elif isinstance(event, ApiRetry):
            status = event.error_status or event.error or "unknown"
            self._notice(f"API error ({status}), retry {event.attempt}/{event.max_retries} in {event.retry_delay_ms / 1000:.1f} s")
        elif isinstance(event, ControlResponse):
            self._on_control_response(run, event)
        elif isinstance(event, ControlRequest):
            # Only sent in modes we do not use (stdio permission prompts); refuse rather than hang the CLI.
            self._log.warning("Claude Code sent a control_request %r; refusing it", event.request.get("subtype"))
            try:
                run.write(encode_control_error(event.request_id, "agentchat does not handle this request"))
            except BackendError:
                self._log.debug("stdin already closed, control_request %s left unanswered", event.request_id)
        elif isinstance(event, SystemStatus):
            self._mode_reported(event.permission_mode)
        elif isinstance(event, (SystemEvent, StreamEvent)):
            pass  # informational (status, thinking_tokens, partial deltas)
        elif isinstance(event, UnknownEvent):
            self._unknown(run, f"{event.type}/{event.subtype}" if event.subtype else str(event.type), event.reason)

    def _problem(self, run: _Run, message: str) -> None:
        self._log.warning("%s", message)
        run.problems += 1
        if run.problems <= MAX_REPORTED_PROBLEMS:
            self._notice(message)
        if run.problems == MAX_REPORTED_PROBLEMS:
            self._notice("further unreadable lines from Claude Code are only logged")

    def _unknown(self, run: _Run, kind: str, reason: str) -> None:
        # Once per kind and process: a new event type in a CLI release must not flood the chat.
        if kind in run.unknown_kinds:
            self._log.debug("skipped %s", reason)
            return
        run.unknown_kinds.add(kind)
        self._log.info("skipped %s (further ones only at debug level)", reason)
        self._notice(f"skipped {reason}")

    def _mode_reported(self, mode: str | None) -> None:
        if mode and mode != self._mode:
            self._mode = mode
            self._emit(PermissionModeChanged(mode))

    def _on_init(self, run: _Run, init: SystemInit) -> None:
        self._version = init.claude_code_version or self._version
        self._mode_reported(init.permission_mode)
        if self._spec.mcp_url and not run.mcp_failure_reported:
            status = next((s.status for s in init.mcp_servers if s.name == MCP_SERVER_NAME), "missing")
            if status != "connected":
                run.mcp_failure_reported = True
                self._notice(f"the permission server is {status} for Claude Code: tools that need permission will fail")
        if run.session_started:
            return  # init comes with every turn; the session started once
        run.session_started = True
        if init.session_id != self._session_id:
            self._log.warning("Claude Code runs session %s, not %s", init.session_id, self._session_id)
        self._session_id = init.session_id
        self._session_exists = True
        self._emit(SessionStarted(session_id=init.session_id, model=init.model, cwd=init.cwd))

    def _on_assistant(self, run: _Run, message: AssistantMessage) -> None:
        for block in message.message.content:
            if isinstance(block, TextBlock):
                # A failed API call's text comes again in the result (is_error); a subagent's
                # text is its report to the main agent, not to the user.
                if block.text.strip() and not message.is_api_error_message and message.parent_tool_use_id is None:
                    self._emit(AssistantText(block.text))
            elif isinstance(block, ToolUseBlock):
                self._emit(ToolUse(tool_use_id=block.id, name=block.name, input=block.input))
            elif isinstance(block, UnknownBlock):
                self._unknown(run, f"block {block.type}", f"unknown assistant content block {block.type!r}")
            elif not isinstance(block, ThinkingBlock):
                self._log.debug("ignored assistant block %s", block.type)

    def _on_user(self, run: _Run, message: UserMessage) -> None:
        if message.is_replay:
            return
        for block in message.message.content:
            if isinstance(block, ToolResultBlock):
                self._emit(ToolResult(tool_use_id=block.tool_use_id, content=block.text, is_error=block.is_error))

    def _on_result(self, run: _Run, result: ResultEvent) -> None:
        if any(SESSION_NOT_FOUND in error for error in result.errors):
            # Not a turn: the CLI could not resume; ProcessExited(session_not_found) tells the owner.
            self._session_lost(run)
            return
        turn_cost: float | None = None
        total_cost: float | None = None
        if result.total_cost_usd is not None:
            turn_cost = max(0.0, result.total_cost_usd - run.last_total_cost)
            run.last_total_cost = result.total_cost_usd
            self._session_cost += turn_cost
            total_cost = self._session_cost
        interrupted = run.interrupt_requested and result.subtype == "error_during_execution"
        run.interrupt_requested = False
        self._emit(
            TurnResult(
                interrupted=interrupted,
                is_error=result.is_error,
                subtype=result.subtype,
                text=result.result,
                num_turns=result.num_turns,
                duration_ms=result.duration_ms,
                turn_cost_usd=turn_cost,
                total_cost_usd=total_cost,
                usage=result.usage,
                errors=tuple(result.errors),
            )
        )

    def _on_control_response(self, run: _Run, message: ControlResponse) -> None:
        control = run.controls.get(message.response.request_id)
        if control is not None:
            if not control.done():
                control.set_result(message)
            return
        answered = run.interrupts.get(message.response.request_id)
        if answered is None or answered.done():
            self._log.debug("control_response for unknown request %s", message.response.request_id)
        elif message.response.subtype == "success":
            answered.set_result(None)
        else:
            answered.set_exception(BackendError(f"Claude Code refused the interrupt: {message.response.error or message.response.subtype}"))
