"""The REAL Claude Code CLI behind the agent, on both tested versions (2.1.330 unpacked by `make test`, 2.1.332
bundled), offline against the mock Messages API: a Bash command edited in the Answer prompt form is the one the
CLI runs; permission modes and the model switched on the running process (stream-json control requests) and
at the next start; bypassPermissions asked twice, refused where the configuration forbids it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from agentchat.xmpp.session import RESOURCE
from tests.harness.adhoc import AdHoc
from tests.support import claude_versions
from tests.support.claude_versions import CliUnderTest
from tests.support.mock_anthropic import MockAnthropic
from tests.support.service import create_agent, make_repositories, running_service, service_settings

pytestmark = pytest.mark.claude_cli
TURN = 40.0
PROMPT_ID = re.compile(r"#([0-9a-f]{4})")


def _tested() -> list[CliUnderTest]:
    found = claude_versions.clis_on_this_machine()
    return found if len(found) >= 2 else [*found, CliUnderTest("oldest-missing", Path("/nonexistent"))]


def _require(cli: CliUnderTest) -> None:
    if not cli.path.exists():
        pytest.skip("the oldest Claude Code of the tested range is not unpacked (make test unpacks it into .cache)")


@pytest.mark.parametrize("cli", _tested(), ids=lambda cli: cli.label)
async def test_the_cli_runs_the_command_edited_in_the_form(cli: CliUnderTest, prosody, user_client, tmp_path: Path) -> None:
    _require(cli)
    async with MockAnthropic() as api:
        settings = service_settings(prosody, tmp_path)
        settings.agents.claude.path = str(cli.path)
        settings.agents.claude.env = api.cli_env(home=tmp_path / "claude-home")
        work = make_repositories(settings.work.base_path)
        api.script_tool_use("Bash", {"command": "echo asked > out.txt", "description": "Write out.txt"},
                            text_before="I'll write the file.", final_text="Wrote it.")
        async with running_service(settings):
            alice = await user_client("alice")
            _, agent = await create_agent(alice, settings.manager_jid, task="write out.txt")
            await alice.expect("🔐 Permission #", from_=agent, timeout=TURN)
            forms = AdHoc(alice, f"{agent}/{RESOURCE}")
            page = await forms.execute("answer")
            assert page.value("command") == ["echo asked > out.txt"]
            done = await forms.submit(page, {"decision": "allow", "command": "echo edited-by-form > out.txt"})
            assert "edited to: `echo edited-by-form > out.txt`" in done.text, done.notes
            await alice.expect("Wrote it.", from_=agent, timeout=TURN)
            await alice.expect("✅ Done", from_=agent, timeout=TURN)
            assert (work / "api" / "out.txt").read_text() == "edited-by-form\n"
            # The model was told the command that ran succeeded (the CLI ran our input, not its own).
            results = api.requests[-1].tool_results()
            assert results and not results[-1].get("is_error")


@pytest.mark.parametrize("cli", _tested(), ids=lambda cli: cli.label)
async def test_modes_and_model_switch_on_the_running_cli(cli: CliUnderTest, prosody, user_client, tmp_path: Path) -> None:
    _require(cli)
    async with MockAnthropic() as api:
        settings = service_settings(prosody, tmp_path)
        settings.agents.claude.path = str(cli.path)
        # As root (this machine), Claude Code takes bypassPermissions only in a sandbox it is told about.
        settings.agents.claude.env = {**api.cli_env(home=tmp_path / "claude-home"), "IS_SANDBOX": "1"}
        settings.agents.claude.allow_bypass_permissions = True
        work = make_repositories(settings.work.base_path)
        repo = work / "api"
        async with running_service(settings) as service:
            alice = await user_client("alice")
            agent_id, agent = await create_agent(alice, settings.manager_jid)
            running = service.supervisor.get(agent_id)
            api.script_text("Hello.")
            await alice.send(agent, "hello")
            await alice.expect("✅ Done", from_=agent, timeout=TURN)
            assert running.process_running

            # acceptEdits, live: a Write needs no prompt any more.
            await alice.send(agent, "mode acceptEdits")
            assert "switched now" in (await alice.expect("Permission mode: acceptEdits", from_=agent, timeout=TURN)).body
            api.script_tool_use("Write", {"file_path": str(repo / "a.txt"), "content": "a\n"}, final_text="Wrote a.")
            before = len(alice.messages)
            await alice.send(agent, "write a.txt")
            await alice.expect("Wrote a.", from_=agent, timeout=TURN)
            await alice.expect("✅ Done", from_=agent, timeout=TURN)
            assert (repo / "a.txt").read_text() == "a\n"
            assert not any("🔐" in m.body for m in alice.messages[before:])

            # Back to default: the next Write asks again.
            await alice.send(agent, "mode default")
            await alice.expect("Permission mode: default (switched now)", from_=agent, timeout=TURN)
            api.script_tool_use("Write", {"file_path": str(repo / "b.txt"), "content": "b\n"}, final_text="Wrote b.")
            await alice.send(agent, "write b.txt")
            await alice.expect("🔐 Permission #", from_=agent, timeout=TURN)
            await alice.send(agent, "yes")
            await alice.expect("Wrote b.", from_=agent, timeout=TURN)

            # The model, live: the next request to the API names it.
            await alice.send(agent, "model claude-test-model-x")
            await alice.expect("Model: claude-test-model-x (switched now)", from_=agent, timeout=TURN)
            api.script_text("From the new model.")
            await alice.send(agent, "which model?")
            await alice.expect("From the new model.", from_=agent, timeout=TURN)
            assert api.requests[-1].body["model"] == "claude-test-model-x"

            # bypassPermissions: asked twice, then live; a Bash command runs without a prompt.
            await alice.send(agent, "mode bypassPermissions")
            await alice.expect("again within 30 s", from_=agent, timeout=TURN)
            await alice.send(agent, "mode bypassPermissions")
            await alice.expect("Permission mode: bypassPermissions (switched now)", from_=agent, timeout=TURN)
            api.script_tool_use("Bash", {"command": "echo free > free.txt", "description": "Write free.txt"}, final_text="Ran it.")
            before = len(alice.messages)
            await alice.send(agent, "run it")
            await alice.expect("Ran it.", from_=agent, timeout=TURN)
            assert (repo / "free.txt").read_text() == "free\n"
            assert not any("🔐" in m.body for m in alice.messages[before:])

            # plan: in status and in presence.
            await alice.send(agent, "mode plan")
            await alice.expect("Permission mode: plan (switched now)", from_=agent, timeout=TURN)
            await alice.send(agent, "status")
            status = await alice.expect("📊", from_=agent, timeout=TURN)
            assert "Permission mode: plan · model: claude-test-model-x" in status.body
            await _presence_shows(alice, agent, "plan mode")
            assert running.record.permission_mode == "plan" and running.record.model == "claude-test-model-x"
            assert not any("mode now" in m.body for m in alice.messages)  # our switches, not the CLI's own


@pytest.mark.parametrize("cli", _tested(), ids=lambda cli: cli.label)
async def test_a_mode_chosen_while_no_process_runs_applies_at_its_start(cli: CliUnderTest, prosody, user_client, tmp_path: Path) -> None:
    _require(cli)
    async with MockAnthropic() as api:
        settings = service_settings(prosody, tmp_path)
        settings.agents.claude.path = str(cli.path)
        settings.agents.claude.env = api.cli_env(home=tmp_path / "claude-home")
        work = make_repositories(settings.work.base_path)
        async with running_service(settings):
            alice = await user_client("alice")
            _, agent = await create_agent(alice, settings.manager_jid)
            await alice.send(agent, "mode bypassPermissions")
            refused = await alice.expect("bypassPermissions is not allowed", from_=agent, timeout=TURN)
            assert refused.body.startswith("⛔")
            await alice.send(agent, "mode acceptEdits")
            await alice.expect("Permission mode: acceptEdits (from the next message on", from_=agent, timeout=TURN)
            await alice.send(agent, "model claude-next-start")
            await alice.expect("Model: claude-next-start (from the next message on", from_=agent, timeout=TURN)
            api.script_tool_use("Write", {"file_path": str(work / "api" / "c.txt"), "content": "c\n"}, final_text="Wrote c.")
            before = len(alice.messages)
            await alice.send(agent, "write c.txt")
            await alice.expect("Wrote c.", from_=agent, timeout=TURN)
            assert (work / "api" / "c.txt").read_text() == "c\n"
            assert not any("🔐" in m.body for m in alice.messages[before:])
            assert api.requests[-1].body["model"] == "claude-next-start"


async def _presence_shows(client, jid: str, wanted: str, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not any(wanted in (info.get("status") or "") for info in client.xmpp.client_roster[jid].resources.values()):
            await asyncio.sleep(0.02)
