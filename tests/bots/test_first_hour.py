"""What a new user trips over in the first hour: commands read leniently at the manager, typos answered
with the nearest command, a new agent that says hello, one word for what became of a prompt."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.service import create_agent, make_repositories, running_service, service_settings


async def test_the_manager_reads_the_first_word_and_suggests_the_nearest_command(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings):
        alice = await user_client("alice")
        await alice.send(manager, "Help me please")
        ignored = await alice.expect("ignored", from_=manager)
        assert "me please" in ignored.body
        await alice.expect("agentchat manager", from_=manager)
        for typo, meant in (("hlep", "help"), ("lsit", "list"), ("kil swift-fox", "kill swift-fox")):
            await alice.send(manager, typo)
            answer = await alice.expect("Unknown command", from_=manager)
            assert f"Did you mean `{meant}`?" in answer.body, answer.body
        await alice.send(manager, "xyzzy")
        assert "Send `help`" in (await alice.expect("Unknown command", from_=manager)).body
        await alice.send(manager, "help")
        assert "250 kB" in (await alice.expect("agentchat manager", from_=manager)).body


async def test_an_agent_started_without_a_task_says_hello_in_its_own_chat(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid, task="skip")
        hello = await alice.expect("ready in api", from_=agent, timeout=20)
        assert hello.body.startswith(f"👋 {agent_id}") and "send the first task" in hello.body


async def test_a_killed_agents_pending_prompt_is_denied_in_the_chat_and_the_audit_log(
    prosody, user_client, tmp_path: Path
) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        write = json.dumps({"file_path": str(work / "api" / "never.txt"), "content": "x"})
        await alice.send(agent, f"[[tool:Write {write}]]")
        await alice.expect("🔐 Permission #", from_=agent, timeout=20)
        await alice.send(settings.manager_jid, f"kill {agent_id}")
        assert "denied" in (await alice.expect("killed", from_=settings.manager_jid, timeout=20)).body
        assert "denied" in (await alice.expect("↪", from_=agent, timeout=10)).body
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(line["decision"], line["decided_by"]) for line in lines if line["agent"] == agent_id] == [("deny", "killed")]
    assert not (work / "api" / "never.txt").exists()


async def test_a_message_to_an_ended_agent_is_answered_with_who_ended_it(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        await alice.send(settings.manager_jid, f"kill {agent_id}")
        await alice.expect("killed", from_=settings.manager_jid, timeout=20)
        await alice.send(agent, "are you there?")
        answer = await alice.expect("was ended", from_=agent, timeout=10)
        assert f"⚰️ {agent_id} was ended by {alice.bare_jid}" in answer.body
        assert "not delivered" in answer.body and f"`new` to {settings.manager_jid}" in answer.body
    # Without the service too: Prosody's module answers.
    bob = await user_client("bob")
    await bob.send(agent, "hello?")
    assert "was ended" in (await bob.expect("⚰️", from_=agent, timeout=10)).body
