"""A JSON-RPC 2.0 peer over a child process's stdio: one JSON object per line, both ways.

Codex's ``app-server`` and the ACP agents (``gemini --acp``, ``opencode acp``) all speak it. The child
runs in its own process group in the agent's repository, started as its ``Launch`` says (inside the
agent's sandbox, or unconfined with the filtered environment); its death is noticed at once through a
SubprocessProtocol (a grandchild holding stdout open cannot hide it), and it is reaped by one owner.
Every stdout line is parsed once into ``RpcMessage``; a line that is no JSON-RPC message is reported
to ``on_problem`` and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agentchat.agents.backends.claude.driver import StderrTail
from agentchat.agents.backends.claude.protocol import LineSplitter, OversizedLine
from agentchat.agents.backends.process import signal_group, wait_event
from agentchat.agents.sandbox import Launch
from agentchat.errors import BackendError

log = logging.getLogger(__name__)

EXCERPT_CHARS = 200
METHOD_NOT_FOUND = -32601


class RpcErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: int = 0
    message: str = ""
    data: Any = None


class RpcMessage(BaseModel):
    """A request (method and id), a notification (method only) or a response (id only)."""

    model_config = ConfigDict(extra="allow")

    id: int | str | None = None
    method: str | None = None
    params: Any = None
    result: Any = None
    error: RpcErrorBody | None = None

    @property
    def is_request(self) -> bool:
        return self.method is not None and self.id is not None

    @property
    def is_notification(self) -> bool:
        return self.method is not None and self.id is None

    @property
    def is_response(self) -> bool:
        return self.method is None and self.id is not None


class RpcError(BackendError):
    """The peer answered a request with an error."""

    def __init__(self, method: str, error: RpcErrorBody) -> None:
        details = error.data.get("details") if isinstance(error.data, dict) else None
        why = f": {details}" if isinstance(details, str) and details else ""
        super().__init__(f"{method} failed: {error.message or 'error'} (code {error.code}){why}")
        self.method = method
        self.code = error.code
        self.body = error


def decode_message(line: bytes) -> RpcMessage | str:
    """One stdout line as a message, or why it is not one (never raises)."""
    text = line.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return f"not JSON ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}): {_excerpt(text)}"
    if not isinstance(data, dict):
        return f"not a JSON object (a {type(data).__name__}): {_excerpt(text)}"
    try:
        message = RpcMessage.model_validate(data)
    except ValidationError as exc:
        return f"not a JSON-RPC message ({exc.errors()[0]['msg']}): {_excerpt(text)}"
    if message.method is None and message.id is None:
        return f"a JSON object without method or id: {_excerpt(text)}"
    return message


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


@dataclass(frozen=True)
class ChildExit:
    exit_code: int | None
    stderr_tail: str
    expected: bool


@dataclass(eq=False)
class _Pipes:
    stdout: LineSplitter = field(default_factory=LineSplitter)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    stdout_closed: asyncio.Event = field(default_factory=asyncio.Event)
    stderr_closed: asyncio.Event = field(default_factory=asyncio.Event)


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, peer: RpcPeer) -> None:
        self._peer = peer

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            for item in self._peer._pipes.stdout.feed(data):
                self._peer._line(item)
        elif fd == 2:
            for line in self._peer.stderr.feed(data):
                self._peer._log.debug("%s stderr: %s", self._peer.name, line)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._peer._pipes.stdout_closed.set()
        elif fd == 2:
            self._peer._pipes.stderr_closed.set()

    def process_exited(self) -> None:
        self._peer._pipes.exited.set()


class RpcPeer:
    """One child process spoken to in JSON-RPC. One instance per process: a restart makes a new one."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        launch: Launch,
        on_request: Callable[[RpcMessage], None],
        on_notification: Callable[[RpcMessage], None],
        on_problem: Callable[[str], None],
        on_exit: Callable[[ChildExit], None],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
        secrets: tuple[str, ...] = (),
        stop_grace: float = 3.0,
        drain_timeout: float = 1.0,
    ) -> None:
        self.name = name
        # The command before the sandbox wraps it (for the log); the launch, prepared, says what runs.
        self._argv = argv
        self._launch = launch
        self._on_request = on_request
        self._on_notification = on_notification
        self._on_problem = on_problem
        self._on_exit = on_exit
        self._log = logger
        self._stop_grace = stop_grace
        self._drain_timeout = drain_timeout
        self.stderr = StderrTail(secrets=secrets)
        self._pipes = _Pipes()
        self._transport: asyncio.SubprocessTransport | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._shutdown: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int | str, tuple[str, asyncio.Future[Any]]] = {}
        self.stopping = False
        self.exit: ChildExit | None = None

    @property
    def pid(self) -> int | None:
        return self._transport.get_pid() if self._transport is not None else None

    @property
    def running(self) -> bool:
        return self._transport is not None and not self._pipes.exited.is_set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        launch = self._launch
        self._log.info("starting %s in %s%s", " ".join(self._argv), launch.cwd, " (sandboxed)" if launch.sandboxed else "")
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: _Protocol(self),
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
            raise BackendError(f"cannot start {self.name} ({self._argv[0]}) in {launch.cwd}: {exc.strerror or exc}") from exc
        launch.spawned()
        self._transport = transport
        self._supervisor = asyncio.create_task(self._supervise(), name=f"rpc-supervisor-{self.name}")

    async def exits_within(self, timeout: float) -> bool:
        """Whether the process ends by itself within ``timeout`` (then its exit is known)."""
        if not await wait_event(self._pipes.exited, timeout):
            return False
        await self.wait_exited()
        return True

    async def wait_exited(self) -> None:
        await self._pipes.exited.wait()
        if self._supervisor is not None:
            await asyncio.shield(self._supervisor)

    # --- writing

    def _write(self, message: Mapping[str, Any]) -> None:
        pipe = self._transport.get_pipe_transport(0) if self._transport is not None else None
        if pipe is None or pipe.is_closing() or self._pipes.exited.is_set():
            raise BackendError(f"{self.name} is not running")
        # ensure_ascii: any str survives (lone surrogates included) as valid JSON.
        pipe.write((json.dumps({"jsonrpc": "2.0", **message}, ensure_ascii=True) + "\n").encode("ascii"))  # type: ignore[attr-defined]

    async def request(self, method: str, params: Any, timeout: float | None = None) -> Any:
        """Send a request and wait for its result; RpcError on an error answer, BackendError if the child ends."""
        request_id = next(self._ids)
        answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = (method, answered)
        try:
            self._write({"id": request_id, "method": method, "params": params})
            async with asyncio.timeout(timeout):
                return await answered
        except TimeoutError:
            raise BackendError(f"{self.name} did not answer {method} within {timeout:g} s") from None
        finally:
            self._waiting.pop(request_id, None)

    def notify(self, method: str, params: Any) -> None:
        self._write({"method": method, "params": params})

    def respond(self, request_id: int | str, result: Any) -> None:
        self._write({"id": request_id, "result": result})

    def respond_error(self, request_id: int | str, code: int, message: str) -> None:
        self._write({"id": request_id, "error": {"code": code, "message": message}})

    # --- reading

    def _line(self, item: bytes | OversizedLine) -> None:
        if isinstance(item, OversizedLine):
            self._on_problem(f"dropped a line of {item.length} bytes from {self.name} (over the size limit)")
            return
        if not item.strip():
            return
        message = decode_message(item)
        if isinstance(message, str):
            self._on_problem(f"unreadable line from {self.name}, {message}")
        elif message.is_response:
            self._answered(message)
        elif message.is_request:
            self._on_request(message)
        else:
            self._on_notification(message)

    def _answered(self, message: RpcMessage) -> None:
        assert message.id is not None
        waiting = self._waiting.get(message.id)
        if waiting is None:
            self._log.debug("%s answered unknown request %r", self.name, message.id)
            return
        method, answered = waiting
        if answered.done():
            return
        if message.error is not None:
            answered.set_exception(RpcError(method, message.error))
        else:
            answered.set_result(message.result)

    # --- end of the process

    async def _supervise(self) -> None:
        await self._pipes.exited.wait()
        assert self._transport is not None
        # A signal death inside the sandbox comes back as bubblewrap's 128 + N: reported as -N.
        exit_code = self._launch.exit_code(self._transport.get_returncode())
        pid = self.pid
        try:
            await asyncio.wait_for(
                asyncio.gather(self._pipes.stdout_closed.wait(), self._pipes.stderr_closed.wait()), self._drain_timeout
            )
        except TimeoutError:
            self._log.warning("the pipes of %s (pid %s) stay open after its exit: a child holds them", self.name, pid)
        if pid is not None:
            signal_group(pid, signal.SIGKILL)  # the tools it started end with it
        for item in self._pipes.stdout.finish():
            self._line(item)
        self.stderr.finish()
        self._transport.close()
        await self._launch.release()
        for method, answered in self._waiting.values():
            if not answered.done():
                answered.set_exception(BackendError(f"{self.name} exited before answering {method}"))
        self.exit = ChildExit(exit_code, self.stderr.text(), self.stopping)
        level = logging.INFO if self.stopping else logging.WARNING
        self._log.log(level, "%s (pid %s) exited with code %s%s", self.name, pid, exit_code,
                      "" if self.stopping else ": " + self.exit.stderr_tail[-500:])
        self._on_exit(self.exit)

    async def stop(self) -> None:
        """End the process and its group (stdin closed, then SIGTERM, then SIGKILL); idempotent."""
        if self._transport is None:
            return
        if self._shutdown is None:
            self._shutdown = asyncio.create_task(self._shut_down(), name=f"rpc-stop-{self.name}")
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        # A process that already died on its own is not one we stopped.
        self.stopping = not self._pipes.exited.is_set()
        assert self._transport is not None and self._supervisor is not None
        pipe = self._transport.get_pipe_transport(0)
        if pipe is not None and not pipe.is_closing():
            pipe.close()
        for next_signal in (signal.SIGTERM, signal.SIGKILL):
            if await wait_event(self._pipes.exited, self._stop_grace):
                break
            pid = self.pid
            self._log.info("%s (pid %s) still running, sending %s to its group", self.name, pid, next_signal.name)
            if pid is not None:
                signal_group(pid, next_signal)
        await self._supervisor
