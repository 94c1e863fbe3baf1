"""The Claude Code process SIGKILLed mid-turn, with a permission prompt waiting for the owner.

The owner must hear about it within a second (exit code and the last stderr line), the prompt must
be denied rather than left answerable, and the next message must resume the same session.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.support import group_members, record_figures, wait_until
from tests.harness.files import download, oob_url
from tests.support.service import create_agent, make_repositories, running_service, service_settings, show_to_agents

FIXTURES = Path(__file__).parents[1] / "fixtures"
STDERR_LINE = "fake-claude: about to write hello.txt"


def noisy_tool_fixture(directory: Path) -> Path:
    """The recorded Write turn, with a line on stderr before the tool use (so the tail has something)."""
    meta, *events = (FIXTURES / "tool_use.jsonl").read_text(encoding="utf-8").splitlines()
    path = directory / "noisy_tool.jsonl"
    stderr = json.dumps({"__fake__": "stderr", "text": STDERR_LINE})
    path.write_text("\n".join([meta, stderr, *events]) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
async def test_cli_sigkill_with_a_pending_prompt(prosody, user_client, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    fixture = noisy_tool_fixture(show_to_agents(settings, tmp_path_factory.mktemp("fixtures")))
    async with running_service(settings) as service:
        alice = await user_client("alice")
        agent_id, agent_jid = await create_agent(alice, settings.manager_jid, task="remember the word pelican")
        await alice.expect("✅ Done", from_=agent_jid, timeout=20)
        assert service.supervisor is not None
        agent = service.supervisor.get(agent_id)
        assert agent is not None

        await alice.send(agent_jid, f"[[fixture:{fixture}]]")
        prompt = await alice.expect("🔐 Permission #", from_=agent_jid, timeout=20)
        request_id = prompt.body.split("#", 1)[1][:4]
        assert [r.request_id for r in service.permissions.pending(agent_id)] == [request_id]
        pid = agent.backend_pid
        assert pid is not None

        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        crash = await alice.expect("💥", from_=agent_jid, timeout=5)
        told_after = crash.received_at - killed_at
        assert "SIGKILL" in crash.body and STDERR_LINE in crash.body, crash.body
        assert told_after < 1.0, f"the owner heard of the crash after {told_after:.2f} s"

        # The prompt is denied (not left answerable), the owner is told, and a late "yes" runs nothing.
        await wait_until(lambda: not service.permissions.pending(agent_id), 2, "the prompt closed")
        closed = await alice.expect(request_id, from_=agent_jid, timeout=5)
        assert "denied (the agent stopped)" in closed.body, closed.body
        await alice.send(agent_jid, f"{request_id} yes")
        late = await alice.expect(request_id, from_=agent_jid, timeout=5)
        assert "already denied" in late.body, late.body
        assert not any(work.rglob("hello.txt"))
        # Nothing of the old process group is left.
        assert group_members(pid) == []

        # The next message starts a new process that resumes the same session.
        await alice.send(agent_jid, "[[recall]]")
        recall = await alice.expect("MOCK_HISTORY", from_=agent_jid, timeout=20)
        assert "pelican" in recall.body
        assert agent.backend_pid not in (None, pid)
        record_figures("cli_sigkill", owner_told_s=round(told_after, 3), crash=crash.body, prompt=closed.body, late=late.body)


@pytest.mark.slow
async def test_cli_misbehaviour_is_reported_in_the_chat_and_the_agent_carries_on(prosody, user_client, tmp_path: Path) -> None:
    """Garbage, half lines, unknown events, a 10 MB line, an exit before init, a CLI that cannot start:
    each is reported to the owner in a line or two, and the next message is answered."""
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid)

        async def turn(text: str, *expected: str, timeout: float = 20) -> list[str]:
            before = len(alice.messages)
            await alice.send(agent, text)
            for piece in expected:
                await alice.expect(piece, from_=agent, timeout=timeout)
            return [m.body for m in alice.messages[before:] if m.from_bare == agent]

        # Its binary line holds a NUL, which XML cannot carry: reported as is, it used to make Prosody
        # close the bot's stream, again after every reconnect.
        said = await turn("[[fixture:garbage]]", "MOCK_REPLY: hello there", "✅ Done")
        assert any("unreadable line" in body for body in said), said
        said = await turn("[[fixture:half_lines]]", "MOCK_REPLY: hello there", "✅ Done")
        assert not any("unreadable" in body for body in said), said
        said = await turn("[[fixture:unknown_events]]", "✅ Done")
        assert any("skipped" in body for body in said), said

        started = time.monotonic()
        said = await turn("[[fixture:huge_line]]", "✅ Done", timeout=60)
        huge_seconds = time.monotonic() - started
        # Too long for chat messages: it arrives as one file (the test server has an upload service).
        pieces = [body for body in said if body.startswith("xxx")]
        assert pieces == [] and any(body.startswith("📄 A long answer of 10.5 MB") for body in said), said[:3]
        shared = next(m for m in alice.messages if m.from_bare == agent and oob_url(m.stanza) is not None)
        assert await download(shared.body) == b"x" * (10 * 1024 * 1024), "the 10 MB answer did not arrive whole"

        said = await turn("[[fixture:exit_before_init]]", "💥")
        assert "exited with code 1: Error: simulated failure before init" in said[-1], said
        settings.agents.claude.env["FAKE_CLAUDE_EXIT_BEFORE_INIT"] = "2:Error: broken install"
        said = await turn("does it start?", "💥")
        assert "exited with code 2: Error: broken install" in said[-1], said
        del settings.agents.claude.env["FAKE_CLAUDE_EXIT_BEFORE_INIT"]
        await turn("and now?", "MOCK_REPLY: and now?", "✅ Done")
        assert service.supervisor is not None and service.supervisor.get(agent_id) is not None
    record_figures("cli_output", huge_line_mb=10, huge_line_delivered_s=round(huge_seconds, 1), as_one_file=True)
