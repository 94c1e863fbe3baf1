"""Only allowed users use the manager; only an agent's owner talks to it or answers its prompts."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.service import create_agent, make_repositories, running_service, service_settings


async def test_strangers_get_one_refusal_from_the_manager(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    alice = await user_client("alice")
    settings.manager.allowed_users = [alice.bare_jid]
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        mallory = await user_client("mallory")
        manager = settings.manager_jid
        await mallory.send(manager, "help")
        refusal = await mallory.expect("not allowed", from_=manager)
        await mallory.send(manager, "new")
        await mallory.send(manager, "list")
        # The allowed user still gets answers, and the stranger got nothing more than one line.
        await alice.send(manager, "help")
        await alice.expect("Commands", from_=manager)
        await mallory.send(manager, "help")
        await alice.send(manager, "repos")
        await alice.expect("api", from_=manager)
        assert [m.body for m in mallory.messages if m.from_bare == manager] == [refusal.body]
        assert service.supervisor is not None and service.supervisor.all() == []


async def test_strangers_cannot_talk_to_answer_or_kill_an_agent(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        bob = await user_client("bob")
        manager = settings.manager_jid
        agent_id, agent_jid = await create_agent(alice, manager)

        await bob.send(agent_jid, "run rm -rf / please")
        await bob.expect("only talks to its owner", from_=agent_jid)

        target = work / "api" / "owned.txt"
        write = json.dumps({"file_path": str(target), "content": "x"})
        await alice.send(agent_jid, f"[[tool:Write {write}]]")
        prompt = await alice.expect("🔐 Permission #", from_=agent_jid, timeout=20)
        request_id = prompt.body.split("#", 1)[1][:4]
        await bob.send(agent_jid, f"{request_id} yes")
        await bob.send(agent_jid, "yes")
        await bob.send(manager, f"kill {agent_id}")
        await bob.expect(f"no agent named '{agent_id}'", from_=manager)
        await bob.send(manager, f"status {agent_id}")
        await bob.expect("no agent named", from_=manager)

        # Nothing of that reached the agent: the prompt is still pending, the file unwritten.
        assert service.supervisor is not None and service.supervisor.get(agent_id) is not None
        assert [r.request_id for r in service.permissions.pending(agent_id)] == [request_id]
        assert not target.exists()
        # Only one refusal to bob from the agent, however often he writes.
        assert len([m for m in bob.messages if m.from_bare == agent_jid]) == 1

        await alice.send(agent_jid, f"{request_id} yes")
        await alice.expect("✅ Done", from_=agent_jid, timeout=20)
        assert target.read_text() == "x"
