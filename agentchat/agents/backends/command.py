"""The command backend: any CLI run once per message (Codex, Gemini CLI, a shell script …).

The prompt goes to the command on stdin or as its last argument; whatever it prints on stdout is
the reply. Each run is its own process group in the agent's repository, so an interrupt or a
timeout ends the command and everything it started. There is no conversation memory between
runs beyond what the command keeps itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from agentchat.agents.backends.base import (
    AgentBackend,
    AgentEvent,
    AssistantText,
    BackendSpec,
    EventChannel,
    ProcessExited,
    SessionStarted,
    TurnResult,
)
from agentchat.agents.backends.process import signal_group, wait_event
from agentchat.agents.sandbox import Launch
from agentchat.config import CommandBackendSettings
from agentchat.errors import BackendError

log = logging.getLogger(__name__)

# Output beyond this is dropped (and said so): a reply is for a chat window.
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 4096



@dataclass(eq=False)
class _Output(asyncio.SubprocessProtocol):
    """Collects one run's stdout and stderr and tells when the process and its pipes are done."""

    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    pipes_closed: asyncio.Event = field(default_factory=asyncio.Event)
    _open_pipes: set[int] = field(default_factory=lambda: {1, 2})

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self.stdout if fd == 1 else self.stderr
        room = MAX_OUTPUT_BYTES - len(buffer)
        if len(data) > room:
            self.truncated = True
            if fd == 2:
                # For stderr the end matters (the tail is reported): keep the newest bytes.
                del buffer[: len(data) - room]
                room = len(data)
        buffer += data[: max(room, 0)]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes:
            self.pipes_closed.set()

    def process_exited(self) -> None:
        self.exited.set()


class _Run:
    """One message being answered."""

    def __init__(self) -> None:
        self.transport: asyncio.SubprocessTransport | None = None
        self.interrupted = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class CommandBackend(AgentBackend):
    """Runs ``settings.command`` per message; stdout is the reply."""

    def __init__(
        self,
        spec: BackendSpec,
        settings: CommandBackendSettings,
        *,
        kind: str = "command",
        kill_grace: float = 2.0,
    ) -> None:
        self.kind = kind
        self._spec = spec
        self._settings = settings
        self._kill_grace = kill_grace
        self._events = EventChannel()
        self._running = False
        self._run: _Run | None = None
        self._started_once = False
        self._program: Path | None = None

    @property
    def running(self) -> bool:
        return self._running

    @property
    def pid(self) -> int | None:
        run = self._run
        return run.transport.get_pid() if run is not None and run.transport is not None else None

    @property
    def session_id(self) -> str | None:
        return self._spec.session_id

    async def start(self) -> None:
        if self._running:
            return
        program = self._settings.command[0]
        found = await asyncio.to_thread(shutil.which, program, os.X_OK, self._path())
        if found is None:
            raise BackendError(f"{self._settings.label}: command {program!r} not found or not executable")
        self._program = Path(found)
        if not await asyncio.to_thread(self._spec.cwd.is_dir):
            raise BackendError(f"{self._settings.label}: the repository {self._spec.cwd} does not exist")
        self._running = True
        self._events.reopen()
        if not self._started_once:
            self._started_once = True
            self._emit(SessionStarted(session_id=self._spec.session_id, model=None, cwd=str(self._spec.cwd)))

    async def send(self, text: str) -> None:
        if not self._running:
            raise BackendError(f"{self._settings.label} is not running")
        if self._run is not None:
            raise BackendError(f"{self._settings.label} is still answering the previous message")
        run = _Run()
        self._run = run
        run.task = asyncio.create_task(self._answer(run, text), name=f"command-{self._spec.agent_id}")

    async def interrupt(self) -> None:
        run = self._run
        if run is None or run.task is None:
            return
        run.interrupted.set()
        await asyncio.shield(run.task)

    async def stop(self) -> None:
        if self._running:
            self._running = False
            await self.interrupt()
            self._emit(ProcessExited(exit_code=None, expected=True))
        # Only now, with everything queued, may events() end.
        self._events.close()

    def events(self) -> AsyncIterator[AgentEvent]:
        """Every event in order; ends once stop() has run and all is delivered."""
        return self._events.stream()

    # --- one message

    def _argv(self, text: str) -> list[str]:
        argv = list(self._settings.command)
        if self._settings.prompt_via == "argument":
            argv.append(text)
        return argv

    def _environment(self) -> dict[str, str]:
        return self._spec.sandbox.environment(self._settings.env, self._spec.env)

    def _path(self) -> str | None:
        return self._environment().get("PATH")

    async def _answer(self, run: _Run, text: str) -> None:
        try:
            self._emit(await self._execute(run, text))
        finally:
            self._run = None

    async def _execute(self, run: _Run, text: str) -> TurnResult:
        started = time.monotonic()
        output = _Output()
        loop = asyncio.get_running_loop()
        via_stdin = self._settings.prompt_via == "stdin"
        sandbox = self._spec.sandbox
        launch = sandbox.launch(self._spec.dirs)
        try:
            binds = sandbox.program_binds(self._program) if launch.sandboxed and self._program else []
            # No reach_url: a command gets no MCP token, so it has nothing to reach the endpoint for.
            await launch.prepare(self._argv(text), env=self._environment(), cwd=self._spec.cwd, binds=binds)
            transport, _ = await loop.subprocess_exec(
                lambda: output,
                *launch.argv,
                stdin=asyncio.subprocess.PIPE if via_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=launch.cwd,
                env=launch.env,
                pass_fds=launch.pass_fds,
                umask=launch.umask,
                start_new_session=True,
            )
        except (OSError, BackendError) as exc:
            await launch.release()
            reason = exc.strerror or exc if isinstance(exc, OSError) else exc
            return TurnResult(is_error=True, subtype="error", errors=(f"cannot run {self._settings.command[0]}: {reason}",))
        launch.spawned()
        try:
            return await self._collect(run, text, transport, output, launch, started)
        finally:
            await launch.release()

    async def _collect(
        self,
        run: _Run,
        text: str,
        transport: asyncio.SubprocessTransport,
        output: _Output,
        launch: Launch,
        started: float,
    ) -> TurnResult:
        via_stdin = self._settings.prompt_via == "stdin"
        run.transport = transport
        stdin = transport.get_pipe_transport(0) if via_stdin else None
        if isinstance(stdin, asyncio.WriteTransport):
            stdin.write(text.encode())
            stdin.close()  # EOF: the prompt is complete
        timeout = self._settings.timeout / 1000
        ended = asyncio.create_task(output.exited.wait())
        interrupted = asyncio.create_task(run.interrupted.wait())
        await asyncio.wait({ended, interrupted}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        interrupted.cancel()
        timed_out = not output.exited.is_set() and not run.interrupted.is_set()
        if not output.exited.is_set():
            await self._end_group(transport, output)
        # The pipes may outlive the process when it left a child behind holding them.
        await wait_event(output.pipes_closed, 1.0)
        signal_group(transport.get_pid(), signal.SIGKILL)
        transport.close()
        duration_ms = int((time.monotonic() - started) * 1000)
        exit_code = launch.exit_code(transport.get_returncode())
        reply = output.stdout.decode("utf-8", errors="replace").strip()
        if output.truncated:
            reply += "\n[output truncated]"
        tail = _tail(output.stderr.decode("utf-8", errors="replace"))
        if run.interrupted.is_set():
            return TurnResult(is_error=True, subtype="interrupted", text=reply or None, duration_ms=duration_ms, errors=("interrupted",))
        if timed_out:
            message = f"timed out after {timeout:g} s"
            log.warning("agent %s: %s %s", self._spec.agent_id, self._settings.command[0], message)
            return TurnResult(is_error=True, subtype="timeout", text=reply or None, duration_ms=duration_ms, errors=(message, tail) if tail else (message,))
        if exit_code != 0:
            message = f"{self._settings.command[0]} exited with code {exit_code}"
            log.warning("agent %s: %s: %s", self._spec.agent_id, message, tail[-500:])
            return TurnResult(is_error=True, subtype="error", text=reply or None, num_turns=1, duration_ms=duration_ms, errors=(message, tail) if tail else (message,))
        if reply:
            self._emit(AssistantText(reply))
        return TurnResult(is_error=False, text=reply, num_turns=1, duration_ms=duration_ms)

    async def _end_group(self, transport: asyncio.SubprocessTransport, output: _Output) -> None:
        signal_group(transport.get_pid(), signal.SIGTERM)
        if not await wait_event(output.exited, self._kill_grace):
            signal_group(transport.get_pid(), signal.SIGKILL)
            await output.exited.wait()

    def _emit(self, event: AgentEvent) -> None:
        self._events.emit(event)


def _tail(text: str) -> str:
    lines = text.rstrip().splitlines()[-STDERR_TAIL_LINES:]
    return "\n".join(lines)[-STDERR_TAIL_CHARS:]
