"""The stream-json models, line framing and stdin encoding (agentchat.agents.backends.claude.protocol)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UnknownBlock,
    UnknownEvent,
    UserMessage,
    decode_line,
    encode_control_error,
    encode_interrupt,
    encode_user_message,
)

FIXTURES = Path(__file__).parents[2] / "fixtures"
RECORDED = ["text", "thinking", "tool_use", "tool_denied", "tool_denied_interrupt", "permission_interrupted", "interrupt", "api_error", "resume_unknown"]


def recorded_events(name: str) -> list[Any]:
    lines = (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [decode_line(line) for line in lines if '"__fake__"' not in line[:20]]


# --- recorded lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RECORDED)
def test_every_recorded_line_decodes_to_a_known_event(name: str) -> None:
    events = recorded_events(name)
    assert events
    for event in events:
        assert not isinstance(event, (DecodeProblem, UnknownEvent)), event
    assert isinstance(events[-1], ResultEvent), "a turn ends with its result"


def test_text_turn() -> None:
    init, assistant, result = recorded_events("text")
    assert isinstance(init, SystemInit) and init.model == "claude-opus-5-5" and init.permission_mode == "default"
    assert [server.status for server in init.mcp_servers] == ["connected"]
    assert init.claude_code_version == "2.1.330"
    assert isinstance(assistant, AssistantMessage)
    assert assistant.message.content == [TextBlock(type="text", text="MOCK_REPLY: hello there")]
    assert isinstance(result, ResultEvent)
    assert (result.subtype, result.is_error, result.result, result.num_turns) == ("success", False, "MOCK_REPLY: hello there", 1)
    assert result.total_cost_usd and result.total_cost_usd > 0 and result.usage["output_tokens"] > 0
    assert result.model_extra and "modelUsage" in result.model_extra, "unknown fields are kept, not refused"


def test_tool_use_turn() -> None:
    _, text, use, tool_result, final, result = recorded_events("tool_use")
    assert isinstance(final, AssistantMessage)
    assert isinstance(text, AssistantMessage) and isinstance(use, AssistantMessage)
    assert text.message.id == use.message.id, "blocks of one API message share its id"
    [block] = use.message.content
    assert isinstance(block, ToolUseBlock) and block.name == "Write" and block.input["content"] == "hello from the mock\n"
    assert isinstance(tool_result, UserMessage)
    [answer] = tool_result.message.content
    assert isinstance(answer, ToolResultBlock) and answer.tool_use_id == block.id and not answer.is_error
    assert answer.text.startswith("File created successfully")
    assert isinstance(result, ResultEvent) and result.num_turns == 2


def test_denied_tool() -> None:
    events = recorded_events("tool_denied")
    [denied] = [b for e in events if isinstance(e, UserMessage) for b in e.message.content if isinstance(b, ToolResultBlock)]
    assert denied.is_error and denied.text == "denied by the user"
    result = events[-1]
    assert isinstance(result, ResultEvent) and not result.is_error
    assert [d["tool_name"] for d in result.permission_denials] == ["Write"]


@pytest.mark.parametrize(("name", "reason"), [("interrupt", "aborted_streaming"), ("tool_denied_interrupt", "aborted_tools"), ("permission_interrupted", "aborted_tools")])
def test_interrupted_turns(name: str, reason: str) -> None:
    result = recorded_events(name)[-1]
    assert isinstance(result, ResultEvent)
    assert (result.subtype, result.is_error, result.terminal_reason, result.result) == ("error_during_execution", True, reason, None)
    assert result.errors


def test_api_error_is_success_with_is_error() -> None:
    events = recorded_events("api_error")
    retries = [e for e in events if isinstance(e, ApiRetry)]
    assert [(r.attempt, r.max_retries, r.error_status) for r in retries] == [(1, 2, 500), (2, 2, 500)]
    synthetic = next(e for e in events if isinstance(e, AssistantMessage))
    assert synthetic.is_api_error_message
    result = events[-1]
    assert isinstance(result, ResultEvent)
    assert (result.subtype, result.is_error, result.api_error_status, result.terminal_reason) == ("success", True, 500, "api_error")


def test_thinking_block_and_thinking_tokens() -> None:
    events = recorded_events("thinking")
    assert any(isinstance(e, SystemEvent) and e.subtype == "thinking_tokens" for e in events)
    blocks = [b for e in events if isinstance(e, AssistantMessage) for b in e.message.content]
    assert isinstance(blocks[0], ThinkingBlock) and blocks[0].thinking == "Let me consider the request."


def test_resume_unknown_result() -> None:
    [result] = recorded_events("resume_unknown")
    assert isinstance(result, ResultEvent) and result.is_error and result.num_turns == 0
    assert result.errors[0].startswith("No conversation found with session ID")


def test_control_response_and_request() -> None:
    response = decode_line('{"type":"control_response","response":{"subtype":"success","request_id":"req_int_1","response":{"still_queued":[]}}}')
    assert isinstance(response, ControlResponse) and response.response.request_id == "req_int_1"
    # 2.1.197 leaves out the inner response.
    old = decode_line('{"type":"control_response","response":{"subtype":"success","request_id":"r"}}')
    assert isinstance(old, ControlResponse) and old.response.response is None
    request = decode_line('{"type":"control_request","request_id":"x","request":{"subtype":"can_use_tool"}}')
    assert isinstance(request, ControlRequest) and request.request["subtype"] == "can_use_tool"


def test_stream_event() -> None:
    event = decode_line('{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}},"session_id":"s"}')
    assert isinstance(event, StreamEvent) and event.event["delta"]["text"] == "x"


# --- tolerance --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty line"),
        ("   ", "empty line"),
        ("not json", "not JSON"),
        ('{"type": "assistant", "message": {"content": [{"type": "te', "not JSON"),
        ("[1, 2]", "not a JSON object (a list)"),
        ("42", "not a JSON object (a int)"),
        ('"text"', "not a JSON object (a str)"),
        ("null", "not a JSON object (a NoneType)"),
        ("[" * 100_000, "not JSON"),
        ("1" * 5000, "not JSON"),
    ],
)
def test_lines_that_are_not_objects(line: str, reason: str) -> None:
    problem = decode_line(line)
    assert isinstance(problem, DecodeProblem) and problem.reason.startswith(reason)
    assert len(problem.excerpt) <= 201


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    event = decode_line(b'{"type":"assistant","message":{"content":[{"type":"text","text":"caf\xc3\xa9 \xff"}]}}')
    assert isinstance(event, AssistantMessage)
    assert event.message.content == [TextBlock(type="text", text="café \ufffd")]


def test_unknown_types_blocks_and_shapes() -> None:
    unknown = decode_line('{"type":"brand_new","x":1}')
    assert isinstance(unknown, UnknownEvent) and unknown.type == "brand_new" and unknown.data == {"type": "brand_new", "x": 1}
    assert isinstance(decode_line('{"no_type": true}'), UnknownEvent)
    assert isinstance(decode_line('{"type": 5}'), UnknownEvent)
    system = decode_line('{"type":"system","subtype":"compact_boundary"}')
    assert isinstance(system, SystemEvent) and system.subtype == "compact_boundary"
    broken_init = decode_line('{"type":"system","subtype":"init"}')  # no session_id
    assert isinstance(broken_init, UnknownEvent) and "session_id" in broken_init.reason
    assistant = decode_line('{"type":"assistant","message":{"content":[{"type":"server_tool_use","id":"s"},{"type":"tool_use"},7,{"type":"text","text":"ok"}]}}')
    assert isinstance(assistant, AssistantMessage)
    kinds = [type(block) for block in assistant.message.content]
    assert kinds == [UnknownBlock, UnknownBlock, UnknownBlock, TextBlock]


def test_changed_secondary_fields_do_not_lose_the_result() -> None:
    result = decode_line('{"type":"result","subtype":"success","is_error":false,"usage":null,"num_turns":"two","errors":"x","total_cost_usd":"free","result":3}')
    assert isinstance(result, ResultEvent)
    assert (result.usage, result.num_turns, result.errors, result.total_cost_usd, result.result) == ({}, 0, [], None, None)
    unreadable = decode_line('{"type":"result","is_error":"maybe"}')
    assert isinstance(unreadable, ResultEvent) and unreadable.is_error, "an unreadable is_error counts as an error"
    init = decode_line('{"type":"system","subtype":"init","session_id":"s","mcp_servers":"none","tools":null}')
    assert isinstance(init, SystemInit) and init.mcp_servers == [] and init.tools == []


def test_tool_result_content_shapes() -> None:
    line = {
        "type": "user",
        "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "one"}, {"type": "image"}]},
            {"type": "tool_result", "tool_use_id": "b"},
            {"type": "tool_result", "tool_use_id": "c", "content": 12, "is_error": "maybe"},
        ]},
    }  # fmt: skip
    event = decode_line(json.dumps(line))
    assert isinstance(event, UserMessage)
    texts = [(block.text, block.is_error) for block in event.message.content if isinstance(block, ToolResultBlock)]
    assert texts == [("one\n[image]", False), ("", False), ("", False)]


# --- properties: decode_line never raises ------------------------------------------------------------

leaves = st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=False, width=32) | st.text(max_size=8)
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
EVENT_TYPES = ["system", "assistant", "user", "result", "control_response", "control_request", "stream_event", "other"]
WORDS = st.sampled_from(["init", "api_retry", "success", "error_during_execution", "interrupt", "text", "tool_use", "tool_result", "thinking", "s-1"])
FIELDS = ["subtype", "session_id", "is_error", "result", "usage", "response", "request_id", "request", "event", "errors", "mcp_servers", "total_cost_usd", "num_turns", "isReplay"]
BLOCK_FIELDS = ["type", "text", "id", "name", "input", "tool_use_id", "content", "is_error", "thinking"]
blocks = st.dictionaries(st.sampled_from(BLOCK_FIELDS), WORDS | json_values, max_size=5)
messages = st.dictionaries(st.sampled_from(["content", "id", "model", "role"]), st.lists(blocks, max_size=3) | json_values, max_size=3)
shaped_events = st.builds(
    lambda kind, fields, message: {**fields, "type": kind, **({} if message is None else {"message": message})},
    st.sampled_from(EVENT_TYPES),
    st.dictionaries(st.sampled_from(FIELDS), WORDS | json_values, max_size=6),
    st.none() | messages,
)


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_decode_line_never_raises_on_bytes(data: bytes) -> None:
    assert decode_line(data) is not None


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values)
def test_decode_line_never_raises_on_json(value: Any) -> None:
    result = decode_line(json.dumps(value))
    if not isinstance(value, dict):
        assert isinstance(result, DecodeProblem)


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(shaped_events)
def test_decode_line_never_raises_on_event_shaped_objects(value: dict[str, Any]) -> None:
    result = decode_line(json.dumps(value).encode())
    assert not isinstance(result, DecodeProblem)


# --- framing --------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8), st.lists(st.integers(1, 30), min_size=1, max_size=20), st.booleans())
def test_splitter_yields_the_same_lines_for_any_chunking(lines: list[bytes], sizes: list[int], trailing: bool) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing and lines else b"")
    splitter = LineSplitter()
    out: list[bytes | OversizedLine] = []
    position, index = 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        out += splitter.feed(data[position : position + size])
        position += size
        index += 1
    out += splitter.finish()
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert out == expected


def test_splitter_ten_megabyte_line_in_small_chunks() -> None:
    line = b'{"type":"assistant","message":{"content":[{"type":"text","text":"' + b"x" * (10 * 1024 * 1024) + b'"}]}}'
    splitter = LineSplitter()
    lines: list[bytes | OversizedLine] = []
    for start in range(0, len(line), 65536):
        lines += splitter.feed(line[start : start + 65536])
        assert splitter.pending <= len(line)
    lines += splitter.feed(b"\nnext\n")
    assert lines == [line, b"next"]
    event = decode_line(line)
    assert isinstance(event, AssistantMessage) and len(event.message.content[0].text) == 10 * 1024 * 1024  # type: ignore[union-attr]


def test_splitter_drops_lines_over_its_limit() -> None:
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"short\n0123456789ABCDEF") == [b"short"]
    assert splitter.feed(b"more") == []
    assert splitter.feed(b"tail\nok\n") == [OversizedLine(24), b"ok"]
    assert splitter.feed(b"0123456789ABC") == []
    assert splitter.finish() == [OversizedLine(13)]


# --- stdin --------------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_user_message_encoding_round_trips(text: str) -> None:
    line = encode_user_message(text)
    assert line.endswith(b"\n") and line.count(b"\n") == 1, "one line, whatever the text holds"
    assert json.loads(line) == {"type": "user", "message": {"role": "user", "content": text}}


def test_a_message_with_pictures_is_a_text_block_and_base64_image_blocks() -> None:
    line = encode_user_message("look at this", [("image/png", b"\x89PNG\r\n\x1a\n"), ("image/jpeg", b"\xff\xd8\xff")])
    assert line.count(b"\n") == 1
    assert json.loads(line)["message"] == {"role": "user", "content": [
        {"type": "text", "text": "look at this"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
    ]}
    assert json.loads(encode_user_message("", [("image/gif", b"GIF89a")]))["message"]["content"][0]["type"] == "image"


def test_control_messages() -> None:
    assert json.loads(encode_interrupt("req_int_3")) == {"type": "control_request", "request_id": "req_int_3", "request": {"subtype": "interrupt"}}
    assert json.loads(encode_control_error("x", "no")) == {"type": "control_response", "response": {"subtype": "error", "request_id": "x", "error": "no"}}
