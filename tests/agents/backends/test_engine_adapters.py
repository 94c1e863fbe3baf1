"""The engines' adapters without the engines: finding them, choosing them, and the wire-to-chat mappings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentchat.agents.backends.acp import AcpBackend, GeminiBackend, OpencodeBackend, PermissionOption, ToolCall, acp_tool
from agentchat.agents.backends.base import BackendSpec
from agentchat.agents.backends.codex import CodexBackend, FileUpdate, command_text, file_change_tool
from agentchat.agents.backends.command import CommandBackend
from agentchat.agents.backends.engine_backend import adopt_legacy_state, owners_reason
from agentchat.agents.backends.engines import opencode_provider_keys
from agentchat.agents.backends.factory import available_backends, create_backend
from agentchat.agents.backends.jsonrpc import RpcMessage, decode_message
from agentchat.config import AgentSettings, CodexSettings, CommandBackendSettings, EngineSettings, OpencodeSettings
from agentchat.permissions.requests import DecidedBy, Decision


@pytest.fixture
def prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An engines prefix holding a fake `codex` only, and a PATH without any engine."""
    bin_dir = tmp_path / "engines" / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "codex"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("AGENTCHAT_ENGINES_DIR", str(tmp_path / "engines"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    return tmp_path


def test_new_lists_the_installed_engines_and_the_configured_ones(prefix: Path) -> None:
    assert available_backends(AgentSettings()) == [("claude", "Claude Code"), ("codex", "Codex")]
    shell = CommandBackendSettings(label="Shell", command=["sh"])
    assert available_backends(AgentSettings(command_backends={"shell": shell}))[1:] == [("shell", "Shell"), ("codex", "Codex")]
    settings = AgentSettings.model_validate({"gemini": {"path": "/opt/gemini/bin/gemini"}})
    assert available_backends(settings) == [("claude", "Claude Code"), ("codex", "Codex"), ("gemini", "Gemini CLI")]


def test_a_command_backend_of_the_same_name_replaces_the_engine(prefix: Path) -> None:
    settings = AgentSettings(command_backends={"codex": CommandBackendSettings(label="Codex exec", command=["codex", "exec"]),
                                               "shell": CommandBackendSettings(label="Shell", command=["sh"])})
    assert available_backends(settings) == [("claude", "Claude Code"), ("codex", "Codex exec"), ("shell", "Shell")]
    spec = BackendSpec(agent_id="a", cwd=prefix, session_id="s")
    assert isinstance(create_backend("codex", spec, settings), CommandBackend)


def test_create_backend_by_kind(tmp_path: Path) -> None:
    spec = BackendSpec(agent_id="a", cwd=tmp_path, session_id="s")
    settings = AgentSettings()
    kinds = {kind: type(create_backend(kind, spec, settings)) for kind in ("codex", "gemini", "opencode")}
    assert kinds == {"codex": CodexBackend, "gemini": GeminiBackend, "opencode": OpencodeBackend}
    backend = create_backend("gemini", spec, settings)
    assert backend.engine_name == "Gemini CLI" and backend.engine_version is None and backend.kind == "gemini"


def test_codex_commands_lose_their_shell_wrapper() -> None:
    assert command_text("/bin/bash -lc 'echo hi > hi.txt'") == "echo hi > hi.txt"
    assert command_text("/bin/bash -lc 'a && b'", [{"type": "unknown", "command": "a"}, {"command": "b"}]) == "a && b"
    assert command_text("ls -la") == "ls -la"
    assert command_text("unbalanced 'quote") == "unbalanced 'quote"


def test_codex_patches_become_the_tools_the_chat_renders() -> None:
    add = FileUpdate.model_validate({"path": "/r/new.txt", "kind": {"type": "add"}, "diff": "hello\n"})
    update = FileUpdate.model_validate({"path": "/r/a.py", "kind": {"type": "update", "move_path": None}, "diff": "@@\n-a\n+b\n"})
    assert file_change_tool([add]) == ("Write", {"file_path": "/r/new.txt", "content": "hello\n"})
    assert file_change_tool([update]) == ("Edit", {"file_path": "/r/a.py", "diff": "@@\n-a\n+b\n"})
    name, tool_input = file_change_tool([add, update])
    assert name == "apply_patch" and [c["kind"] for c in tool_input["changes"]] == ["add", "update"]


def test_acp_tool_calls_become_the_tools_the_chat_renders() -> None:
    shell = ToolCall.model_validate({"toolCallId": "1", "title": "echo hi", "kind": "execute"})
    assert acp_tool(shell, for_prompt=True) == ("Bash", {"command": "echo hi"})
    edit = ToolCall.model_validate({
        "toolCallId": "2", "kind": "edit", "title": "Writing to a.txt",
        "content": [{"type": "diff", "path": "/r/a.txt", "oldText": "old\n", "newText": "new\n"}],
    })
    assert acp_tool(edit, for_prompt=True) == ("Edit", {"file_path": "/r/a.txt", "old_string": "old\n", "new_string": "new\n"})
    assert acp_tool(edit, for_prompt=False) == ("Edit", {"file_path": "/r/a.txt"})
    fetch = ToolCall.model_validate({"toolCallId": "3", "kind": "fetch", "title": "webfetch", "rawInput": {"url": "http://x"}})
    assert acp_tool(fetch, for_prompt=True) == ("webfetch", {"url": "http://x"})


def test_acp_options_are_picked_by_kind() -> None:
    options = [PermissionOption.model_validate(o) for o in (
        {"optionId": "proceed_always", "kind": "allow_always"},
        {"optionId": "proceed_once", "kind": "allow_once"},
        {"optionId": "cancel", "kind": "reject_once"},
    )]
    pick = AcpBackend._outcome
    assert pick(Decision.allow({}, "me@x"), options) == {"outcome": "selected", "optionId": "proceed_once"}
    assert pick(Decision(Decision.allow({}, "me@x").behavior, "me@x", always=True), options)["optionId"] == "proceed_always"
    assert pick(Decision.deny("no", "me@x"), options)["optionId"] == "cancel"
    assert pick(Decision.deny("no", "me@x"), options[:2]) == {"outcome": "cancelled"}


def test_only_a_persons_own_reason_counts_as_one() -> None:
    assert owners_reason(Decision.deny("use pnpm", "me@x")) == "use pnpm"
    assert owners_reason(Decision.deny("The user denied permission to use Bash.", "me@x")) is None
    assert owners_reason(Decision.deny("The user declined (👎).", "me@x")) is None
    assert owners_reason(Decision.deny("timed out", DecidedBy.TIMEOUT)) is None
    assert owners_reason(Decision.allow({}, "me@x")) is None


def test_json_rpc_lines_are_classified() -> None:
    request = decode_message(b'{"jsonrpc":"2.0","id":0,"method":"session/request_permission","params":{}}')
    assert isinstance(request, RpcMessage) and request.is_request
    assert isinstance(note := decode_message(b'{"method":"turn/started","params":{}}'), RpcMessage) and note.is_notification
    assert isinstance(answer := decode_message(b'{"id":3,"result":null}'), RpcMessage) and answer.is_response
    assert decode_message(b"[1, 2]") == "not a JSON object (a list): [1, 2]"
    assert isinstance(decode_message(b'{"jsonrpc":"2.0"}'), str)


@given(st.one_of(st.binary(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["id", "method", "params", "result", "error", "x"]), children, max_size=5),
    max_leaves=20,
).map(lambda value: json.dumps(value).encode())))
def test_decoding_never_raises(line: bytes) -> None:
    result = decode_message(line)
    assert isinstance(result, (RpcMessage, str))


def test_each_engine_gets_only_its_own_credential_variables(tmp_path: Path) -> None:
    spec = BackendSpec(agent_id="a", cwd=tmp_path, session_id="s")
    assert CodexBackend(spec, CodexSettings())._credential_variables() == ("OPENAI_API_KEY",)
    assert CodexBackend(spec, CodexSettings(env_key="AZURE_OPENAI_KEY"))._credential_variables() == ("AZURE_OPENAI_KEY",)
    assert GeminiBackend(spec, EngineSettings())._credential_variables() == ("GEMINI_API_KEY",)
    assert OpencodeBackend(spec, OpencodeSettings())._credential_variables() == ("ANTHROPIC_API_KEY",)
    assert opencode_provider_keys("openai") == ("OPENAI_API_KEY",)
    assert opencode_provider_keys("amazon-bedrock") == ("AMAZON_BEDROCK_API_KEY",)
    assert opencode_provider_keys("google") == ("GOOGLE_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY")


def test_an_older_layout_moves_into_the_agent_s_home(tmp_path: Path) -> None:
    legacy, home = tmp_path / "agent" / "codex", tmp_path / "agent" / "home"
    (legacy / "home" / ".config").mkdir(parents=True)
    (legacy / "home" / ".config" / "x").write_text("config")
    (legacy / "codex-home" / "sessions").mkdir(parents=True)
    (legacy / "codex-home" / "sessions" / "rollout.jsonl").write_text("thread")
    home.mkdir()
    (home / ".gitconfig").write_text("kept")
    (legacy / "home" / ".gitconfig").write_text("older")
    adopt_legacy_state(legacy, home, {"home": "", "codex-home": ".codex"})
    assert (home / ".config" / "x").read_text() == "config"
    assert (home / ".codex" / "sessions" / "rollout.jsonl").read_text() == "thread"
    assert (home / ".gitconfig").read_text() == "kept"  # never over what is there
    assert not legacy.exists()


async def test_a_history_replayed_after_the_load_answer_stays_out_of_the_chat(tmp_path: Path) -> None:
    """Gemini CLI 0.61.0 answers session/load while it still streams the history it replays: what
    arrives after the answer is history too, not the next turn's text."""
    backend = GeminiBackend(BackendSpec(agent_id="a", cwd=tmp_path, session_id="s", resume=True), EngineSettings())
    replayed = asyncio.Event()

    def replay(number: int, last: bool) -> None:
        update = {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": f"old answer {number}"}}
        message = decode_message(json.dumps({"jsonrpc": "2.0", "method": "session/update",
                                             "params": {"sessionId": "s", "update": update}}).encode())
        assert not isinstance(message, str)
        backend._dispatch_notification(message)
        if last:
            replayed.set()

    class Peer:
        async def request(self, method: str, params: object, timeout: float | None = None) -> object:
            if method == "initialize":
                return {"protocolVersion": 1, "agentInfo": {"name": "gemini", "version": "0.61.0"},
                        "agentCapabilities": {"loadSession": True}}
            assert method == "session/load"
            loop = asyncio.get_running_loop()
            for number, delay in enumerate((0.01, 0.1, 0.2)):
                loop.call_later(delay, replay, number, number == 2)
            return {}

    await backend._handshake(Peer())  # type: ignore[arg-type]
    await asyncio.wait_for(replayed.wait(), 5)
    assert backend.session_id == "s" and backend._text == []
