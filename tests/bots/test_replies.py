"""Replies, quotes, corrections and invitations as clients send them, at an agent's chat."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.harness.sending import send, send_quote, send_reply
from tests.support.service import create_agent, make_repositories, running_service, service_settings

PROMPT_ID = re.compile(r"#([0-9a-f]{4})")


def write_directive(path: Path, content: str) -> str:
    return f"[[tool:Write {json.dumps({'file_path': str(path), 'content': content})}]]"


async def test_a_reply_to_a_prompt_answers_that_prompt(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        target = work / "api" / "replied.txt"
        await alice.send(agent, write_directive(target, "by reply"))
        prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        # Gajim and Dino: XEP-0461 with the prompt quoted as a XEP-0428 fallback.
        send_reply(alice, agent, prompt, "yes", nickname=agent_id)
        await alice.expect("allowed", from_=agent)
        await alice.expect("✅ Done", from_=agent, timeout=20)
        assert target.read_text() == "by reply"
        assert service.permissions.pending(agent_id) == []
        # Nothing of it reached Claude as a message.
        assert not any("MOCK_REPLY: > " in m.body for m in alice.messages)


async def test_a_conversations_quote_answers_the_prompt_and_a_reply_carries_a_reason(
    prosody, user_client, tmp_path: Path
) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        first, second = work / "api" / "first.txt", work / "api" / "second.txt"
        await alice.send(agent, write_directive(first, "1"))
        prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        send_quote(alice, agent, prompt, "yes")  # Conversations: "> 🔐 Permission #…" lines, then "yes"
        await alice.expect("allowed", from_=agent)
        await alice.expect("✅ Done", from_=agent, timeout=20)
        await alice.send(agent, write_directive(second, "2"))
        prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        send_reply(alice, agent, prompt, "no not this one")
        # The reason reached Claude as the tool's error.
        await alice.expect(lambda m: m.body.startswith("MOCK_TOOL_RESULT") and "not this one" in m.body,
                           from_=agent, timeout=20)
        await alice.expect("✅ Done", from_=agent, timeout=20)
    assert first.read_text() == "1"
    assert not second.exists()


async def test_a_quote_of_an_agent_message_goes_to_the_agent_with_its_quote(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid, task="say something")
        said = await alice.expect("MOCK_REPLY: say something", from_=agent, timeout=20)
        send_reply(alice, agent, said, "why?")
        answer = await alice.expect("why?", from_=agent, timeout=20)
        # The agent sees what the person replied to: the quote is part of its message.
        assert "> MOCK_REPLY: say something" in answer.body


async def test_a_correction_replaces_a_queued_message_and_is_refused_once_sent(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        send(alice, agent, "[[sleep:1.5]] busy", message_id="busy-1")
        send(alice, agent, "fix teh bug", message_id="typo-1")
        await alice.expect("Queued", from_=agent, timeout=20)
        send(alice, agent, "fix the bug", message_id="typo-2", replaces="typo-1")
        await alice.expect("✏️ Corrected", from_=agent, timeout=20)
        await alice.expect("MOCK_REPLY: fix the bug", from_=agent, timeout=20)
        # Too late for the first one: it ran already.
        send(alice, agent, "[[sleep:1.5]] not busy any more", message_id="busy-2", replaces="busy-1")
        late = await alice.expect("✏️", from_=agent, timeout=20)
        assert "already sent" in late.body
        await alice.expect("✅ Done", from_=agent, timeout=20)
    bodies = [m.body for m in alice.messages]
    assert "MOCK_REPLY: fix teh bug" not in bodies
    assert not any("not busy any more" in b for b in bodies)


async def test_room_invitations_are_declined_not_run(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        send(alice, agent, "come to our room", message_id="inv-1", invite_room="team@rooms.localhost")
        declined = await alice.expect("🚪", from_=agent, timeout=20)
        # How an agent does join one instead: through the manager.
        assert f"room invite {agent_id} <room>" in declined.body, declined.body
        send(alice, settings.manager_jid, "join please", message_id="inv-2", invite_room="team@rooms.localhost")
        await alice.expect("🚪", from_=settings.manager_jid, timeout=20)
        await alice.send(agent, "hello")
        await alice.expect("MOCK_REPLY: hello", from_=agent, timeout=20)
    assert not any("come to our room" in m.body for m in alice.messages if m.body.startswith("MOCK"))


async def test_a_message_behind_a_waiting_prompt_is_announced_once(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        _, agent = await create_agent(alice, settings.manager_jid)
        await alice.send(agent, write_directive(work / "api" / "x.txt", "x"))
        prompt = await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        request_id = PROMPT_ID.search(prompt.body).group(1)
        await alice.send(agent, "and also update the readme")
        notice = await alice.expect("still waiting", from_=agent, timeout=20)
        assert f"#{request_id}" in notice.body and "queued" in notice.body
        await alice.send(agent, "and the changelog")
        await alice.expect("Queued", from_=agent, timeout=20)
        await alice.send(agent, "yes")
        await alice.expect("MOCK_REPLY: and the changelog", from_=agent, timeout=30)
    assert sum("still waiting" in m.body for m in alice.messages) == 1
