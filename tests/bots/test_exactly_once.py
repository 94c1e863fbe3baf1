"""Conversations that hold: one ordered inbox per conversation, every message answered and run once, across
clean restarts and crashes, whatever ids the client sets (or none)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
from pathlib import Path

import pytest

from agentchat.app import Service
from agentchat.bots.manager import bot as manager_bot
from agentchat.config import Settings
from agentchat.xmpp import xep_0198
from tests.faults.support import record_figures
from tests.harness.clients import UserClient
from tests.harness.sending import send
from tests.support.service import create_agent, make_repositories, running_service, service_settings

pytestmark = pytest.mark.slow

RESTARTS = 20
NO_AGENT = re.compile(r"You have no agent named '([^']+)'")


def answers(client: UserClient, pattern: re.Pattern[str], from_: str) -> collections.Counter[str]:
    counted: collections.Counter[str] = collections.Counter()
    for message in client.messages:
        if message.from_bare == from_:
            counted.update(pattern.findall(message.body))
    return counted


async def test_restarts_with_commands_in_flight_replay_nothing(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    alice = await user_client("alice")
    agent_jid = ""
    for run in range(RESTARTS):
        async with running_service(settings):
            if run == 0:
                _, agent_jid = await create_agent(alice, manager)
            await alice.send(manager, f"status probe-{run}")
            await alice.expect(f"probe-{run}", from_=manager, timeout=20)
            await alice.send(agent_jid, f"echo {run}")
            await alice.expect(f"MOCK_REPLY: echo {run}", from_=agent_jid, timeout=20)
            # In flight when the stop comes: answered before it, or after the next start; once either way.
            await alice.send(manager, f"status late-{run}")
    async with running_service(settings):
        await alice.send(manager, "status final")
        await alice.expect("final", from_=manager, timeout=20)
        await alice.expect(f"late-{RESTARTS - 1}", from_=manager, timeout=20)
    seen = answers(alice, NO_AGENT, manager)
    expected = {f"probe-{n}" for n in range(RESTARTS)} | {f"late-{n}" for n in range(RESTARTS)} | {"final"}
    assert set(seen) == expected
    assert [name for name, count in seen.items() if count != 1] == []
    echoes = answers(alice, re.compile(r"MOCK_REPLY: (echo \d+)"), agent_jid)
    assert len(echoes) == RESTARTS and set(echoes.values()) == {1}
    # Nothing was asked twice of the manager either: no dialogue reopened, no "Unknown command".
    assert not any("Unknown command" in m.body for m in alice.messages)
    record_figures("restarts", restarts=RESTARTS, manager_commands=sum(seen.values()), agent_messages=len(echoes),
                   answered_twice=0)


async def test_id_less_and_id_reusing_clients_are_each_answered_once(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    alice = await user_client("alice")
    async with running_service(settings):
        _, agent = await create_agent(alice, manager)
        # No id at all, and the same text twice: two messages, both run.
        send(alice, agent, "no id at all")
        send(alice, agent, "no id at all")
        # A client that restarts its counter: "1" again, with another text, is another message.
        send(alice, agent, "first under id 1", message_id="1")
        send(alice, agent, "second under id 1", message_id="1")
        for text in ("no id at all", "no id at all", "first under id 1", "second under id 1"):
            await alice.expect(f"MOCK_REPLY: {text}", from_=agent, timeout=20)
        send(alice, manager, "status no-id")
        await alice.expect("no-id", from_=manager)
    async with running_service(settings):
        send(alice, agent, "after the restart", message_id="1")
        await alice.expect("MOCK_REPLY: after the restart", from_=agent, timeout=20)
        send(alice, manager, "status after")
        await alice.expect("after", from_=manager)
    replies = collections.Counter(m.body for m in alice.messages if m.body.startswith("MOCK_REPLY"))
    assert replies == {
        "MOCK_REPLY: no id at all": 2,
        "MOCK_REPLY: first under id 1": 1,
        "MOCK_REPLY: second under id 1": 1,
        "MOCK_REPLY: after the restart": 1,
    }
    assert answers(alice, NO_AGENT, manager) == {"no-id": 1, "after": 1}


async def test_a_burst_of_dialogue_steps_sent_without_waiting_is_read_in_order(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path, ("api", "web", "docs"))
    manager = settings.manager_jid
    alice = await user_client("alice")
    steps: list[tuple[str, str]] = []
    for n in range(12):  # 48 steps: a phone sending what it queued offline
        repo = ("api", "web", "docs")[n % 3]
        steps += [("new", "Which type?"), ("1", "Which repository?"), (repo, f"Repository: {repo}.")]
        steps.append(("cancel", "Cancelled") if n % 4 else ("skip", "created. Chat at"))
    steps += [("help", "agentchat manager"), ("status burst-end", "burst-end")]
    async with running_service(settings):
        for text, _ in steps:
            send(alice, manager, text, message_id=alice.xmpp.new_id())
        await alice.expect("burst-end", from_=manager, timeout=60)
    # Every answer came in the order the steps were sent: the type never taken for the repository.
    replies = [m.body for m in alice.messages if m.from_bare == manager and not m.body.startswith("⏳")]
    assert not any("I don't know the type" in r for r in replies), replies
    assert len(replies) == len(steps)
    for (text, expected), reply in zip(steps, replies, strict=True):
        assert expected in reply, f"{text!r} was answered {reply!r}"


def simulate_crash(service: Service) -> list[asyncio.Task[None]]:
    """What a SIGKILL leaves: every link cut without a goodbye or a last acknowledgement, nothing drained."""
    sessions = [service.manager_session] + [a.chat.transport for a in service.supervisor.all() if a.chat]  # type: ignore[union-attr,attr-defined]
    for session in sessions:
        assert session is not None
        session._stopping = True
        session.client.abort()
    cleanup = [asyncio.get_running_loop().create_task(service.stop())]
    return cleanup


async def test_a_crash_between_recording_and_acknowledging_loses_nothing_and_answers_once(
    prosody, user_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    alice = await user_client("alice")
    recorded = asyncio.Event()
    # First run: the manager records messages but acknowledges none, and never answers: it is "killed"
    # after the commit and before the acknowledgement.
    monkeypatch.setattr(xep_0198.Hold, "release", lambda self: None)
    hung = asyncio.Event()

    async def hang(self, received):  # type: ignore[no-untyped-def]
        recorded.set()
        await hung.wait()

    monkeypatch.setattr(manager_bot.ManagerBot, "_answer", hang)
    service = Service(settings)
    await service.start()
    try:
        await alice.send(manager, "status during-the-crash")
        await asyncio.wait_for(recorded.wait(), 10)
        [(count,)] = await service.store.query("SELECT COUNT(*) FROM inbound WHERE body = 'status during-the-crash'")
        assert count == 1
    finally:
        for task in simulate_crash(service):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
    monkeypatch.undo()
    # The server still holds the unacknowledged stanza and hands it over again; the state file has it too.
    async with running_service(settings):
        await alice.expect("during-the-crash", from_=manager, timeout=20)
        await alice.send(manager, "status after-the-crash")
        await alice.expect("after-the-crash", from_=manager, timeout=20)
    assert answers(alice, NO_AGENT, manager) == {"during-the-crash": 1, "after-the-crash": 1}


async def test_a_crash_before_recording_is_answered_after_the_restart(
    prosody, user_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: Settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    alice = await user_client("alice")
    arrived = asyncio.Event()
    never = asyncio.Event()

    async def stuck_store(self, bot, arrivals):  # type: ignore[no-untyped-def]
        arrived.set()
        await never.wait()

    service = Service(settings)
    await service.start()
    monkeypatch.setattr(type(service.store), "record_arrivals", stuck_store)
    try:
        await alice.send(manager, "status lost-in-the-crash")
        await asyncio.wait_for(arrived.wait(), 10)
    finally:
        for task in simulate_crash(service):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
    monkeypatch.undo()
    async with running_service(settings):
        await alice.expect("lost-in-the-crash", from_=manager, timeout=20)
    assert answers(alice, NO_AGENT, manager) == {"lost-in-the-crash": 1}
