"""What the JSON-RPC engines (Codex's app-server, the ACP agents) share: one long-lived child per agent,
its isolated configuration, its events, its permission requests relayed to the owner.

The child is launched like every agent's process (agentchat.agents.sandbox): inside the agent's
sandbox, where it sees its repository, the agent's own home and /tmp, its npm tree and Node.js, and
nothing of the state directory; its environment is the allow-list plus the engine's own credential
variables and configuration, never the service's secrets. Its generated configuration and sessions
live in the agent's own home (``AgentDirs.home``: HOME, the XDG directories, Codex's ``~/.codex``).

A subclass says which variables hold its credentials, how to greet the engine (``_handshake``:
initialize, then start or resume a session), how to start a turn, how to interrupt one, and what its
requests and notifications mean.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from agentchat.agents.backends.base import (
    AgentBackend,
    AgentEvent,
    AssistantText,
    BackendNotice,
    BackendSpec,
    EventChannel,
    ProcessExited,
    SessionStarted,
)
from agentchat.agents.backends.engines import Engine, locate_engine, runtime_binds
from agentchat.agents.backends.jsonrpc import METHOD_NOT_FOUND, ChildExit, RpcMessage, RpcPeer
from agentchat.config import EngineSettings, state_home
from agentchat.errors import BackendError
from agentchat.permissions.requests import DecidedBy, Decision

log = logging.getLogger(__name__)

# Unreadable lines reported to the chat per process; the rest are only logged.
MAX_REPORTED_PROBLEMS = 5
# A person's own reason, as opposed to the chat's default wording of a plain "no" or a 👎.
_DEFAULT_DENY_PREFIXES = ("The user denied permission to use", "The user declined")
_AUTOMATIC = frozenset(member.value for member in DecidedBy)


class _AgentLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"agent {self.extra['agent_id']}: {msg}", kwargs  # type: ignore[index]


def owners_reason(decision: Decision) -> str | None:
    """The reason the owner gave with a "no" (``no use pnpm``), or None for a plain or automatic deny."""
    if decision.allowed or decision.decided_by in _AUTOMATIC:
        return None
    message = decision.message.strip()
    return message if message and not message.startswith(_DEFAULT_DENY_PREFIXES) else None


class EngineBackend(AgentBackend):
    """Drives one engine process over JSON-RPC; see the module docstring for what subclasses add."""

    engine: Engine

    def __init__(
        self,
        spec: BackendSpec,
        settings: EngineSettings,
        *,
        start_timeout: float = 60.0,
        interrupt_timeout: float = 10.0,
        stop_grace: float = 3.0,
    ) -> None:
        self.kind = self.engine.kind
        self._spec = spec
        self._settings = settings
        self._start_timeout = start_timeout
        self._interrupt_timeout = interrupt_timeout
        self._stop_grace = stop_grace
        self._log = _AgentLog(log, {"agent_id": spec.agent_id})
        self._events = EventChannel()
        self._peer: RpcPeer | None = None
        self._starting = False
        self._session_id: str | None = spec.session_id if spec.resume else None
        self._version: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._text: list[str] = []
        self._problems = 0
        self._unknown_kinds: set[str] = set()
        self.turn_started_at: float | None = None

    # --- AgentBackend

    @property
    def running(self) -> bool:
        return self._peer is not None and self._peer.running

    @property
    def pid(self) -> int | None:
        return self._peer.pid if self._peer is not None else None

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def engine_name(self) -> str:
        return self.engine.label

    @property
    def engine_version(self) -> str | None:
        return self._version

    async def start(self) -> None:
        if self.running:
            return
        label, sandbox = self.engine.label, self._spec.sandbox
        binary = await asyncio.to_thread(locate_engine, self.engine, self._settings.path)
        launch = sandbox.launch(self._spec.dirs)
        if launch.sandboxed and not sandbox.network:
            # The relay of a network-less sandbox carries the permission endpoint only: no model API.
            raise BackendError(f"{label} cannot reach its model's API: agents.sandbox.network is false, "
                               "so agents have no network (set it to true to use this engine)")
        if launch.sandboxed:
            # Inside, the engine's npm tree shows, not a symlink to it (~/.local/bin/codex).
            binary = await asyncio.to_thread(binary.resolve)
        home = self.engine_home()
        extra_env = await asyncio.to_thread(self._set_up_home, home)
        env = sandbox.environment(_isolated_dirs(home), extra_env, self._settings.env, self._spec.env,
                                  own_variables=self._credential_variables())
        argv = [str(binary), *self._argv(), *self._settings.extra_args]
        try:
            binds = await asyncio.to_thread(runtime_binds, sandbox, binary, env.get("PATH")) if launch.sandboxed else []
            await launch.prepare(argv, env=env, cwd=self._spec.cwd, binds=binds)
        except (BackendError, OSError) as exc:
            await launch.release()
            raise BackendError(f"cannot start {label} in {self._spec.cwd}: {exc}") from exc
        # Credentials the engine may print on stderr (a "key rejected" error) stay out of the chat.
        secrets = tuple(value for name, value in env.items()
                        if len(value) >= 16 and any(word in name.upper() for word in ("KEY", "TOKEN", "SECRET")))
        peer = RpcPeer(
            label,
            argv,
            launch=launch,
            on_request=self._on_request,
            on_notification=self._dispatch_notification,
            on_problem=self._problem,
            on_exit=lambda exit: self._on_exit(peer, exit),
            logger=self._log,
            secrets=secrets,
            stop_grace=self._stop_grace,
        )
        self._peer = peer
        self._starting = True
        self._problems = 0
        self._events.reopen()
        try:
            await peer.start()
            async with asyncio.timeout(self._start_timeout):
                await self._handshake(peer)
        except (BackendError, TimeoutError) as exc:
            # A child dying at start closes its pipes just before its exit is known: give it a moment,
            # so that the owner reads its exit code and last words rather than "not running".
            if not await peer.exits_within(2.0):
                await peer.stop()
            self._peer = None
            raise BackendError(self._start_failure(peer, exc)) from None
        finally:
            self._starting = False
        assert self._session_id is not None
        self._emit(SessionStarted(session_id=self._session_id, cwd=str(self._spec.cwd), model=self._settings.model))

    async def send(self, text: str) -> None:
        peer = self._require_peer()
        self._text.clear()
        self.turn_started_at = time.monotonic()
        await self._start_turn(peer, text)

    async def stop(self) -> None:
        peer = self._peer
        for task in list(self._tasks):
            task.cancel()
        if peer is not None:
            await peer.stop()
            await peer.wait_exited()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._events.close()

    def events(self) -> AsyncIterator[AgentEvent]:
        return self._events.stream()

    # --- for subclasses

    def engine_home(self) -> Path:
        """The engine's HOME, holding its generated configuration and its sessions: the agent's own home
        (the one its sandbox shows), or, for a backend without AgentDirs, ``<state_dir>/<engine>/home``.
        Never under /tmp for Codex (its own sandbox hides /tmp)."""
        if self._spec.dirs is not None:
            return self._spec.dirs.home
        base = self._spec.state_dir or state_home() / "agents" / self._spec.agent_id
        return base / self.engine.kind / "home"

    @abc.abstractmethod
    def _argv(self) -> list[str]:
        """The command line after the executable."""

    @abc.abstractmethod
    def _credential_variables(self) -> tuple[str, ...]:
        """The variables of the service's environment holding the engine's credentials: the only ones
        it gets beyond the common allow-list (more through ``agents.<engine>.env``)."""

    @abc.abstractmethod
    def _prepare(self, home: Path) -> dict[str, str]:
        """Write the engine's generated configuration under its ``home`` (runs in a thread); its environment."""

    def _legacy_layout(self) -> dict[str, str]:
        """Where an agent's engine kept its state before it moved into the agent's home:
        ``<agent>/<engine>/<old>`` → ``home/<new>`` ("" for the home itself)."""
        return {"home": ""}

    def _set_up_home(self, home: Path) -> dict[str, str]:
        """Blocking: the engine's home, with an older layout's state moved in, and its configuration."""
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._spec.dirs is not None:
            legacy = self._spec.dirs.root / self.engine.kind
            if legacy.is_dir():
                adopt_legacy_state(legacy, home, self._legacy_layout())
                self._log.info("moved %s's sessions and configuration from %s into the agent's home %s", self.engine.label, legacy, home)
        return self._prepare(home)

    @abc.abstractmethod
    async def _handshake(self, peer: RpcPeer) -> None:
        """Initialize, then start or resume a session; sets _session_id and _version."""

    @abc.abstractmethod
    async def _start_turn(self, peer: RpcPeer, text: str) -> None:
        """Send one user message; the turn's end comes as a TurnResult event."""

    @abc.abstractmethod
    def _on_notification(self, message: RpcMessage) -> None: ...

    @abc.abstractmethod
    async def _on_engine_request(self, peer: RpcPeer, message: RpcMessage) -> bool:
        """Answer a request of the engine; False if its method is unknown (then it gets an error answer)."""

    def _require_peer(self) -> RpcPeer:
        peer = self._peer
        if peer is None or not peer.running:
            raise BackendError(f"{self.engine.label} is not running")
        return peer

    def _emit(self, event: AgentEvent) -> None:
        self._events.emit(event)

    def _notice(self, message: str) -> None:
        self._emit(BackendNotice(message))

    def _add_text(self, text: str) -> None:
        self._text.append(text)

    def _flush_text(self) -> None:
        """Streamed text goes out as one message at each break (a tool, a prompt, the turn's end)."""
        text = "".join(self._text)
        self._text.clear()
        if text.strip():
            self._emit(AssistantText(text))

    def _turn_duration_ms(self) -> int:
        started, self.turn_started_at = self.turn_started_at, None
        return int((time.monotonic() - started) * 1000) if started is not None else 0

    async def _ask(self, tool_name: str, tool_input: Mapping[str, Any], tool_use_id: str | None) -> Decision:
        """The owner's decision; without an asker (a bare backend) everything is declined."""
        asker = self._spec.permissions
        if asker is None:
            self._log.warning("no permission asker: %s declined", tool_name)
            return Decision.deny("agentchat has no way to ask the owner.", DecidedBy.SHUTDOWN)
        return await asker.ask(tool_name, tool_input, tool_use_id)

    def _unknown(self, kind: str, reason: str) -> None:
        # Logged once per kind and process at info, then at debug: a new message type in an engine
        # release must neither flood the log nor stop the agent.
        if kind in self._unknown_kinds:
            self._log.debug("ignored %s", reason)
            return
        self._unknown_kinds.add(kind)
        self._log.info("ignored %s (further ones only at debug level)", reason)

    # --- internals

    def _dispatch_notification(self, message: RpcMessage) -> None:
        try:
            self._on_notification(message)
        except Exception:  # a parser bug of ours must not kill the engine's event stream
            self._log.exception("handling %s from %s failed", message.method, self.engine.label)

    def _on_request(self, message: RpcMessage) -> None:
        peer = self._peer
        if peer is None:
            return
        task = asyncio.get_running_loop().create_task(self._answer_request(peer, message), name=f"{self.kind}-request-{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _answer_request(self, peer: RpcPeer, message: RpcMessage) -> None:
        assert message.id is not None and message.method is not None
        try:
            known = await self._on_engine_request(peer, message)
        except BackendError as exc:
            self._log.info("answering %s: %s", message.method, exc)  # the engine ended meanwhile
            return
        if not known:
            self._unknown(f"request {message.method}", f"unknown request {message.method!r} from {self.engine.label}")
            try:
                peer.respond_error(message.id, METHOD_NOT_FOUND, f"agentchat does not handle {message.method}")
            except BackendError:
                pass

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("task %s failed", task.get_name(), exc_info=task.exception())

    def _problem(self, message: str) -> None:
        self._log.warning("%s", message)
        self._problems += 1
        if self._problems <= MAX_REPORTED_PROBLEMS:
            self._notice(message)
        if self._problems == MAX_REPORTED_PROBLEMS:
            self._notice(f"further unreadable lines from {self.engine.label} are only logged")

    def _on_exit(self, peer: RpcPeer, exit: ChildExit) -> None:
        if self._peer is peer:
            self._peer = None
        if self._starting:
            return  # start() reports it as its error
        self._flush_text()
        self._emit(ProcessExited(exit_code=exit.exit_code, stderr_tail=exit.stderr_tail, expected=exit.expected))

    def _start_failure(self, peer: RpcPeer, exc: BaseException) -> str:
        exit = peer.exit
        lines = [line.strip() for line in (exit.stderr_tail if exit else peer.stderr.text()).splitlines() if line.strip()]
        why = f": {lines[-1][:300]}" if lines else ""
        if exit is not None and not exit.expected:
            return f"{self.engine.label} exited at start with code {exit.exit_code}{why}"
        if isinstance(exc, TimeoutError):
            return f"{self.engine.label} did not start within {self._start_timeout:g} s{why}"
        return f"{self.engine.label} did not start: {exc}"


def adopt_legacy_state(legacy: Path, home: Path, layout: Mapping[str, str]) -> None:
    """Move ``legacy/<old>`` to ``home/<new>`` for each entry of ``layout`` (an empty ``new``: the entries
    of ``legacy/<old>`` into ``home`` itself), never over something already there; then ``legacy`` goes.
    Blocking. Renames within one state directory: nothing is copied."""
    for old, new in layout.items():
        source = legacy / old
        if not source.is_dir():
            continue
        moves = [(entry, home / entry.name) for entry in source.iterdir()] if not new else [(source, home / new)]
        for entry, target in moves:
            if not target.exists() and not target.is_symlink():
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                entry.rename(target)
    shutil.rmtree(legacy, ignore_errors=True)


def _isolated_dirs(home: Path) -> dict[str, str]:
    """HOME and the XDG directories of one agent's engine: nothing of the service user's own setup leaks in."""
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
