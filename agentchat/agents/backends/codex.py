"""The Codex CLI backend: one ``codex app-server`` per agent, JSON-RPC on stdio (Codex 0.171.0).

``initialize`` → ``thread/start`` (or ``thread/resume`` of the agent's thread) → per message
``turn/start``; the turn streams ``item/*`` notifications and ends with ``turn/completed``. Codex asks
through server requests ``item/commandExecution/requestApproval`` and ``item/fileChange/requestApproval``
(answered ``accept`` / ``acceptForSession`` / ``decline`` / ``cancel``), relayed to the owner as the same
prompts as Claude Code's. A decline carries no message, so the owner's reason goes to the model with
``turn/steer`` (input added to the running turn) just before the decline: the model reads it in its next
request of the same turn. ``codex app-server generate-ts`` prints the whole schema.

Codex asks only when its sandbox would block: with ``sandbox = "read-only"`` (our default) every change
asks. Its configuration is generated in the agent's own ``CODEX_HOME`` (``~/.codex`` in the agent's home;
never under /tmp: its Linux sandbox, bubblewrap, hides /tmp and every sandboxed command would fail).
That sandbox runs inside the agent's own (bubblewrap within bubblewrap: a user namespace in a user
namespace); where a fresh /proc cannot be mounted in there, Codex goes on without one (its ``no-proc``
mode), still confining every command.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentchat.agents.backends.base import BackendSpec, ToolResult, ToolUse, TurnResult
from agentchat.agents.backends.engine_backend import EngineBackend, owners_reason
from agentchat.agents.backends.engines import CODEX
from agentchat.agents.backends.jsonrpc import RpcError, RpcMessage, RpcPeer
from agentchat.config import CodexSettings
from agentchat.errors import BackendError
from agentchat.permissions.requests import Decision

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PROVIDER = "agentchat"
APPROVAL_POLICY = "on-request"  # "untrusted" is refused by 0.171.0 (recipes §6)


# --- the wire, as far as we read it (extra fields are kept, unknown ones ignored) -----------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Thread(_Wire):
    id: str


class ThreadResult(_Wire):
    thread: _Thread


class TurnError(_Wire):
    message: str = ""


class Turn(_Wire):
    id: str
    status: str = "completed"  # completed | interrupted | failed | inProgress
    error: TurnError | None = None
    duration_ms: int | None = Field(None, alias="durationMs")


class TurnResponse(_Wire):
    turn: Turn


class TurnCompleted(_Wire):
    thread_id: str = Field("", alias="threadId")
    turn: Turn


class Item(_Wire):
    """A thread item: agentMessage, commandExecution, fileChange, mcpToolCall, webSearch, …"""

    type: str
    id: str = ""


class ItemNotification(_Wire):
    item: Item
    turn_id: str = Field("", alias="turnId")


class AgentMessage(_Wire):
    text: str = ""


class FileUpdate(_Wire):
    path: str
    kind: Annotated[dict[str, Any], Field(default_factory=dict)]
    diff: str = ""

    @property
    def change(self) -> str:
        return str(self.kind.get("type", "update"))


class CommandExecution(_Wire):
    command: str = ""
    command_actions: list[dict[str, Any]] = Field(default_factory=list, alias="commandActions")
    status: str = ""
    exit_code: int | None = Field(None, alias="exitCode")
    aggregated_output: str | None = Field(None, alias="aggregatedOutput")


class FileChange(_Wire):
    changes: list[FileUpdate] = Field(default_factory=list)
    status: str = ""


class McpToolCall(_Wire):
    server: str = ""
    tool: str = ""
    arguments: Any = None
    status: str = ""
    error: Any = None


class Delta(_Wire):
    item_id: str = Field("", alias="itemId")
    delta: str = ""


class ErrorNotification(_Wire):
    error: TurnError
    will_retry: bool = Field(False, alias="willRetry")


class CommandApproval(_Wire):
    item_id: str = Field(alias="itemId")
    turn_id: str = Field("", alias="turnId")
    command: str | None = None
    command_actions: list[dict[str, Any]] | None = Field(None, alias="commandActions")
    reason: str | None = None


class FileChangeApproval(_Wire):
    item_id: str = Field(alias="itemId")
    turn_id: str = Field("", alias="turnId")
    reason: str | None = None
    grant_root: str | None = Field(None, alias="grantRoot")


# Notifications that need nothing from us (status, telemetry, deltas of output we show at the end).
_IGNORED = frozenset({
    "thread/started", "thread/status/changed", "thread/name/updated", "thread/settings/updated",
    "account/rateLimits/updated", "account/updated", "remoteControl/status/changed", "serverRequest/resolved",
    "item/commandExecution/outputDelta", "item/commandExecution/terminalInteraction", "item/fileChange/outputDelta",
    "item/fileChange/patchUpdated", "turn/diff/updated", "turn/plan/updated", "item/plan/delta",
    "item/reasoning/summaryTextDelta", "item/reasoning/summaryPartAdded", "item/reasoning/textDelta",
    "mcpServer/startupStatus/updated", "skills/changed", "app/list/updated", "thread/compacted",
    "rawResponseItem/completed", "rawResponse/completed", "item/mcpToolCall/progress", "turn/moderationMetadata",
})
_LOGGED = frozenset({"warning", "configWarning", "deprecationNotice", "guardianWarning", "model/rerouted"})


def command_text(command: str, actions: list[dict[str, Any]] | None = None) -> str:
    """What the command does, without Codex's ``/bin/bash -lc '…'`` wrapper."""
    if actions and len(actions) == 1 and isinstance(actions[0].get("command"), str):
        return str(actions[0]["command"])
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) == 3 and words[0].endswith(("sh", "bash", "zsh")) and words[1] in ("-c", "-lc"):
        return words[2]
    return command


def file_change_tool(changes: list[FileUpdate]) -> tuple[str, dict[str, Any]]:
    """A patch as the tool the chat knows how to show: Write (a new file), Edit (a diff), or the raw changes."""
    if len(changes) == 1:
        change = changes[0]
        if change.change == "add":
            return "Write", {"file_path": change.path, "content": change.diff}
        if change.change == "update":
            return "Edit", {"file_path": change.path, "diff": change.diff}
    return "apply_patch", {"changes": [{"path": c.path, "kind": c.change, "diff": c.diff} for c in changes]}


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


class CodexBackend(EngineBackend):
    """Codex CLI through ``codex app-server``."""

    engine = CODEX

    def __init__(self, spec: BackendSpec, settings: CodexSettings, **timeouts: float) -> None:
        super().__init__(spec, settings, **timeouts)
        self._codex = settings
        self._turn_id: str | None = None
        self._items: dict[str, Item] = {}
        self._model_calls = 0
        self._usage: dict[str, Any] = {}
        self._last_error: str | None = None

    def _argv(self) -> list[str]:
        return ["app-server"]

    def _credential_variables(self) -> tuple[str, ...]:
        return (self._codex.env_key,)

    def _legacy_layout(self) -> dict[str, str]:
        return {**super()._legacy_layout(), "codex-home": ".codex"}

    def _prepare(self, home: Path) -> dict[str, str]:
        codex_home = home / ".codex"
        codex_home.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings = self._codex
        lines = []
        if settings.model:
            lines.append(f"model = {_toml(settings.model)}")
        lines += [
            f"model_provider = {_toml(PROVIDER)}",
            f"approval_policy = {_toml(APPROVAL_POLICY)}",
            f"sandbox_mode = {_toml(settings.sandbox)}",
            "",
            f"[model_providers.{PROVIDER}]",
            f"name = {_toml(PROVIDER)}",
            f"base_url = {_toml(settings.base_url or DEFAULT_BASE_URL)}",
            'wire_api = "responses"',
            f"env_key = {_toml(settings.env_key)}",
        ]
        (codex_home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if str(codex_home).startswith("/tmp/"):
            self._log.warning("CODEX_HOME %s is under /tmp: Codex's sandboxed commands will fail there", codex_home)
        return {"CODEX_HOME": str(codex_home)}

    def _thread_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"cwd": str(self._spec.cwd), "approvalPolicy": APPROVAL_POLICY, "sandbox": self._codex.sandbox}
        if self._codex.model:
            params["model"] = self._codex.model
        return params

    async def _handshake(self, peer: RpcPeer) -> None:
        init = await peer.request("initialize", {"clientInfo": {"name": "agentchat", "title": "agentchat", "version": "0.1"}, "capabilities": None})
        user_agent = str(init.get("userAgent", "")) if isinstance(init, dict) else ""
        # "agentchat/0.171.0 (Debian 12; x86_64) …": the originator is ours, the version Codex's.
        self._version = user_agent.split(" ", 1)[0].partition("/")[2] or None
        peer.notify("initialized", {})
        if self._session_id:
            try:
                result = ThreadResult.model_validate(
                    await peer.request("thread/resume", {"threadId": self._session_id, **self._thread_params()})
                )
            except (RpcError, ValidationError) as exc:
                self._notice(f"Codex could not resume the session ({exc}); starting a new one")
            else:
                self._session_id = result.thread.id
                return
        result = ThreadResult.model_validate(await peer.request("thread/start", self._thread_params()))
        self._session_id = result.thread.id

    async def _start_turn(self, peer: RpcPeer, text: str) -> None:
        self._model_calls = 0
        self._usage = {}
        self._last_error = None
        self._items.clear()
        params = {"threadId": self._session_id, "input": [{"type": "text", "text": text, "text_elements": []}]}
        try:
            response = TurnResponse.model_validate(await peer.request("turn/start", params))
        except ValidationError as exc:
            raise BackendError(f"Codex answered turn/start unexpectedly: {exc.errors()[0]['msg']}") from None
        self._turn_id = response.turn.id

    async def interrupt(self) -> None:
        peer, turn_id = self._peer, self._turn_id
        if peer is None or not peer.running or turn_id is None:
            return
        for task in list(self._tasks):
            task.cancel()  # pending prompts are withdrawn: Codex resolves their requests itself
        try:
            await peer.request("turn/interrupt", {"threadId": self._session_id, "turnId": turn_id}, timeout=self._interrupt_timeout)
        except RpcError as exc:
            self._log.info("interrupt: %s", exc)  # the turn ended meanwhile

    # --- notifications

    def _on_notification(self, message: RpcMessage) -> None:
        method = message.method or ""
        params = message.params if isinstance(message.params, dict) else {}
        if method == "item/agentMessage/delta":
            self._add_text(Delta.model_validate(params).delta)
        elif method == "item/started":
            self._item_started(ItemNotification.model_validate(params).item)
        elif method == "item/completed":
            self._item_completed(ItemNotification.model_validate(params).item)
        elif method == "turn/started":
            self._turn_id = TurnResponse.model_validate(params).turn.id
        elif method == "turn/completed":
            self._turn_completed(TurnCompleted.model_validate(params).turn)
        elif method == "thread/tokenUsage/updated":
            self._model_calls += 1
            usage = params.get("tokenUsage")
            self._usage = dict(usage.get("total") or {}) if isinstance(usage, dict) else {}
        elif method == "error":
            error = ErrorNotification.model_validate(params)
            if error.will_retry:
                self._notice(f"API error, retrying: {error.error.message}")
            else:
                self._last_error = error.error.message
        elif method in _LOGGED:
            self._log.info("Codex %s: %s", method, params.get("message") or params.get("summary") or params)
        elif method not in _IGNORED:
            self._unknown(method, f"unknown notification {method!r} from Codex")

    def _item_started(self, item: Item) -> None:
        self._items[item.id] = item
        if item.type == "commandExecution":
            self._flush_text()
            command = CommandExecution.model_validate(item.model_dump(by_alias=True))
            self._emit(ToolUse(item.id, "Bash", {"command": command_text(command.command, command.command_actions)}))
        elif item.type == "fileChange":
            self._flush_text()
            for number, change in enumerate(FileChange.model_validate(item.model_dump(by_alias=True)).changes):
                name = "Write" if change.change == "add" else "Edit"
                self._emit(ToolUse(f"{item.id}:{number}", name, {"file_path": change.path}))
        elif item.type == "mcpToolCall":
            self._flush_text()
            call = McpToolCall.model_validate(item.model_dump(by_alias=True))
            arguments = call.arguments if isinstance(call.arguments, dict) else {"arguments": call.arguments}
            self._emit(ToolUse(item.id, f"{call.server}.{call.tool}", arguments))
        elif item.type == "webSearch":
            self._flush_text()
            self._emit(ToolUse(item.id, "WebSearch", {"query": str(getattr(item, "query", "") or "")}))

    def _item_completed(self, item: Item) -> None:
        data = item.model_dump(by_alias=True)
        if item.type == "agentMessage":
            # The completed item holds the whole text: it wins over the deltas seen so far.
            self._text[:] = [AgentMessage.model_validate(data).text]
            self._flush_text()
        elif item.type == "commandExecution":
            command = CommandExecution.model_validate(data)
            output = (command.aggregated_output or "").strip()
            if command.status == "declined":
                self._emit(ToolResult(item.id, "The user denied permission to run this command.", is_error=True))
            elif command.status == "failed" or (command.exit_code not in (0, None)):
                self._emit(ToolResult(item.id, output or f"exit code {command.exit_code}", is_error=True))
            else:
                self._emit(ToolResult(item.id, output))
        elif item.type == "fileChange":
            change = FileChange.model_validate(data)
            if change.status in ("declined", "failed"):
                what = "The user denied permission to change the files." if change.status == "declined" else "The patch failed."
                self._emit(ToolResult(f"{item.id}:0", what, is_error=True))
        elif item.type == "mcpToolCall":
            call = McpToolCall.model_validate(data)
            if call.error:
                self._emit(ToolResult(item.id, str(call.error), is_error=True))

    def _turn_completed(self, turn: Turn) -> None:
        self._flush_text()
        measured = self._turn_duration_ms()
        self._turn_id = None
        for task in list(self._tasks):
            task.cancel()  # a prompt of a finished turn can no longer be answered
        duration = turn.duration_ms if turn.duration_ms is not None else measured
        common: dict[str, Any] = {"num_turns": max(self._model_calls, 1), "duration_ms": duration, "usage": self._usage}
        if turn.status == "interrupted":
            self._emit(TurnResult(is_error=True, subtype="error_during_execution", **common))
        elif turn.status == "failed":
            reason = (turn.error.message if turn.error else "") or self._last_error or "the turn failed"
            self._emit(TurnResult(is_error=True, subtype="success", text=reason, errors=(reason,), **common))
        else:
            self._emit(TurnResult(is_error=False, **common))

    # --- approvals

    async def _on_engine_request(self, peer: RpcPeer, message: RpcMessage) -> bool:
        assert message.id is not None
        params = message.params if isinstance(message.params, dict) else {}
        if message.method == "item/commandExecution/requestApproval":
            approval = CommandApproval.model_validate(params)
            item = self._items.get(approval.item_id)
            raw = approval.command or (str(getattr(item, "command", "")) if item is not None else "")
            tool_input: dict[str, Any] = {"command": command_text(raw, approval.command_actions)}
            if approval.reason:
                tool_input["description"] = approval.reason
            decision = await self._ask("Bash", tool_input, approval.item_id)
            turn_id = approval.turn_id
        elif message.method == "item/fileChange/requestApproval":
            file_approval = FileChangeApproval.model_validate(params)
            item = self._items.get(file_approval.item_id)
            changes = FileChange.model_validate(item.model_dump(by_alias=True)).changes if item is not None else []
            if changes:
                name, tool_input = file_change_tool(changes)
            else:
                name, tool_input = "apply_patch", {"reason": file_approval.reason, "grantRoot": file_approval.grant_root}
            decision = await self._ask(name, tool_input, file_approval.item_id)
            turn_id = file_approval.turn_id
        else:
            return False
        await self._send_reason(peer, decision, turn_id)
        peer.respond(message.id, {"decision": _codex_decision(decision)})
        return True

    async def _send_reason(self, peer: RpcPeer, decision: Decision, turn_id: str) -> None:
        reason = owners_reason(decision)
        if reason is None or decision.interrupt:
            return
        steer = {
            "threadId": self._session_id,
            "expectedTurnId": turn_id or self._turn_id,
            "input": [{"type": "text", "text": f"Permission denied: {reason}", "text_elements": []}],
        }
        try:
            await peer.request("turn/steer", steer, timeout=self._interrupt_timeout)
        except RpcError as exc:
            self._log.warning("the reason of a decline did not reach Codex: %s", exc)
            self._notice("Codex did not take the reason; it was only told no.")


def _codex_decision(decision: Decision) -> str:
    if decision.allowed:
        return "acceptForSession" if decision.always else "accept"
    return "cancel" if decision.interrupt else "decline"
