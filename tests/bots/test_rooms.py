"""Rooms: people and several agents in one group chat, on the real Prosody's MUC component, with humans as
slixmpp clients in the room (xep_0045) and agents on the fake CLI (which calls the agents' MCP tools for real)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest
from slixmpp.jid import JID

from agentchat.agents.backends.claude import locate_claude
from agentchat.errors import BackendError
from tests.faults.support import wait_until
from tests.harness.sending import send_reaction, send_reply
from tests.support.mock_anthropic import MockAnthropic
from tests.harness.clients import ReceivedMessage, UserClient
from tests.support.service import create_agent, make_repositories, running_service, service_settings

PROMPT_ID = re.compile(r"#([0-9a-f]{4})")


async def join(client: UserClient, room: str, nick: str) -> None:
    if "xep_0045" not in client.xmpp.plugin:
        client.xmpp.register_plugin("xep_0045")
    await client.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), nick, maxstanzas=0, timeout=10)


def in_room(room: str, nick: str | None = None, text: str | None = None):  # type: ignore[no-untyped-def]
    """A predicate for a room line (from that occupant, containing that text)."""
    def test(message: ReceivedMessage) -> bool:
        return (message.type == "groupchat" and message.from_bare == room
                and (nick is None or JID(message.from_).resource == nick) and (text is None or text in message.body))
    return test


async def invite(alice: UserClient, manager: str, name: str, *who: str) -> None:
    """`room invite` each of ``who`` (agents' ids or people's JIDs) into the room ``name``, one by one."""
    for one in who:
        await alice.send(manager, f"room invite {one} {name}")
        await alice.expect("➕", from_=manager, timeout=20)


async def make_room(alice: UserClient, manager: str, name: str) -> str:
    await alice.send(manager, f"room new {name}")
    created = await alice.expect(f"Room {name} created", from_=manager, timeout=20)
    room = re.search(r"\((\S+@\S+)\)", created.body).group(1)  # type: ignore[union-attr]
    await join(alice, room, "alice")
    return room


async def test_a_room_with_two_people_and_agents_routes_by_mention_and_mode(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings) as service:
        alice, bob = await user_client("alice"), await user_client("bob")
        fox, fox_jid = await create_agent(alice, manager)
        hare, hare_jid = await create_agent(alice, manager)
        room = await make_room(alice, manager, "api-team")
        invited: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        bob.xmpp.register_plugin("xep_0249")
        bob.xmpp.add_event_handler(
            "groupchat_direct_invite",
            lambda msg: invited.done() or invited.set_result(str(msg["groupchat_invite"]["jid"])),
        )
        await invite(alice, manager, "api-team", fox, hare, bob.bare_jid)
        # bob got a XEP-0249 invitation to the room (what clients show), and may join it: it is members-only.
        assert await asyncio.wait_for(invited, 10) == room
        await join(bob, room, "bob")
        await wait_until(lambda: {fox, hare} <= set(service.rooms.rooms[room].agents), 10, "agents seated")  # type: ignore[union-attr]

        await alice.send(room, f"@{fox} what is 2+2?", mtype="groupchat")
        answer = await bob.expect(in_room(room, fox, "MOCK_REPLY"), timeout=20)
        assert "alice wrote:" in answer.body and "what is 2+2" in answer.body
        await bob.expect(in_room(room, fox, f"✅ {fox}: completed"), timeout=20)  # its status line, corrected in place
        # Idle, it went straight to working; and the status line's "completed" is the turn's only end line there.
        assert not [m.body for m in bob.messages if in_room(room, fox)(m) and m.body.startswith(("📥", "✅ Done"))]
        # A turn that has to wait behind another says so.
        await alice.send(room, f"@{fox} [[sleep:1]] a slow one", mtype="groupchat")
        await alice.send(room, f"@{fox} and a quick one", mtype="groupchat")
        await bob.expect(in_room(room, fox, f"📥 {fox}: submitted"), timeout=20)
        await bob.expect(in_room(room, fox, "and a quick one"), timeout=20)
        # A line that mentions no agent goes to none of them.
        await bob.send(room, "just chatting, nobody asked", mtype="groupchat")
        await alice.send(room, f"{hare}: and you?", mtype="groupchat")
        await alice.expect(in_room(room, hare, "and you?"), timeout=20)
        assert not any("nobody asked" in m.body for m in alice.messages if "MOCK_REPLY" in m.body)

        await alice.send(manager, "room mode api-team all")
        await alice.expect("every line of a person goes to every agent", from_=manager)
        await bob.send(room, "everyone: status please", mtype="groupchat")
        for agent in (fox, hare):
            await alice.expect(in_room(room, agent, "everyone: status please"), timeout=20)

        await alice.send(manager, "room list")
        listing = (await alice.expect("Your rooms", from_=manager)).body
        assert "api-team" in listing and fox in listing and hare in listing
    # The history is searchable: what was said in the room and in direct chats, only for who may see it.
    async with running_service(settings):
        await alice.send(manager, "search status please")
        found = (await alice.expect("🔎", from_=manager, timeout=20)).body
        assert "api-team" in found and "bob: everyone: status please" in found
        # The turns' status lines (corrected in place, marked no-permanent-store) are not history.
        assert "working —" not in found and "completed —" not in found
        await bob.send(manager, "search 2+2")
        assert "api-team" in (await bob.expect("🔎", from_=manager, timeout=20)).body


async def test_only_the_owner_answers_a_prompt_in_the_room_and_a_stranger_is_refused_once(
    prosody, user_client, tmp_path: Path
) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings):
        alice, bob = await user_client("alice"), await user_client("bob")
        fox, _ = await create_agent(alice, manager)
        room = await make_room(alice, manager, "guarded")
        await invite(alice, manager, "guarded", fox, bob.bare_jid)
        await join(bob, room, "bob")
        target = work / "api" / "from-the-room.txt"
        write = json.dumps({"file_path": str(target), "content": "room"})
        await alice.send(room, f"@{fox} [[tool:Write {write}]]", mtype="groupchat")
        prompt = await alice.expect(in_room(room, fox, "🔐 Permission #"), timeout=20)
        request_id = PROMPT_ID.search(prompt.body).group(1)  # type: ignore[union-attr]
        await alice.expect(in_room(room, fox, "input-required"), timeout=20)
        await bob.send(room, "yes", mtype="groupchat")
        refusal = await alice.expect(in_room(room, "agentchat", "only"), timeout=10)
        assert f"#{request_id}" in refusal.body and alice.bare_jid in refusal.body
        await bob.send(room, f"{request_id} yes", mtype="groupchat")  # asked again: no second refusal
        assert not target.exists()
        await alice.send(room, "yes", mtype="groupchat")
        await alice.expect(in_room(room, fox, "allowed"), timeout=20)
        await alice.expect(in_room(room, fox, f"✅ {fox}: completed"), timeout=20)
        assert target.read_text() == "room"
    assert sum(1 for m in alice.messages if m.type == "groupchat" and "only" in m.body and "agentchat" in m.from_) == 1


async def test_agents_talk_to_each_other_through_the_room_and_a_loop_stops_at_the_chain_limit(
    prosody, user_client, tmp_path: Path
) -> None:
    # No context lines: the fake CLI runs a [[tool:…]] directive wherever it is in a turn's text, the
    # room's earlier lines included (Claude would not).
    settings = service_settings(prosody, tmp_path, rooms={"chainLimit": 3, "contextLines": 0})
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings):
        alice = await user_client("alice")
        fox, _ = await create_agent(alice, manager)
        hare, _ = await create_agent(alice, manager)
        room = await make_room(alice, manager, "talk")
        await invite(alice, manager, "talk", fox, hare)
        # fox asks hare through its send_message tool (no prompt: the service's own tools are allowed).
        ask = json.dumps({"to": hare, "text": "what is the capital of France?"})
        await alice.send(room, f"@{fox} [[tool:mcp__agentchat__send_message {ask}]]", mtype="groupchat")
        asked = await alice.expect(in_room(room, fox, f"@{hare} what is the capital of France?"), timeout=20)
        assert asked.body == f"@{hare} what is the capital of France?"
        answered = await alice.expect(in_room(room, hare, "MOCK_REPLY"), timeout=20)
        assert f"{fox} wrote:" in answered.body
        # A ping-pong: fox hands hare a line that mentions fox back, and each echo mentions the other.
        ping = json.dumps({"to": hare, "text": f"ping @{fox}"})
        await alice.send(room, f"@{fox} [[tool:mcp__agentchat__send_message {ping}]]", mtype="groupchat")
        stop = await alice.expect(in_room(room, "agentchat", "⛓"), timeout=40)
        assert "3 agents" in stop.body
        turns = [m for m in alice.messages if m.type == "groupchat" and m.body.startswith("MOCK_REPLY") and "ping" in m.body]
        # hare (1 hop), fox (2), hare (3); fox would have been the 4th.
        assert [JID(m.from_).resource for m in turns] == [hare, fox, hare]


async def test_a_room_line_written_while_the_service_was_down_is_answered_once_after(
    prosody, user_client, tmp_path: Path
) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    alice = await user_client("alice")
    async with running_service(settings):
        fox, _ = await create_agent(alice, manager)
        room = await make_room(alice, manager, "night-shift")
        await alice.send(manager, f"room invite {fox} night-shift")
        await alice.expect("➕", from_=manager, timeout=20)
        await alice.send(room, f"@{fox} before the stop", mtype="groupchat")
        await alice.expect(in_room(room, fox, "MOCK_REPLY"), timeout=20)
    # The room stays (persistent, archived); alice is still in it.
    await alice.send(room, f"@{fox} written while you were away", mtype="groupchat")
    for start in range(2):  # two starts: the second one must not answer it again
        async with running_service(settings) as service:
            assert service.rooms is not None and room in service.rooms.rooms
            if start == 0:
                await alice.expect(answer_to(room, fox, "written while you were away"), timeout=30)
            await alice.send(room, f"@{fox} after start {start}", mtype="groupchat")
            await alice.expect(answer_to(room, fox, f"after start {start}"), timeout=30)
    answered = [m.body.split("\n")[1] for m in alice.messages
                if m.type == "groupchat" and m.body.startswith("MOCK_REPLY") and "\n" in m.body]
    assert answered.count(f"@{fox} written while you were away") == 1
    assert answered.count(f"@{fox} before the stop") == 1


def answer_to(room: str, nick: str, text: str):  # type: ignore[no-untyped-def]
    """An agent's answer to one line (the line itself, not the context a later turn quotes)."""
    def test(message: ReceivedMessage) -> bool:
        return in_room(room, nick)(message) and message.body.startswith("MOCK_REPLY") and \
            text in message.body.split("\n(The room", 1)[0]
    return test


@pytest.mark.claude_cli
async def test_the_real_cli_and_command_agents_in_one_room_answered_by_reply_and_by_reaction(
    prosody, user_client, tmp_path: Path
) -> None:
    try:
        claude = locate_claude(os.environ.get("CLAUDE_PATH"))
    except BackendError as exc:
        pytest.skip(f"real Claude Code CLI not available: {exc}")
    shout = {"label": "Shouter", "command": ["sh", "-c", "tr a-z A-Z"], "promptVia": "stdin"}
    async with MockAnthropic() as api:
        settings = service_settings(prosody, tmp_path, agents={"commandBackends": {"shout": shout}})
        settings.agents.claude.path = str(claude)
        settings.agents.claude.env = api.cli_env(home=tmp_path / "claude-home")
        work = make_repositories(settings.work.base_path)
        manager = settings.manager_jid
        async with running_service(settings):
            alice, bob = await user_client("alice"), await user_client("bob")
            real, _ = await create_agent(alice, manager)
            loud1, _ = await create_agent(alice, manager, kind="Shouter")
            loud2, _ = await create_agent(alice, manager, kind="Shouter")
            room = await make_room(alice, manager, "mixed")
            await invite(alice, manager, "mixed", real, loud1, loud2, bob.bare_jid)
            await join(bob, room, "bob")

            await bob.send(room, f"@{loud2} hello there", mtype="groupchat")
            await alice.expect(in_room(room, loud2, "HELLO THERE"), timeout=20)
            api.script_tool_use("Write", {"file_path": str(work / "api" / "one.txt"), "content": "1\n"},
                                        final_text="Wrote one.")
            await alice.send(room, f"@{real} write one.txt", mtype="groupchat")
            prompt = await alice.expect(in_room(room, real, "🔐 Permission #"), timeout=30)
            send_reply(alice, room, prompt, "yes", groupchat=True)  # XEP-0461, in the room
            await alice.expect(in_room(room, real, "Wrote one."), timeout=30)
            assert (work / "api" / "one.txt").read_text() == "1\n"
            api.script_tool_use("Write", {"file_path": str(work / "api" / "two.txt"), "content": "2\n"},
                                final_text="Wrote two.")
            await alice.send(room, f"@{real} and two.txt", mtype="groupchat")
            prompt = await alice.expect(in_room(room, real, "🔐 Permission #"), timeout=30)
            # bob reacts first: not his agent. Then alice's 👍 (reactions in a room point at the room's stanza-id).
            reacting_to = prompt.stanza["stanza_id"]["id"] or prompt.id
            send_reaction(bob, room, reacting_to, ["👍"], groupchat=True)
            await alice.expect(in_room(room, "agentchat", "only"), timeout=10)
            send_reaction(alice, room, reacting_to, ["👍"], groupchat=True)
            await alice.expect(in_room(room, real, "Wrote two."), timeout=30)
            assert (work / "api" / "two.txt").read_text() == "2\n"
        # Only the agent mentioned answered each line: the shouters never saw the Write requests.
        assert not any("WRITE ONE" in m.body or "AND TWO" in m.body for m in alice.messages)


async def test_a_file_sent_in_the_room_goes_to_the_agent_its_senders_next_line_mentions(
    prosody, user_client, tmp_path: Path
) -> None:
    """Conversations sends a picture as a message of its own (the URL, XEP-0066): bob's picture waits,
    and his next line that mentions an agent hands it over, into that agent's repository."""
    from tests.files.test_files_in import INBOX, files_settings, png
    from tests.harness.files import send_file_message, upload

    settings = files_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings) as service:
        alice, bob = await user_client("alice"), await user_client("bob")
        fox, _ = await create_agent(alice, manager)
        room = await make_room(alice, manager, "design")
        await invite(alice, manager, "design", fox, bob.bare_jid)
        await join(bob, room, "bob")
        await wait_until(lambda: fox in service.rooms.rooms[room].agents, 10, "agent seated")  # type: ignore[union-attr]

        picture = png(3, 3)
        url = await upload(bob, "mockup.png", picture, "image/png")
        send_file_message(bob, room, url, mtype="groupchat")
        waiting = await alice.expect(in_room(room, "agentchat", "📎 mockup.png from bob"), timeout=20)
        assert "next message mentions" in waiting.body, waiting.body
        assert not (work / "api" / INBOX / "mockup.png").exists()
        await bob.send(room, f"@{fox} does this layout work?", mtype="groupchat")
        saved = await alice.expect(in_room(room, text="📎 Saved"), timeout=20)
        assert f"{INBOX}/mockup.png" in saved.body and "the agent sees the picture" in saved.body
        answer = await alice.expect(in_room(room, fox, "MOCK_REPLY"), timeout=20)
        assert "does this layout work?" in answer.body and url not in answer.body
        assert "bob: [file mockup.png]" in answer.body  # the room's context names the file
        assert f"[image image/png, {len(picture)} bytes]" in answer.body
        assert (work / "api" / INBOX / "mockup.png").read_bytes() == picture
        # Taken once: the next mention carries no file.
        await bob.send(room, f"@{fox} thanks", mtype="groupchat")
        again = await alice.expect(in_room(room, fox, "thanks"), timeout=20)
        assert "[image" not in again.body


@pytest.mark.slow
async def test_an_answer_written_while_the_server_was_away_reaches_the_room_once_the_agent_is_back_in_it(
    isolated_prosody, user_client, tmp_path: Path
) -> None:
    # Prosody killed while an agent's room turn runs: its answer waits in the agent's outbox, and the new
    # session (nothing to resume) must not send it before the agent has joined the room again: the room
    # refuses a line from someone not in it, and the answer was lost (so were some in the benchmark's room
    # burst, whose agents' sessions a busy server could not resume).
    server = isolated_prosody
    settings = service_settings(server, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings) as service:
        alice = await user_client("alice", server=server)
        fox, _ = await create_agent(alice, manager)
        room = await make_room(alice, manager, "outage")
        await alice.send(manager, f"room invite {fox} outage")
        await alice.expect("➕", from_=manager, timeout=20)
        await alice.send(room, f"@{fox} [[sleep:1.5]] through the outage", mtype="groupchat")
        await alice.expect(in_room(room, fox, "working"), timeout=20)
        await server.kill()
        agent = service.supervisor.get(fox)  # type: ignore[union-attr]
        assert agent is not None and agent.chat is not None
        session = agent.chat.transport  # type: ignore[attr-defined]
        await wait_until(lambda: agent.current_turn is None, 20, "the turn ended while the server was away")
        assert session.unacked > 0, "the answer went out before the outage: the test proves nothing"
        await server.start()
        await wait_until(lambda: session.online and session.unacked == 0, 20, "the agent back, its outbox sent")
        await alice.connect()
        # Back in the room, with its last lines: the answer is among them (or comes now), once.
        await alice.xmpp.plugin["xep_0045"].join_muc_wait(JID(room), "alice", maxstanzas=50, timeout=10)
        await alice.send(room, f"@{fox} and after it", mtype="groupchat")
        await alice.expect(answer_to(room, fox, "and after it"), timeout=20)
    answered = [m for m in alice.messages if answer_to(room, fox, "through the outage")(m)]
    assert len(answered) == 1, "\n".join(m.body[:120] for m in alice.messages if in_room(room, fox)(m))
