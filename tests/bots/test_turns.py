"""A turn's life at the edges: cut by a stop (told, `retry`), a session the CLI already holds, cost over
several processes, a stop the CLI never acknowledges, and a killed agent's connection closed for good."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

from agentchat.agents.backends.claude import driver
from tests.faults.support import wait_until
from tests.support.service import create_agent, make_repositories, running_service, service_settings, show_to_agents


def fake_cli_log(path: Path) -> list[dict[str, object]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return []


async def test_a_turn_cut_by_a_stop_is_announced_and_runs_again_only_on_retry(
    prosody, user_client, tmp_path: Path, tmp_path_factory
) -> None:
    settings = service_settings(prosody, tmp_path)
    # Outside the state directory, which the agent's sandbox hides.
    log = show_to_agents(settings, tmp_path_factory.mktemp("logs"), writable=True) / "cli.jsonl"
    settings.agents.claude.env["FAKE_CLAUDE_LOG"] = str(log)
    make_repositories(settings.work.base_path)
    alice = await user_client("alice")
    async with running_service(settings):
        _, agent = await create_agent(alice, settings.manager_jid)
        await alice.send(agent, "[[sleep:4]] the long job")
        await wait_until(lambda: any("the long job" in json.dumps(e) for e in fake_cli_log(log)), 10, "the CLI has it")
    cut = await alice.expect("agentchat is stopping", from_=agent, timeout=10)
    assert "`retry`" in cut.body
    async with running_service(settings):
        told = await alice.expect("restarted while the agent was working", from_=agent, timeout=20)
        assert "the long job" in told.body
        await alice.send(agent, "status")
        assert "Cut by a restart" in (await alice.expect("📊", from_=agent)).body
        await alice.send(agent, "something else")
        await alice.expect("MOCK_REPLY: something else", from_=agent, timeout=20)
        await alice.send(agent, "retry")
        await alice.expect("Running again", from_=agent)
        await alice.expect("MOCK_REPLY: [[sleep:4]] the long job", from_=agent, timeout=20)
        await alice.send(agent, "retry")
        await alice.expect("Nothing to retry", from_=agent)
    assert sum(m.body == "MOCK_REPLY: [[sleep:4]] the long job" for m in alice.messages) == 1


async def test_a_session_the_cli_already_holds_is_resumed(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    alice = await user_client("alice")
    async with running_service(settings):
        agent_id, agent = await create_agent(alice, settings.manager_jid, task="the word is heron")
        await alice.expect("✅ Done", from_=agent, timeout=20)
    # The record says the session never started (a crash before that was saved); the CLI has it.
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:
        db.execute("UPDATE agents SET session_started = 0 WHERE id = ?", (agent_id,))
        db.commit()
    async with running_service(settings):
        await alice.send(agent, "[[recall]]")
        recall = await alice.expect("MOCK_HISTORY", from_=agent, timeout=20)
        assert "heron" in recall.body
        await alice.send(agent, "and again")
        await alice.expect("MOCK_REPLY: and again", from_=agent, timeout=20)
    assert not any("already in use" in m.body for m in alice.messages)


async def test_the_cost_adds_up_over_processes(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    alice = await user_client("alice")
    async with running_service(settings):
        _, agent = await create_agent(alice, settings.manager_jid, task="one")
        await alice.expect("✅ Done", from_=agent, timeout=20)
    async with running_service(settings):  # a new CLI process: its own total starts at zero
        await alice.send(agent, "two")
        await alice.expect("✅ Done", from_=agent, timeout=20)
        await alice.send(agent, "status")
        status = (await alice.expect("📊", from_=agent)).body
    assert "cost so far: $0.0010" in status, status  # 2 × the fake CLI's $0.0005 per turn


async def test_a_stop_the_cli_never_acknowledges_ends_its_process(prosody, user_client, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(driver, "INTERRUPT_TIMEOUT", 1.0)
    settings = service_settings(prosody, tmp_path)
    settings.agents.claude.env["FAKE_CLAUDE_IGNORE_INTERRUPT"] = "1"
    make_repositories(settings.work.base_path)
    alice = await user_client("alice")
    async with running_service(settings) as service:
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        await alice.send(agent, "[[sleep:30]] hangs")
        assert service.supervisor is not None
        running = service.supervisor.get(agent_id)
        assert running is not None
        await wait_until(lambda: running.in_turn and running.process_running, 10, "the turn runs")
        await alice.send(agent, "stop")
        forced = await alice.expect("did not stop when asked", from_=agent, timeout=10)
        assert "process was ended" in forced.body
        await wait_until(lambda: not running.process_running and not running.in_turn, 5, "the process ended")
        await alice.send(agent, "after the stop")
        await alice.expect("MOCK_REPLY: after the stop", from_=agent, timeout=20)


async def test_a_killed_agent_leaves_no_connection_behind(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    alice = await user_client("alice")
    async with running_service(settings) as service:
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        assert service.supervisor is not None
        killed = service.supervisor.get(agent_id)
        assert killed is not None and killed.chat is not None
        session = killed.chat.transport  # type: ignore[attr-defined]
        await alice.send(settings.manager_jid, f"kill {agent_id}")
        await alice.expect("killed", from_=settings.manager_jid, timeout=20)
        attempts = session.attempts
        # Its account is gone: a session that tried again would fail to log in over and over.
        await asyncio.sleep(2 * settings.xmpp.reconnect_interval + 0.5)
        assert session.attempts == attempts and not session.online
        assert session.client.transport is None
        assert session._reconnector is None and session._keepalive is None
        # And nothing of slixmpp's own is scheduled to bring it back (its keepalive used to).
        assert session.client.scheduled_events == {}
        # A second kill of the same agent is a clear no-op.
        await alice.send(settings.manager_jid, f"kill {agent_id}")
        await alice.expect("no agent named", from_=settings.manager_jid)
