"""The service itself SIGKILLed mid-turn and started again, as a real process (`python -m agentchat start`).

What must hold: the state file is intact, the agent comes back and resumes its session, no CLI
of the dead run works on (in its sandbox it dies with the service; unsandboxed, the new run ends
it), what the owner wrote while the service was down is answered once, and the turn the crash cut is
not run again unless the owner says `retry`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from agentchat.agents.supervisor import AGENT_ID_ENV
from tests.faults.service_process import ServiceProcess, service_config
from tests.faults.support import process_alive, processes_with_env, record_figures, wait_until
from tests.support.service import FAKE_CLAUDE, create_agent, make_repositories

pytestmark = pytest.mark.slow

DOWNTIME_MESSAGES = 5
# Long enough to outlive the service's restart: the CLI it leaves behind is still busy then.
TURN = 6


def inbound_states(home: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(home / "state.db")) as db:
        return {state for (state,) in db.execute("SELECT DISTINCT state FROM inbound")}


def fake_cli_log(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def backend_pids(agent_id: str) -> list[int]:
    """The agent's backend process: the CLI, or the sandbox holding it (whose processes carry the id too)."""
    leaders = []
    for pid in processes_with_env(AGENT_ID_ENV, agent_id):
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                leaders.append(pid)
    return leaders


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
async def test_service_sigkill_mid_turn_and_restart(prosody, user_client, tmp_path: Path, sandboxed: bool) -> None:
    home = tmp_path / "home"
    make_repositories(home / "work")
    logs = tmp_path / "logs"
    logs.mkdir()
    cli_log = logs / "fake-claude.jsonl"
    claude = {"path": str(FAKE_CLAUDE), "env": {"HOME": str(home / "claude-home"), "FAKE_CLAUDE_LOG": str(cli_log)}}
    config = service_config(prosody, home, agents={"claude": claude})
    config["agents"]["sandbox"].update(enabled=sandboxed, readWrite=[str(logs)])
    service = ServiceProcess(home, config)
    manager = prosody.manager_jid
    agent_id = ""
    try:
        await service.start()
        alice = await user_client("alice")
        agent_id, agent_jid = await create_agent(alice, manager, task="remember the word pelican")
        await alice.expect("✅ Done", from_=agent_jid, timeout=20)
        await alice.send(agent_jid, f"[[sleep:{TURN}]] long job")
        await wait_until(lambda: "long job" in fake_cli_log(cli_log), 10, "the CLI got the long job")
        [orphan] = backend_pids(agent_id)

        killed_at = time.monotonic()
        assert await service.kill(signal.SIGKILL) == -signal.SIGKILL
        if sandboxed:
            # The sandbox dies with the service (bubblewrap's --die-with-parent): nothing works on unsupervised.
            await wait_until(lambda: not processes_with_env(AGENT_ID_ENV, agent_id), 2, "the sandbox died with the service")
        else:
            # The crash leaves the CLI behind, in its own process group, still working.
            assert process_alive(orphan) and os.getpgid(orphan) == orphan

        downtime = [f"written while the service was down {n}" for n in range(DOWNTIME_MESSAGES)]
        for text in downtime:
            await alice.send(agent_jid, text)
        await alice.send(manager, "list")

        restart_at = time.monotonic()
        await service.start()
        started_in = time.monotonic() - restart_at
        # The new run ends the old run's CLI before anything else.
        assert not process_alive(orphan), "the CLI of the killed run is still alive"
        assert orphan not in processes_with_env(AGENT_ID_ENV, agent_id)

        # The cut turn is not run again unasked: the owner is told and may retry it.
        cut = await alice.expect("restarted while the agent was working", from_=agent_jid, timeout=20)
        assert "long job" in cut.body and "`retry`" in cut.body
        listing = await alice.expect("Your agents", from_=manager, timeout=20)
        assert agent_id in listing.body
        # What was written while the service was down was never run: it is, once each.
        for text in downtime:
            await alice.expect(f"MOCK_REPLY: {text}", from_=agent_jid, timeout=20)
        answered_at = time.monotonic()
        assert not any("MOCK_REPLY: [[sleep" in m.body for m in alice.messages)
        await alice.send(agent_jid, "retry")
        await alice.expect("Running again", from_=agent_jid)
        await alice.expect(f"MOCK_REPLY: [[sleep:{TURN}]] long job", from_=agent_jid, timeout=TURN + 20)
        await alice.send(agent_jid, "[[recall]]")
        recall = await alice.expect("MOCK_HISTORY", from_=agent_jid, timeout=20)
        assert "pelican" in recall.body  # the same Claude session, resumed
        await alice.expect(lambda m: m.body.startswith("✅ Done") and m.received_at >= recall.received_at, from_=agent_jid)

        # Every message answered is marked done in the state file, which is intact.
        await wait_until(lambda: inbound_states(home) == {"done"}, 5, "every message marked done")
        await service.stop()
        with contextlib.closing(sqlite3.connect(home / "state.db")) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        record_figures(
            "service_sigkill",
            downtime_messages_sent=len(downtime) + 1,
            downtime_messages_answered=len(downtime) + 1,
            restart_s=round(started_in, 2),
            all_answered_after_kill_s=round(answered_at - killed_at, 2),
        )
    finally:
        await service.stop()
        # A failed run must not leave fake CLIs behind.
        if agent_id:
            for pid in processes_with_env(AGENT_ID_ENV, agent_id):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)


async def test_a_clean_stop_with_many_agents_leaves_nothing_pending(prosody, user_client, tmp_path: Path) -> None:
    """A SIGTERM with a dozen agents online: exit 0, the whole shutdown logged, no traceback and no
    "Task was destroyed but it is pending" error (reported once with 23 agents; not reproduced here)."""
    home = tmp_path / "home"
    make_repositories(home / "work")
    service = ServiceProcess(home, service_config(prosody, home))
    try:
        await service.start()
        alice = await user_client("alice")
        for _ in range(12):
            await create_agent(alice, prosody.manager_jid)
        assert await service.kill(signal.SIGTERM) == 0
        output = service.output()
        assert "Agent Chat Service stopped" in output
        assert "Task was destroyed" not in output and "Traceback" not in output, output[-2000:]
    finally:
        await service.stop()
