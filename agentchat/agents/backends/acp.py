"""The ACP (Agent Client Protocol) backend: Gemini CLI (``gemini --acp``, 0.61.0) and OpenCode
(``opencode acp``, 1.18.33), one long-lived agent process per agent, JSON-RPC on stdio.

``initialize`` → ``session/new`` (or ``session/load`` of the agent's session, when the agent says
``loadSession``) → per message a ``session/prompt`` request, answered with its ``stopReason`` when the
turn ends; meanwhile ``session/update`` notifications stream text and tool calls. The agent asks with a
``session/request_permission`` request whose options we pick by their ``kind`` (``allow_once``,
``allow_always``, ``reject_once``); ``session/cancel`` interrupts, and the pending requests are then
answered ``cancelled``. ACP's answer carries no message: a reason given with "no" is shown in the chat
but does not reach the model (Gemini tells the model the call was cancelled and goes on; OpenCode ends
the turn). OpenCode's own HTTP server mode would carry it (``POST /permission/{id}/reply`` with a
``message``); ACP was kept for one adapter serving both engines, with stop and resume in both.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentchat.agents.backends.base import BackendSpec, ToolResult, ToolUse, TurnResult
from agentchat.agents.backends.engine_backend import EngineBackend, owners_reason
from agentchat.agents.backends.engines import GEMINI, GEMINI_KEYS, OPENCODE, opencode_provider_keys
from agentchat.agents.backends.jsonrpc import RpcError, RpcMessage, RpcPeer
from agentchat.config import EngineSettings, OpencodeSettings
from agentchat.errors import BackendError
from agentchat.permissions.requests import Decision

PROTOCOL_VERSION = 1
# After session/load, updates still arriving are the replayed history: Gemini CLI 0.61.0 answers the
# load while it is still streaming the history (ACP wants the answer after it). The replay is over
# once no update came for this long (at most REPLAY_DRAIN_MAX after the answer).
REPLAY_QUIET = 0.25
REPLAY_DRAIN_MAX = 3.0


# --- the wire -----------------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class AgentInfo(_Wire):
    name: str = ""
    version: str | None = None


class AgentCapabilities(_Wire):
    load_session: bool = Field(False, alias="loadSession")


class InitializeResult(_Wire):
    protocol_version: int = Field(PROTOCOL_VERSION, alias="protocolVersion")
    agent_info: AgentInfo | None = Field(None, alias="agentInfo")
    agent_capabilities: AgentCapabilities = Field(default_factory=AgentCapabilities, alias="agentCapabilities")


class NewSessionResult(_Wire):
    session_id: str = Field(alias="sessionId")


class PromptResult(_Wire):
    stop_reason: str = Field("end_turn", alias="stopReason")
    usage: dict[str, Any] = Field(default_factory=dict)


class ToolCall(_Wire):
    """A tool call as announced (``tool_call``), updated (``tool_call_update``) or asked about."""

    tool_call_id: str = Field(alias="toolCallId")
    title: str | None = None
    kind: str | None = None
    status: str | None = None
    raw_input: dict[str, Any] | None = Field(None, alias="rawInput")
    content: list[dict[str, Any]] | None = None
    locations: list[dict[str, Any]] | None = None
    raw_output: Any = Field(None, alias="rawOutput")


class PermissionOption(_Wire):
    option_id: str = Field(alias="optionId")
    kind: str = ""
    name: str = ""


class PermissionRequest(_Wire):
    session_id: str = Field("", alias="sessionId")
    tool_call: ToolCall = Field(alias="toolCall")
    options: list[PermissionOption] = Field(default_factory=list)


# session/update kinds that need nothing from us.
_IGNORED_UPDATES = frozenset({
    "agent_thought_chunk", "user_message_chunk", "plan", "available_commands_update", "current_mode_update",
    "config_option_update", "session_info_update",
})
_STOP_REASONS = {
    "max_tokens": "the model reached its output limit",
    "max_turn_requests": "reached the maximum number of model requests",
    "refusal": "the model refused to go on",
}


def _merge(old: ToolCall | None, new: ToolCall) -> ToolCall:
    """What is known of a tool call after an update: the fields the update carries replace the old ones."""
    if old is None:
        return new
    update = {
        name: getattr(new, name)
        for name in ToolCall.model_fields
        if name != "tool_call_id" and getattr(new, name) not in (None, {}, [])
    }
    return old.model_copy(update=update)


def _path(call: ToolCall) -> str:
    raw = call.raw_input or {}
    for key in ("file_path", "filePath", "filepath", "path"):
        if isinstance(raw.get(key), str):
            return str(raw[key])
    for location in call.locations or []:
        if isinstance(location.get("path"), str):
            return str(location["path"])
    for item in call.content or []:
        if item.get("type") == "diff" and isinstance(item.get("path"), str):
            return str(item["path"])
    return ""


def _diff(call: ToolCall) -> dict[str, Any] | None:
    return next((item for item in call.content or [] if item.get("type") == "diff"), None)


def acp_tool(call: ToolCall, *, for_prompt: bool) -> tuple[str, dict[str, Any]]:
    """The tool call as a tool the chat knows how to show (Bash, Write, Edit, Read), else as it came."""
    raw = dict(call.raw_input or {})
    kind = call.kind or ""
    if kind == "execute":
        command = raw.get("command") if isinstance(raw.get("command"), str) else call.title or ""
        tool_input: dict[str, Any] = {"command": command}
        if isinstance(raw.get("description"), str):
            tool_input["description"] = raw["description"]
        return "Bash", tool_input
    path = _path(call)
    if kind == "edit" and path:
        diff = _diff(call)
        if not for_prompt:
            return ("Write" if diff is not None and not diff.get("oldText") else "Edit"), {"file_path": path}
        if diff is not None:
            old, new = str(diff.get("oldText") or ""), str(diff.get("newText") or "")
            if not old:
                return "Write", {"file_path": path, "content": new}
            return "Edit", {"file_path": path, "old_string": old, "new_string": new}
        if isinstance(raw.get("diff"), str):
            return "Edit", {"file_path": path, "diff": raw["diff"]}
        if isinstance(raw.get("content"), str):
            return "Write", {"file_path": path, "content": raw["content"]}
        return "Edit", {"file_path": path}
    if kind == "read" and path:
        return "Read", {"file_path": path}
    name = call.title or kind or "tool"
    if not raw:
        raw = {key: value for key, value in (("kind", call.kind), ("locations", call.locations)) if value}
    return name, raw


def _content_text(call: ToolCall) -> str:
    parts = []
    for item in call.content or []:
        inner = item.get("content")
        if item.get("type") == "content" and isinstance(inner, dict) and isinstance(inner.get("text"), str):
            parts.append(inner["text"])
    if parts:
        return "\n".join(parts)
    output = call.raw_output
    if isinstance(output, dict):
        return str(output.get("error") or output.get("output") or "")
    return "" if output is None else str(output)


class AcpBackend(EngineBackend):
    """An ACP agent; subclasses say which engine and how to configure it."""

    def __init__(self, spec: BackendSpec, settings: EngineSettings, **timeouts: float) -> None:
        super().__init__(spec, settings, **timeouts)
        self._loading = False
        self._replayed = asyncio.Event()  # set by each update ignored during a load
        self._prompt: asyncio.Task[None] | None = None
        self._calls: dict[str, ToolCall] = {}
        self._shown: set[str] = set()
        self._cost: float | None = None  # the session's cost so far, when the agent reports one
        self._cost_at_turn_start: float | None = None

    async def _handshake(self, peer: RpcPeer) -> None:
        init = InitializeResult.model_validate(
            await peer.request(
                "initialize",
                {
                    "protocolVersion": PROTOCOL_VERSION,
                    "clientCapabilities": {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False},
                    "clientInfo": {"name": "agentchat", "title": "agentchat", "version": "0.1"},
                },
            )
        )
        self._version = init.agent_info.version if init.agent_info else None
        session = {"cwd": str(self._spec.cwd), "mcpServers": []}
        if self._session_id and init.agent_capabilities.load_session:
            # The agent replays the history as session/update before answering: none of it is new.
            self._loading = True
            try:
                await peer.request("session/load", {"sessionId": self._session_id, **session})
                await self._drain_replay()
            except RpcError as exc:
                self._notice(f"{self.engine.label} could not resume the session ({exc}); starting a new one")
            else:
                return
            finally:
                self._loading = False
        elif self._session_id:
            self._notice(f"{self.engine.label} cannot resume sessions; starting a new one")
        try:
            self._session_id = NewSessionResult.model_validate(await peer.request("session/new", session)).session_id
        except ValidationError as exc:
            raise BackendError(f"{self.engine.label} answered session/new unexpectedly: {exc.errors()[0]['msg']}") from None

    async def _drain_replay(self) -> None:
        """Wait out the rest of a replayed history (see REPLAY_QUIET); nothing of it reaches the chat."""
        try:
            async with asyncio.timeout(REPLAY_DRAIN_MAX):
                while True:
                    self._replayed.clear()
                    await asyncio.wait_for(self._replayed.wait(), REPLAY_QUIET)
        except TimeoutError:
            pass  # quiet for REPLAY_QUIET (or the cap reached): the history is over

    async def _start_turn(self, peer: RpcPeer, text: str) -> None:
        self._calls.clear()
        self._shown.clear()
        self._cost_at_turn_start = self._cost
        params = {"sessionId": self._session_id, "prompt": [{"type": "text", "text": text}]}
        self._prompt = asyncio.get_running_loop().create_task(self._run_prompt(peer, params), name=f"{self.kind}-prompt")

    async def _run_prompt(self, peer: RpcPeer, params: dict[str, Any]) -> None:
        try:
            answer = await peer.request("session/prompt", params)
        except RpcError as exc:
            self._flush_text()
            message = exc.body.message or str(exc)
            self._emit(TurnResult(is_error=True, text=message, errors=(message,), duration_ms=self._turn_duration_ms()))
            return
        except BackendError:
            return  # the agent exited: ProcessExited tells the owner
        except Exception:  # a bug of ours must not leave the turn open forever
            self._log.exception("session/prompt failed")
            self._emit(TurnResult(is_error=True, errors=("internal error (see the service log)",), duration_ms=self._turn_duration_ms()))
            return
        self._flush_text()
        try:
            result = PromptResult.model_validate(answer if isinstance(answer, dict) else {})
        except ValidationError:
            result = PromptResult()
        self._emit(self._turn_result(result))

    def _turn_result(self, result: PromptResult) -> TurnResult:
        duration = self._turn_duration_ms()
        turn_cost = None
        if self._cost is not None and self._cost_at_turn_start is not None:
            turn_cost = max(0.0, self._cost - self._cost_at_turn_start)
        common: dict[str, Any] = {"duration_ms": duration, "usage": result.usage, "total_cost_usd": self._cost, "turn_cost_usd": turn_cost}
        if result.stop_reason == "cancelled":
            return TurnResult(is_error=True, subtype="error_during_execution", **common)
        if result.stop_reason in _STOP_REASONS:
            reason = _STOP_REASONS[result.stop_reason]
            subtype = "error_max_turns" if result.stop_reason == "max_turn_requests" else "success"
            return TurnResult(is_error=True, subtype=subtype, text=reason, errors=(reason,), **common)
        return TurnResult(is_error=False, **common)

    async def interrupt(self) -> None:
        peer = self._peer
        if peer is None or not peer.running or self._prompt is None or self._prompt.done():
            return
        peer.notify("session/cancel", {"sessionId": self._session_id})
        for task in list(self._tasks):
            task.cancel()  # each answers its request "cancelled", as ACP wants after a cancel
        try:
            await asyncio.wait_for(asyncio.shield(self._prompt), self._interrupt_timeout)
        except TimeoutError:
            raise BackendError(f"{self.engine.label} did not end the turn within {self._interrupt_timeout:g} s") from None

    async def stop(self) -> None:
        await super().stop()
        if self._prompt is not None and not self._prompt.done():
            self._prompt.cancel()
            await asyncio.gather(self._prompt, return_exceptions=True)

    # --- notifications

    def _on_notification(self, message: RpcMessage) -> None:
        if message.method != "session/update":
            self._unknown(str(message.method), f"unknown notification {message.method!r} from {self.engine.label}")
            return
        params = message.params if isinstance(message.params, dict) else {}
        raw_update = params.get("update")
        update: dict[str, Any] = raw_update if isinstance(raw_update, dict) else {}
        kind = str(update.get("sessionUpdate", ""))
        if self._loading:
            self._replayed.set()
            return
        if kind == "agent_message_chunk":
            content = update.get("content")
            if isinstance(content, dict) and isinstance(content.get("text"), str):
                self._add_text(content["text"])
        elif kind in ("tool_call", "tool_call_update"):
            self._tool_call(ToolCall.model_validate(update))
        elif kind == "usage_update":
            cost = update.get("cost")
            if isinstance(cost, dict) and cost.get("currency") == "USD" and isinstance(cost.get("amount"), (int, float)):
                self._cost = float(cost["amount"])
        elif kind not in _IGNORED_UPDATES:
            self._unknown(f"update {kind}", f"unknown session/update {kind!r} from {self.engine.label}")

    def _tool_call(self, update: ToolCall) -> None:
        call = _merge(self._calls.get(update.tool_call_id), update)
        self._calls[call.tool_call_id] = call
        if call.status in ("in_progress", "completed", "failed"):
            self._show(call)
        if call.status == "completed":
            self._emit(ToolResult(call.tool_call_id, _content_text(call)))
        elif call.status == "failed":
            self._emit(ToolResult(call.tool_call_id, _content_text(call) or "the tool failed", is_error=True))

    def _show(self, call: ToolCall) -> None:
        if call.tool_call_id in self._shown:
            return
        self._shown.add(call.tool_call_id)
        self._flush_text()
        name, tool_input = acp_tool(call, for_prompt=False)
        self._emit(ToolUse(call.tool_call_id, name, tool_input))

    # --- permission requests

    async def _on_engine_request(self, peer: RpcPeer, message: RpcMessage) -> bool:
        if message.method != "session/request_permission":
            return False
        assert message.id is not None
        request = PermissionRequest.model_validate(message.params if isinstance(message.params, dict) else {})
        known = self._calls.get(request.tool_call.tool_call_id)
        call = _merge(known, request.tool_call)
        self._show(call)
        name, tool_input = acp_tool(call, for_prompt=True)
        try:
            decision = await self._ask(name, tool_input, call.tool_call_id)
        except asyncio.CancelledError:
            if peer.running:
                peer.respond(message.id, {"outcome": {"outcome": "cancelled"}})
            raise
        peer.respond(message.id, {"outcome": self._outcome(decision, request.options)})
        if owners_reason(decision) is not None:
            self._notice(f"{self.engine.label}'s protocol (ACP) carries no reason: the model was only told no.")
        return True

    @staticmethod
    def _outcome(decision: Decision, options: list[PermissionOption]) -> dict[str, Any]:
        if decision.allowed:
            wanted = ("allow_always", "allow_once") if decision.always else ("allow_once", "allow_always")
        else:
            wanted = ("reject_once", "reject_always")
        for kind in wanted:
            option = next((o for o in options if o.kind == kind), None)
            if option is not None:
                return {"outcome": "selected", "optionId": option.option_id}
        return {"outcome": "cancelled"}  # no option fits: refusing is the safe side


class GeminiBackend(AcpBackend):
    """Gemini CLI: ``gemini --acp`` with API-key auth (``GEMINI_API_KEY``)."""

    engine = GEMINI

    def _argv(self) -> list[str]:
        return ["--acp", *(["--model", self._settings.model] if self._settings.model else [])]

    def _credential_variables(self) -> tuple[str, ...]:
        return GEMINI_KEYS  # the key of the auth type selected below

    def _prepare(self, home: Path) -> dict[str, str]:
        settings_dir = home / ".gemini"
        settings_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Without a selected auth type the CLI stops at "Invalid auth method selected" (recipes §6).
        settings = {"security": {"auth": {"selectedType": "gemini-api-key"}}, "privacy": {"usageStatisticsEnabled": False}}
        (settings_dir / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        env = {"GEMINI_CLI_TRUST_WORKSPACE": "true"}
        if self._settings.base_url:
            env["GOOGLE_GEMINI_BASE_URL"] = self._settings.base_url
        return env


class OpencodeBackend(AcpBackend):
    """OpenCode: ``opencode acp``, configured through OPENCODE_CONFIG_CONTENT to ask before edits and commands."""

    engine = OPENCODE

    def __init__(self, spec: BackendSpec, settings: OpencodeSettings, **timeouts: float) -> None:
        super().__init__(spec, settings, **timeouts)
        self._opencode = settings

    def _argv(self) -> list[str]:
        return ["acp"]

    def _credential_variables(self) -> tuple[str, ...]:
        return opencode_provider_keys(self._opencode.provider)

    def _prepare(self, home: Path) -> dict[str, str]:
        config: dict[str, Any] = {
            "$schema": "https://opencode.ai/config.json",
            "permission": {"edit": "ask", "bash": "ask", "webfetch": "ask"},
            "autoupdate": False,
            "share": "disabled",
        }
        if self._opencode.model:
            config["model"] = self._opencode.model
        if self._opencode.base_url:
            config["provider"] = {self._opencode.provider: {"options": {"baseURL": self._opencode.base_url}}}
        return {
            "OPENCODE_CONFIG_CONTENT": json.dumps(config),
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_SHARE": "1",
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
            "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        }
