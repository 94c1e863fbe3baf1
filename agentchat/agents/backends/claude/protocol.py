"""Claude Code's stream-json wire format: line framing, and every stdout line parsed once into a model.

The models follow /work/shared/reference/claude-stream-json.md §3–§4 (CLI 2.1.330). They are
tolerant on purpose: unknown fields are kept in ``model_extra``, unknown event types and content
blocks become ``UnknownEvent`` / ``UnknownBlock``, and a line that is not a JSON object becomes a
``DecodeProblem``. ``decode_line`` never raises, so one odd line can never take an agent down.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)

log = logging.getLogger(__name__)

# The biggest line we hold in memory. Far above anything the CLI prints (a 10 MB tool result is
# fine); it only bounds the damage of a child that never prints a newline.
MAX_LINE_BYTES = 256 * 1024 * 1024


# --- framing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OversizedLine:
    """A line longer than the splitter's limit; its bytes were dropped."""

    length: int


class LineSplitter:
    """Splits a byte stream into lines without a per-line limit (StreamReader's is 64 KiB).

    Scanning resumes where the last chunk ended, so a 10 MB line fed in 64 KiB chunks costs O(n).
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._scanned = 0
        self._max_line = max_line
        # Bytes of an oversized line dropped so far; the line is reported when its newline comes.
        self._discarding: int | None = None

    def feed(self, data: bytes) -> list[bytes | OversizedLine]:
        lines: list[bytes | OversizedLine] = []
        if self._discarding is not None:
            newline = data.find(b"\n")
            if newline < 0:
                self._discarding += len(data)
                return lines
            lines.append(OversizedLine(self._discarding + newline))
            self._discarding = None
            data = data[newline + 1 :]
        self._buffer += data
        start = 0
        while True:
            newline = self._buffer.find(b"\n", max(start, self._scanned))
            if newline < 0:
                break
            lines.append(bytes(self._buffer[start:newline]))
            start = newline + 1
            self._scanned = start
        if start:
            del self._buffer[:start]
        self._scanned = len(self._buffer)
        if len(self._buffer) > self._max_line:
            self._discarding = len(self._buffer)
            self._buffer.clear()
            self._scanned = 0
        return lines

    def finish(self) -> list[bytes | OversizedLine]:
        """What is left at EOF: a last line without its newline, if any."""
        rest: list[bytes | OversizedLine] = []
        if self._discarding is not None:
            rest.append(OversizedLine(self._discarding))
        elif self._buffer:
            rest.append(bytes(self._buffer))
        self._buffer.clear()
        self._scanned = 0
        self._discarding = None
        return rest

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held."""
        return len(self._buffer)


# --- content blocks --------------------------------------------------------------------------------


class Wire(BaseModel):
    """Base of every stdout model: extra fields allowed (the CLI adds some in most releases)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _or_default(default: Callable[[], Any]) -> WrapValidator:
    """A field that falls back to its default when the CLI sends an unexpected shape for it.

    Only the fields an event cannot do without (``type``, ids) stay strict, so a changed
    secondary field (say ``usage`` becoming null) never turns a turn's result into an unknown event.
    """

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            log.debug("unexpected value %.80r, using the default", value)
            return default()

    return WrapValidator(validate)


# Type aliases: Lenient fields with their fallback.
OptStr = Annotated[str | None, _or_default(lambda: None)]
OptInt = Annotated[int | None, _or_default(lambda: None)]
OptFloat = Annotated[float | None, _or_default(lambda: None)]
Int0 = Annotated[int, _or_default(lambda: 0)]
Float0 = Annotated[float, _or_default(lambda: 0.0)]
Bool0 = Annotated[bool, _or_default(lambda: False)]
AnyDict = Annotated[dict[str, Any], _or_default(dict)]
DictList = Annotated[list[dict[str, Any]], _or_default(list)]
StrList = Annotated[list[str], _or_default(list)]


class TextBlock(Wire):
    type: Literal["text"]
    text: Annotated[str, _or_default(str)] = ""


class ThinkingBlock(Wire):
    type: Literal["thinking"]
    thinking: Annotated[str, _or_default(str)] = ""
    signature: OptStr = None


class ToolUseBlock(Wire):
    type: Literal["tool_use"]
    id: str
    name: str
    input: AnyDict = Field(default_factory=dict)


class ToolResultBlock(Wire):
    type: Literal["tool_result"]
    tool_use_id: str
    content: Annotated[str | list[dict[str, Any]] | None, _or_default(lambda: None)] = None
    is_error: Bool0 = False

    @property
    def text(self) -> str:
        """The result as text: a string as is, a list of blocks joined (non-text blocks named)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for block in self.content:
            if block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                parts.append(f"[{block.get('type', 'block')}]")
        return "\n".join(parts)


class UnknownBlock(Wire):
    """A content block of a type we do not know, or a known type with an unexpected shape."""

    type: str = ""


ContentBlock = TextBlock | ThinkingBlock | ToolUseBlock | ToolResultBlock | UnknownBlock

_BLOCK_TYPES: dict[str, type[Wire]] = {
    "text": TextBlock,
    "thinking": ThinkingBlock,
    "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock,
}


def _parse_blocks(value: Any) -> list[ContentBlock]:
    if isinstance(value, str):
        return [TextBlock(type="text", text=value)]
    if not isinstance(value, list):
        return []
    blocks: list[ContentBlock] = []
    for raw in value:
        if not isinstance(raw, dict):
            blocks.append(UnknownBlock(type=f"<{type(raw).__name__}>"))
            continue
        model = _BLOCK_TYPES.get(str(raw.get("type")))
        try:
            blocks.append(model.model_validate(raw) if model else UnknownBlock.model_validate(_typed(raw)))  # type: ignore[arg-type]
        except ValidationError:
            blocks.append(UnknownBlock.model_validate(_typed(raw)))
    return blocks


def _typed(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "type": str(raw.get("type", ""))}


class _Payload(Wire):
    content: list[ContentBlock] = Field(default_factory=list)

    @field_validator("content", mode="before")
    @classmethod
    def _blocks(cls, value: Any) -> list[ContentBlock]:
        return _parse_blocks(value)


class AssistantPayload(_Payload):
    id: OptStr = None
    model: OptStr = None


class UserPayload(_Payload):
    pass


# --- events ----------------------------------------------------------------------------------------


class McpServerStatus(Wire):
    name: str
    status: str


class SystemInit(Wire):
    """Printed at the start of every turn (not once per process)."""

    type: Literal["system"]
    subtype: Literal["init"]
    session_id: str
    cwd: OptStr = None
    model: OptStr = None
    tools: Annotated[list[Any], _or_default(list)] = Field(default_factory=list)
    mcp_servers: Annotated[list[McpServerStatus], _or_default(list)] = Field(default_factory=list)
    permission_mode: OptStr = Field(None, alias="permissionMode")
    claude_code_version: OptStr = None


class ApiRetry(Wire):
    type: Literal["system"]
    subtype: Literal["api_retry"]
    attempt: Int0 = 0
    max_retries: Int0 = 0
    retry_delay_ms: Float0 = 0
    error_status: OptInt = None
    error: OptStr = None


class SystemStatus(Wire):
    """``system/status``: a change of the session's state; ``permissionMode`` after a mode switch (ours, or
    the CLI's own: an approved plan leaves plan mode). Printed without --include-partial-messages too."""

    type: Literal["system"]
    subtype: Literal["status"]
    status: OptStr = None
    permission_mode: OptStr = Field(None, alias="permissionMode")


class SystemEvent(Wire):
    """Any other system subtype (status, thinking_tokens, compact_boundary …): informational."""

    type: Literal["system"]
    subtype: Annotated[str, _or_default(str)] = ""


class AssistantMessage(Wire):
    """One content block of an assistant API message (several lines share ``message.id``)."""

    type: Literal["assistant"]
    message: AssistantPayload
    session_id: OptStr = None
    parent_tool_use_id: OptStr = None
    # The CLI's own text for a failed API call ("API Error: 500 …"); the result repeats it.
    is_api_error_message: Bool0 = False


class UserMessage(Wire):
    """Tool results going back to the model, the CLI's "[Request interrupted…]" lines, replays."""

    type: Literal["user"]
    message: UserPayload
    session_id: OptStr = None
    parent_tool_use_id: OptStr = None
    is_replay: Bool0 = Field(False, alias="isReplay")


class ResultEvent(Wire):
    """The end of a turn. API errors come as subtype "success" with is_error true."""

    type: Literal["result"]
    subtype: Annotated[str, _or_default(lambda: "unknown")] = "success"
    # A result whose is_error is unreadable counts as an error: better a false alarm than a lost one.
    is_error: Annotated[bool, _or_default(lambda: True)] = False
    result: OptStr = None
    session_id: OptStr = None
    num_turns: Int0 = 0
    duration_ms: Int0 = 0
    duration_api_ms: Int0 = 0
    # Adds up over the whole process, not per turn.
    total_cost_usd: OptFloat = None
    usage: AnyDict = Field(default_factory=dict)
    errors: StrList = Field(default_factory=list)
    terminal_reason: OptStr = None
    api_error_status: OptInt = None
    permission_denials: DictList = Field(default_factory=list)


class ControlResponseBody(Wire):
    subtype: str
    request_id: str
    response: Annotated[dict[str, Any] | None, _or_default(lambda: None)] = None
    error: OptStr = None


class ControlResponse(Wire):
    type: Literal["control_response"]
    response: ControlResponseBody


class ControlRequest(Wire):
    """A request from the CLI to us (``can_use_tool`` in stdio permission mode): must be answered."""

    type: Literal["control_request"]
    request_id: str
    request: AnyDict = Field(default_factory=dict)


class StreamEvent(Wire):
    """A raw API SSE event (only with --include-partial-messages)."""

    type: Literal["stream_event"]
    event: AnyDict = Field(default_factory=dict)
    parent_tool_use_id: OptStr = None


@dataclass(frozen=True)
class UnknownEvent:
    """A JSON object we do not understand: an unknown type, or a known type with an unexpected shape."""

    type: str | None
    subtype: str | None
    reason: str
    data: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class DecodeProblem:
    """A line that is not a JSON object at all."""

    reason: str
    excerpt: str
    length: int


Event = (
    SystemInit
    | ApiRetry
    | SystemStatus
    | SystemEvent
    | AssistantMessage
    | UserMessage
    | ResultEvent
    | ControlResponse
    | ControlRequest
    | StreamEvent
    | UnknownEvent
)

_EVENT_TYPES: dict[str, type[Wire]] = {
    "assistant": AssistantMessage,
    "user": UserMessage,
    "result": ResultEvent,
    "control_response": ControlResponse,
    "control_request": ControlRequest,
    "stream_event": StreamEvent,
}

_SYSTEM_SUBTYPES: dict[str, type[Wire]] = {"init": SystemInit, "api_retry": ApiRetry, "status": SystemStatus}

EXCERPT_CHARS = 200


def decode_line(line: bytes | str) -> Event | DecodeProblem:
    """Parse one stdout line. Never raises: what cannot be understood is described, not thrown."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, (bytes, bytearray)) else line
    text = text.strip()
    if not text:
        return DecodeProblem("empty line", "", 0)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return DecodeProblem(f"not JSON ({_first_line(exc)})", _excerpt(text), len(text))
    if not isinstance(data, dict):
        return DecodeProblem(f"not a JSON object (a {type(data).__name__})", _excerpt(text), len(text))
    kind = data.get("type")
    subtype = data.get("subtype")
    kind_name = kind if isinstance(kind, str) else None
    subtype_name = subtype if isinstance(subtype, str) else None
    if kind_name == "system":
        model: type[Wire] | None = _SYSTEM_SUBTYPES.get(subtype_name or "", SystemEvent)
    else:
        model = _EVENT_TYPES.get(kind_name or "")
    if model is None:
        return UnknownEvent(kind_name, subtype_name, f"unknown event type {kind!r}", data)
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except (ValidationError, RecursionError) as exc:
        return UnknownEvent(kind_name, subtype_name, f"unexpected {kind_name} event: {_first_line(exc)}", data)


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"
    return lines[0] if lines else type(exc).__name__


# --- stdin ------------------------------------------------------------------------------------------


class _UserContent(BaseModel):
    role: Literal["user"] = "user"
    # A string, or content blocks (text and base64 images) as in the Messages API.
    content: str | list[dict[str, Any]]


class UserInput(BaseModel):
    """One user message on stdin; ``message.role`` is required (its absence kills the CLI)."""

    type: Literal["user"] = "user"
    message: _UserContent


class ControlRequestOut(BaseModel):
    type: Literal["control_request"] = "control_request"
    request_id: str
    request: dict[str, Any]


class ControlResponseOut(BaseModel):
    type: Literal["control_response"] = "control_response"
    response: dict[str, Any]


def _encode(model: BaseModel) -> bytes:
    # json.dumps with ensure_ascii: any str survives, lone surrogates included, as valid JSON.
    return (json.dumps(model.model_dump(mode="json"), ensure_ascii=True) + "\n").encode("ascii")


def encode_user_message(text: str, images: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """One user message; with ``images`` ((media type, bytes) each) a text block then one image block each."""
    if not images:
        return _encode(UserInput(message=_UserContent(content=text)))
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks += [
        {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                     "data": base64.b64encode(data).decode("ascii")}}
        for media_type, data in images
    ]
    return _encode(UserInput(message=_UserContent(content=blocks)))


def encode_interrupt(request_id: str) -> bytes:
    return _encode(ControlRequestOut(request_id=request_id, request={"subtype": "interrupt"}))


def encode_control_request(request_id: str, request: dict[str, Any]) -> bytes:
    """A control_request of ours: ``{"subtype": "set_permission_mode", "mode": …}``, ``set_model`` …"""
    return _encode(ControlRequestOut(request_id=request_id, request=request))


def encode_control_error(request_id: str, message: str) -> bytes:
    """Refuse a control_request from the CLI (we never ask it to send any)."""
    return _encode(ControlResponseOut(response={"subtype": "error", "request_id": request_id, "error": message}))
