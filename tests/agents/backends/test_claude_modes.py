"""Claude Code's permission modes and model at the backend: the command line a chosen mode starts with, the
stream-json control requests that switch a running process (fake CLI, shaped after 2.1.330), what the CLI
reports (system/status), and which modes the installed CLIs list (their real --help)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentchat.agents.backends.base import AgentBackend, BackendSpec, PermissionModeChanged, SettingNotApplied, TurnResult
from agentchat.agents.backends.claude import ClaudeCodeBackend
from agentchat.agents.sandbox import Sandbox
from agentchat.agents.backends.claude.modes import BASE_MODES, bypass_possible, installed_modes, parse_help
from agentchat.agents.backends.claude.protocol import SystemStatus, decode_line
from agentchat.config import ClaudeSettings
from tests.support import EventReader
from tests.support import claude_versions

MakeSpec = Callable[..., BackendSpec]


async def start(fake_claude_bin: Path, backends: list[AgentBackend], spec: BackendSpec, **settings: Any) -> tuple[ClaudeCodeBackend, EventReader]:
    backend = ClaudeCodeBackend(spec, ClaudeSettings(path=str(fake_claude_bin), **settings))
    backends.append(backend)
    reader = EventReader(backend)
    await backend.start()
    return backend, reader


def argv(log: Path) -> list[str]:
    return next(json.loads(line)["argv"] for line in log.read_text().splitlines() if json.loads(line)["event"] == "start")


async def test_a_chosen_mode_and_model_are_on_the_command_line(make_spec: MakeSpec, fake_claude_bin: Path, backends, tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    spec = make_spec(env={"FAKE_CLAUDE_LOG": str(log)}, permission_mode="plan", model="claude-chosen")
    backend, reader = await start(fake_claude_bin, backends, spec, model="claude-configured")
    await backend.send("hello")
    await reader.until(TurnResult)
    args = argv(log)
    assert args[args.index("--model") + 1] == "claude-chosen"  # the agent's own choice wins over the config's
    assert args[args.index("--permission-mode") + 1] == "plan"
    assert "--allow-dangerously-skip-permissions" not in args


async def test_bypass_where_allowed_starts_so_that_it_can_be_switched_on(make_spec: MakeSpec, fake_claude_bin: Path, backends, tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    spec = make_spec(env={"FAKE_CLAUDE_LOG": str(log), "IS_SANDBOX": "1"}, allow_bypass=True)
    backend, reader = await start(fake_claude_bin, backends, spec)
    await backend.send("hello")
    await reader.until(TurnResult)
    args = argv(log)
    assert "--allow-dangerously-skip-permissions" in args and "--permission-mode" not in args
    await backend.set_permission_mode("bypassPermissions")  # taken: the process may be switched to it
    modes = [json.loads(line)["mode"] for line in log.read_text().splitlines() if json.loads(line)["event"] == "mode"]
    assert modes == ["bypassPermissions"]


async def test_a_saved_bypass_no_longer_allowed_starts_in_default(make_spec: MakeSpec, fake_claude_bin: Path, backends, tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    spec = make_spec(env={"FAKE_CLAUDE_LOG": str(log)}, permission_mode="bypassPermissions", allow_bypass=False)
    backend, reader = await start(fake_claude_bin, backends, spec)
    await backend.send("hello")
    before, _ = await reader.until(TurnResult)
    assert "bypassPermissions" not in argv(log)
    assert PermissionModeChanged("default") in before  # so that the agent's record says so too


async def test_live_switches_and_what_the_cli_refuses(make_spec: MakeSpec, fake_claude_bin: Path, backends, tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    spec = make_spec(env={"FAKE_CLAUDE_LOG": str(log)})
    backend, reader = await start(fake_claude_bin, backends, spec)
    await backend.set_permission_mode("acceptEdits")
    assert await backend.set_model("claude-other") == "claude-other"
    assert await backend.set_model(None) == "claude-opus-5-5"  # "default": the CLI's own
    with pytest.raises(SettingNotApplied) as refused:
        await backend.set_permission_mode("bypassPermissions")
    assert refused.value.code == "bypass_not_launched"
    with pytest.raises(SettingNotApplied) as invalid:
        await backend.set_permission_mode("sideways")
    assert invalid.value.code == "invalid_mode"
    await backend.send("hello")
    await reader.until(TurnResult)
    modes = [json.loads(line)["mode"] for line in log.read_text().splitlines() if json.loads(line)["event"] == "mode"]
    assert modes == ["acceptEdits"]
    await backend.stop()
    with pytest.raises(SettingNotApplied) as stopped:
        await backend.set_permission_mode("plan")
    assert stopped.value.code == "not_running"


async def test_a_mode_the_cli_takes_by_itself_is_reported(make_spec: MakeSpec, fake_claude_bin: Path, backends, permission_stub) -> None:
    spec = make_spec(permission_mode="plan", mcp_url=permission_stub.url, mcp_token=permission_stub.token)
    backend, reader = await start(fake_claude_bin, backends, spec)
    plan = {"plan": "# Plan", "planFilePath": "/tmp/p.md"}
    await backend.send(f"[[tool:ExitPlanMode {json.dumps(plan)}]]")
    before, _ = await reader.until(TurnResult)
    assert PermissionModeChanged("default") in before  # the plan approved (the stub allows), plan mode left
    assert [call.tool_name for call in permission_stub.calls] == ["ExitPlanMode"]


def test_system_status_carries_the_permission_mode() -> None:
    line = '{"type":"system","subtype":"status","status":null,"permissionMode":"acceptEdits","uuid":"u","session_id":"s"}'
    event = decode_line(line)
    assert isinstance(event, SystemStatus) and event.permission_mode == "acceptEdits"


def test_modes_read_from_help() -> None:
    listed = '--permission-mode <mode>  Permission mode\n   (choices: "acceptEdits", "auto",\n "bypassPermissions", "manual", "dontAsk", "plan")'
    assert parse_help(listed) == (*BASE_MODES, "auto")
    assert parse_help('--permission-mode <mode> (choices: "acceptEdits", "bypassPermissions", "default", "plan")') == BASE_MODES
    assert parse_help("no such option here") == BASE_MODES


def test_bypass_as_root_needs_a_declared_sandbox() -> None:
    assert not bypass_possible({}, 0) and bypass_possible({"IS_SANDBOX": "1"}, 0)
    # In agentchat's sandbox the CLI is never root (uid 1000 when the service is).
    assert bypass_possible({}, 1000)
    assert Sandbox.off().process_uid == os.geteuid()


@pytest.mark.claude_cli
@pytest.mark.parametrize("cli", claude_versions.clis_on_this_machine(), ids=lambda cli: cli.label)
async def test_every_tested_cli_has_auto(cli: claude_versions.CliUnderTest) -> None:
    assert await installed_modes(cli.path) == ("default", "acceptEdits", "plan", "bypassPermissions", "auto")


async def test_model_default_goes_back_to_the_configured_model_not_to_the_last_choice(
    make_spec: MakeSpec, fake_claude_bin: Path, backends
) -> None:
    # Started with a model chosen before: the CLI's own "default" would be that choice again.
    chosen, _ = await start(fake_claude_bin, backends, make_spec(model="claude-chosen"))
    with pytest.raises(SettingNotApplied) as refused:
        await chosen.set_model(None)
    assert refused.value.code == "started_with_model"
    configured, _ = await start(fake_claude_bin, backends, make_spec(model="claude-chosen"), model="claude-configured")
    assert await configured.set_model(None) == "claude-configured"
