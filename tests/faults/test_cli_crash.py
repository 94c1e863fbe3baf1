"""The Claude Code process SIGKILLed mid-turn, with a permission prompt waiting for the owner.

The owner must hear about it within a second (exit code and the last stderr line), the prompt must
be denied rather than left answerable, and the next message must resume the same session.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.support import group_members, record_figures, wait_until
from tests.support.service import create_agent, make_repositories, running_service, service_settings

FIXTURES = Path(__file__).parents[1] / "fixtures"
STDERR_LINE = "fake-claude: about to write hello.txt"


def noisy_tool_fixture(directory: Path) -> Path:
    """The recorded Write turn, with a line on stderr before the tool use (so the tail has something)."""
    meta, *events = (FIXTURES / "tool_use.jsonl").read_text(encoding="utf-8").splitlines()
    path = directory / "noisy_tool.jsonl"
    stderr = '{"__fake__": "stderr", "text": "%s"}' % STDERR_LINE
    path.write_text("\n".join([meta, stderr, *events]) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
async def test_cli_sigkill_with_a_pending_prompt(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    fixture = noisy_tool_fixture(tmp_path)
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

        # The prompt is closed (denied or withdrawn), the owner is told, and a late "yes" runs nothing.
        await wait_until(lambda: not service.permissions.pending(agent_id), 2, "the prompt closed")
        closed = await alice.expect(request_id, from_=agent_jid, timeout=5)
        assert "denied" in closed.body or "withdrawn" in closed.body, closed.body
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
