"""The walkthrough with the REAL Claude Code CLI behind the agent (offline, against a mock Messages
API): chat → agent bot → claude stream-json → MCP permission prompt in chat → file written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentchat.agents.backends.claude import locate_claude
from agentchat.errors import BackendError
from tests.support.mock_anthropic import MockAnthropic
from tests.support.service import create_agent, make_repositories, running_service, service_settings

pytestmark = pytest.mark.claude_cli


@pytest.fixture
def claude_binary() -> Path:
    try:
        return locate_claude(os.environ.get("CLAUDE_PATH"))
    except BackendError as exc:
        pytest.skip(f"real Claude Code CLI not available: {exc}")


async def test_real_cli_asks_in_chat_and_writes_after_yes(prosody, user_client, tmp_path: Path, claude_binary: Path) -> None:
    async with MockAnthropic() as api:
        settings = service_settings(prosody, tmp_path)
        settings.agents.claude.path = str(claude_binary)
        settings.agents.claude.env = api.cli_env(home=tmp_path / "claude-home")
        work = make_repositories(settings.work.base_path)
        target = work / "api" / "hello.txt"
        api.script_tool_use(
            "Write",
            {"file_path": str(target), "content": "written by claude\n"},
            text_before="I'll create the file.",
            final_text="Created **hello.txt** for you.",
        )
        async with running_service(settings):
            alice = await user_client("alice")
            _, agent = await create_agent(alice, settings.manager_jid, task="please create hello.txt")
            await alice.expect("I'll create the file.", from_=agent, timeout=30)
            prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=30)
            assert "hello.txt" in prompt.body and "written by claude" in prompt.body
            assert not target.exists()
            await alice.send(agent, "yes")
            # XEP-0393: **bold** became *bold*.
            await alice.expect("Created *hello.txt* for you.", from_=agent, timeout=30)
            summary = await alice.expect("✅ Done", from_=agent, timeout=30)
            assert "$" in summary.body  # the real CLI reports a cost
            assert target.read_text() == "written by claude\n"

            # A second turn on the same process, then a denial with a reason the model reads.
            api.script_tool_use("Bash", {"command": "rm -rf build", "description": "Clean"}, final_text="OK, not deleting.")
            await alice.send(agent, "clean the build")
            await alice.expect("🔐 Permission #", from_=agent, timeout=30)
            await alice.send(agent, "no keep the build folder")
            await alice.expect("OK, not deleting.", from_=agent, timeout=30)
            denial = api.requests[-1].tool_results()
            assert any("keep the build folder" in str(result) for result in denial)
