"""The manager's `new` dialogue over XMPP: cancel, re-asking, path escapes, two users, limits."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.support.service import create_agent, make_repositories, running_service, service_settings


async def start_dialogue(client, manager: str) -> None:
    await client.send(manager, "NEW")
    await client.expect("Which type?", from_=manager)
    await client.send(manager, "claude code")
    await client.expect("Which repository?", from_=manager)


async def test_cancel_and_unknown_input_reask(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        manager = settings.manager_jid
        await alice.send(manager, "create")
        await alice.expect("Which type?", from_=manager)
        await alice.send(manager, "cobol robot")
        reask = await alice.expect("Choose one", from_=manager)
        assert "1. Claude Code" in reask.body
        await alice.send(manager, "1")
        await alice.expect("Which repository?", from_=manager)
        await alice.send(manager, "cancel")
        await alice.expect("Cancelled", from_=manager)
        await alice.send(manager, "help")
        await alice.expect("Commands", from_=manager)
        assert service.supervisor is not None and service.supervisor.all() == []


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("../etc", "directly under"),
        ("/etc", "directly under"),
        ("api/../../etc", "directly under"),
        ("outside", "outside"),
        # XML cannot carry most C0 controls at all; these two it can.
        ("ap\ni", "control"),
        ("ap\u007fi", "control"),
        ("7", "number"),
        ("nope", "no repository"),
    ],
)
async def test_repository_escapes_are_refused(prosody, user_client, tmp_path: Path, choice: str, expected: str) -> None:
    settings = service_settings(prosody, tmp_path)
    base = make_repositories(settings.work.base_path)
    secret = tmp_path / "secret-repo"
    secret.mkdir()
    os.symlink(secret, base / "outside")
    async with running_service(settings) as service:
        alice = await user_client("alice")
        manager = settings.manager_jid
        await start_dialogue(alice, manager)
        await alice.send(manager, choice)
        refusal = await alice.expect("⚠️", from_=manager)
        assert expected in refusal.body.lower(), refusal.body
        assert "Choose one" in refusal.body
        await alice.send(manager, "cancel")
        await alice.expect("Cancelled", from_=manager)
        assert service.supervisor is not None and service.supervisor.all() == []


async def test_two_users_create_agents_at_once(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        bob = await user_client("bob")
        manager = settings.manager_jid
        # Interleave the two dialogues step by step: each user's answers stay in their own dialogue.
        await alice.send(manager, "new")
        await bob.send(manager, "new")
        await alice.expect("Which type?", from_=manager)
        await bob.expect("Which type?", from_=manager)
        await alice.send(manager, "1")
        await bob.send(manager, "1")
        await alice.expect("Which repository?", from_=manager)
        await bob.expect("Which repository?", from_=manager)
        await alice.send(manager, "api")
        await bob.send(manager, "web")
        await alice.expect("Repository: api", from_=manager)
        await bob.expect("Repository: web", from_=manager)
        await asyncio.gather(alice.send(manager, "hello from alice"), bob.send(manager, "hello from bob"))
        a = await alice.expect("created. Chat at", from_=manager, timeout=20)
        b = await bob.expect("created. Chat at", from_=manager, timeout=20)
        alice_agent, bob_agent = a.body.split()[-1], b.body.split()[-1]
        assert alice_agent != bob_agent
        assert "MOCK_REPLY: hello from alice" in (await alice.expect("MOCK_REPLY", from_=alice_agent, timeout=20)).body
        assert "MOCK_REPLY: hello from bob" in (await bob.expect("MOCK_REPLY", from_=bob_agent, timeout=20)).body
        assert service.supervisor is not None
        owners = {agent.id: agent.owner for agent in service.supervisor.all()}
        assert owners == {alice_agent.split("@")[0]: alice.bare_jid, bob_agent.split("@")[0]: bob.bare_jid}


async def test_limit_reached_says_how_to_free_a_slot(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path, agents={"maxConcurrent": 1})
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        manager = settings.manager_jid
        # The first agent is kept busy by a slow turn, so it cannot give its slot away.
        _, agent_jid = await create_agent(alice, manager, task="[[sleep:30]] long job")
        await alice.send(manager, "new")
        refusal = await alice.expect("limit", from_=manager, timeout=20)
        assert "kill <id>" in refusal.body
        await alice.send(agent_jid, "stop")
        await alice.expect("⏹", from_=agent_jid, timeout=20)
