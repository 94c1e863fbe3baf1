"""Messages that buzz only when they should: a long turn in `status` mode is one status message corrected in place
(XEP-0308) plus the answer and the turn's end; in `full` mode every tool line is a message. A prompt answered on
one device is corrected on the others (carbons). Presence shows the state at a glance. A text-only client gets
everything as text, as before."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from agentchat.store.records import AgentStatus
from tests.harness.clients import DEFAULT_PLUGINS, ReceivedMessage, UserClient
from tests.support.service import create_agent, make_repositories, running_service, service_settings

PROMPT_ID = re.compile(r"#([0-9a-f]{4})")
# A client that shows corrections (as Conversations, Gajim, Dino do) and gets its other devices' messages.
MODERN = (*DEFAULT_PLUGINS, "xep_0308", "xep_0280")
TOOLS = 30


def correction_of(message: ReceivedMessage) -> str | None:
    return message.stanza["replace"]["id"] or None


def starts(messages: Sequence[ReceivedMessage], *beginnings: str) -> None:
    """There are exactly these messages, each starting as given."""
    bodies = [m.body for m in messages]
    shown = [body[:60] for body in bodies]
    assert len(bodies) == len(beginnings), shown
    assert all(body.startswith(start) for body, start in zip(bodies, beginnings)), shown


def from_agent(client: UserClient, agent: str, since: int = 0) -> list[ReceivedMessage]:
    return [m for m in client.messages[since:] if m.from_bare == agent]


async def modern_client(prosody, user_client, local: str, plugins: Sequence[str] = MODERN) -> UserClient:
    """A fresh account whose client shows corrections (its features are what the agent discovers)."""
    placeholder = await user_client(local, connect=False)
    client = UserClient(placeholder.jid, placeholder.xmpp.password, prosody.host, prosody.c2s_port,
                        plugins=plugins, ca_file=prosody.ca_file)
    await client.connect()
    return client


@pytest.fixture
async def clients() -> list[UserClient]:
    made: list[UserClient] = []
    yield made
    for client in made:
        await client.disconnect()


async def test_a_long_turn_in_status_mode_buzzes_at_most_three_times(prosody, user_client, clients, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await modern_client(prosody, user_client, "alice")
        clients.append(alice)
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        await alice.send(agent, "status")
        status = await alice.expect("📊", from_=agent, timeout=20)
        assert "Progress: status (chosen by what your client shows)" in status.body
        since = len(alice.messages)
        chat_states_before = len(alice.chat_states)
        # 30 tools in about 3.5 s: long enough for "typing…" and a correction before the last.
        await alice.send(agent, f"[[tools:{TOOLS} 0.12]] go through the files")
        await alice.expect("✅ Done", from_=agent, timeout=30)
        turn = from_agent(alice, agent, since)
        buzzing = [m for m in turn if correction_of(m) is None]
        corrections = [m for m in turn if correction_of(m) is not None]
        assert len(buzzing) <= 3, [m.body[:60] for m in buzzing]
        starts(buzzing, "⏳ Working · 1 tool · ", f"MOCK_REPLY: {TOOLS} tools used", "✅ Done · 31 steps · ")
        status_id = buzzing[0].id
        # Every correction names the original status message, and the last one has the whole turn.
        assert corrections and all(correction_of(m) == status_id for m in corrections)
        assert corrections[-1].body.startswith(f"🔧 {TOOLS} tools used")
        assert "📖 Read file29.txt" in corrections[-1].body
        # The agent's remarks between tools were progress, not answers: in the status message only.
        assert not any(m.body.startswith("Looking at part") for m in buzzing)
        assert any("💬 Looking at part" in m.body for m in [buzzing[0], *corrections])
        # "typing…" told the owner it was working.
        assert any(s.state == "composing" for s in alice.chat_states[chat_states_before:])
        assert service.supervisor.get(agent_id).record.progress is None


async def test_full_mode_sends_every_tool_line_and_quiet_none(prosody, user_client, clients, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await modern_client(prosody, user_client, "alice")
        clients.append(alice)
        _, agent = await create_agent(alice, settings.manager_jid)
        await alice.send(agent, "progress full")
        await alice.expect("Progress: full", from_=agent, timeout=20)
        since = len(alice.messages)
        await alice.send(agent, f"[[tools:{TOOLS}]] go")
        await alice.expect("✅ Done", from_=agent, timeout=30)
        turn = from_agent(alice, agent, since)
        assert all(correction_of(m) is None for m in turn)
        assert len([m for m in turn if m.body.startswith("📖 Read")]) == TOOLS
        assert len([m for m in turn if m.body.startswith("Looking at part")]) == 3

        await alice.send(agent, "progress quiet")
        await alice.expect("Progress: quiet", from_=agent, timeout=20)
        since = len(alice.messages)
        await alice.send(agent, f"[[tools:{TOOLS}]] again")
        await alice.expect("✅ Done", from_=agent, timeout=30)
        starts(from_agent(alice, agent, since), f"MOCK_REPLY: {TOOLS} tools used", "✅ Done · 31 steps · ")


async def test_a_client_without_corrections_gets_full_progress_and_every_text_command(prosody, user_client, tmp_path: Path) -> None:
    """Profanity-like: no corrections, no forms. Progress, modes, edits and answers all work as text."""
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings):
        plain = await user_client("plain")
        _, agent = await create_agent(plain, settings.manager_jid)
        await plain.send(agent, "status")
        assert "Progress: full (chosen by what your client shows)" in (await plain.expect("📊", from_=agent)).body
        since = len(plain.messages)
        await plain.send(agent, "[[tools:3]] a few")
        await plain.expect("✅ Done", from_=agent, timeout=20)
        assert len([m for m in from_agent(plain, agent, since) if m.body.startswith("📖 Read")]) == 3
        assert all(correction_of(m) is None for m in from_agent(plain, agent, since))

        await plain.send(agent, "mode")
        listed = await plain.expect("🔧 Permission mode: default. Modes:", from_=agent)
        assert "• plan:" in listed.body and "• auto:" in listed.body and "not allowed on this server" in listed.body
        await plain.send(agent, "mode plan")
        await plain.expect("Permission mode: plan (switched now)", from_=agent, timeout=20)
        await plain.send(agent, "mode of transport is a bus")  # several words: a message for the agent
        await plain.expect("MOCK_REPLY: mode of transport is a bus", from_=agent, timeout=20)
        await plain.expect("✅ Done", from_=agent, timeout=20)
        await plain.send(agent, "mode default")
        await plain.expect("Permission mode: default", from_=agent, timeout=20)
        await plain.send(agent, "model")
        await plain.expect("🧠 Model: default", from_=agent)
        # Our own switches are not news from Claude Code ("… is in plan mode now" is for its own).
        assert not any("mode now" in m.body for m in from_agent(plain, agent))

        command = {"command": "echo asked > t.txt", "description": "Write t.txt"}
        await plain.send(agent, f"[[tool:Bash {json.dumps(command)}]]")
        prompt = await plain.expect("🔐 Permission #", from_=agent, timeout=20)
        assert "edit <command>" in prompt.body
        await plain.send(agent, "edit echo typed > t.txt")
        await plain.expect("allowed", from_=agent, timeout=20)
        await plain.expect("✅ Done", from_=agent, timeout=20)
        assert (work / "api" / "t.txt").read_text() == "typed\n"
        # Nothing was corrected for a client that would show corrections as new messages.
        assert all(correction_of(m) is None for m in from_agent(plain, agent))


async def test_a_prompt_answered_on_one_device_is_corrected_on_the_other(prosody, user_client, clients, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings):
        phone = await modern_client(prosody, user_client, "alice")
        desktop = UserClient(phone.jid, phone.xmpp.password, prosody.host, prosody.c2s_port, plugins=MODERN,
                             ca_file=prosody.ca_file)
        await desktop.connect()
        clients += [phone, desktop]
        for device in (phone, desktop):
            await device.xmpp.plugin["xep_0280"].enable()
        carbons: list[str] = []
        desktop.xmpp.add_event_handler("carbon_sent", lambda message: carbons.append(message["carbon_sent"]["body"]))
        _, agent = await create_agent(phone, settings.manager_jid)
        target = work / "api" / "two-devices.txt"
        await phone.send(agent, f"[[tool:Write {json.dumps({'file_path': str(target), 'content': 'hi'})}]]")
        on_phone = await phone.expect("🔐 Permission #", from_=agent, timeout=20)
        on_desktop = await desktop.expect("🔐 Permission #", from_=agent, timeout=20)
        assert on_phone.id == on_desktop.id
        request_id = PROMPT_ID.search(on_phone.body).group(1)
        await phone.send(agent, "yes")
        corrected = await desktop.expect(lambda m: correction_of(m) == on_desktop.id, from_=agent, timeout=20)
        assert corrected.body.splitlines()[0] == on_desktop.body.splitlines()[0]
        assert corrected.body.splitlines()[-1] == "✅ allowed by you" and "Reply:" not in corrected.body
        await phone.expect(lambda m: correction_of(m) == on_phone.id, from_=agent, timeout=20)
        await desktop.expect("✅ Done", from_=agent, timeout=20)
        assert target.read_text() == "hi"
        # The desktop saw the phone's answer (carbons), and no "↪ allowed" line buzzed either device.
        async with asyncio.timeout(5):
            while "yes" not in carbons:
                await asyncio.sleep(0.02)
        assert not any(m.body.startswith(f"↪ #{request_id}") for m in from_agent(desktop, agent))


async def test_presence_shows_idle_working_waiting_and_stopped(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        shows: list[tuple[str, str]] = []
        alice.xmpp.add_event_handler(
            "presence", lambda p: shows.append((p["show"], p["status"])) if p["from"].bare == agent else None
        )
        await alice.send(agent, "[[sleep:1]] think")
        await alice.expect("✅ Done", from_=agent, timeout=20)
        await alice.send(agent, '[[tool:Bash {"command": "true"}]]')
        await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        async with asyncio.timeout(10):  # a busy state is shown once it lasted 250 ms
            while ("dnd", "waiting for permission") not in shows:
                await asyncio.sleep(0.02)
        await alice.send(agent, "yes")
        await alice.expect("✅ Done", from_=agent, timeout=20)
        await service.supervisor.get(agent_id).stop_process(AgentStatus.STOPPED)
        async with asyncio.timeout(10):
            while not shows or shows[-1][0] != "xa":
                await asyncio.sleep(0.02)
        seen = [show for show, _ in shows]
        assert ("away", "working") in shows and ("dnd", "waiting for permission") in shows
        assert ("chat", "idle") in shows and shows[-1] == ("xa", "stopped — send a message to resume")
        assert seen.index("away") < seen.index("dnd")


async def test_one_device_without_corrections_makes_progress_full(prosody, user_client, clients, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        phone = await modern_client(prosody, user_client, "alice")
        clients.append(phone)
        _, agent = await create_agent(phone, settings.manager_jid)
        await phone.send(agent, "progress")
        assert "Progress: status (auto" in (await phone.expect("📶 Progress", from_=agent, timeout=20)).body
        # A second client without XEP-0308 (Profanity-like) comes online: corrections would be new messages there.
        old = UserClient(phone.jid, phone.xmpp.password, prosody.host, prosody.c2s_port, ca_file=prosody.ca_file)
        await old.connect()
        clients.append(old)
        async with asyncio.timeout(10):
            while True:
                await phone.send(agent, "progress")
                if "Progress: full (auto" in (await phone.expect("📶 Progress", from_=agent, timeout=20)).body:
                    break
        await old.disconnect()
        async with asyncio.timeout(10):
            while True:
                await phone.send(agent, "progress")
                if "Progress: status (auto" in (await phone.expect("📶 Progress", from_=agent, timeout=20)).body:
                    break
