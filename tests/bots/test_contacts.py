"""Contacts that appear by themselves: the manager once a person talks to it, each agent when it is
created (named after itself and its repository), gone when it is killed; as an online client sees them."""

from __future__ import annotations

from pathlib import Path

from tests.support.service import create_agent, make_repositories, running_service, service_settings


async def test_the_manager_and_each_agent_appear_in_the_roster_and_a_killed_agent_leaves_it(
    prosody, user_client, tmp_path: Path
) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    manager = settings.manager_jid
    async with running_service(settings):
        alice = await user_client("alice")
        await alice.send(manager, "help")
        await alice.expect("agentchat manager", from_=manager)
        await alice.wait_until(lambda: alice.roster_item(manager) is not None, "the manager in the roster")
        assert alice.roster_item(manager) == {"subscription": "both", "name": "agentchat manager", "groups": ["agentchat"]}

        agent_id, agent = await create_agent(alice, manager)
        await alice.wait_until(lambda: alice.roster_item(agent) is not None, "the agent in the roster")
        assert alice.roster_item(agent) == {"subscription": "both", "name": f"{agent_id} (api)", "groups": ["agentchat"]}
        # Its presence comes without asking: the subscription is mutual.
        await alice.wait_until(lambda: any(p.from_.split("/")[0] == agent for p in alice.presences), "the agent's presence")

        await alice.send(manager, f"kill {agent_id}")
        await alice.expect("killed", from_=manager, timeout=20)
        await alice.wait_until(lambda: alice.roster_item(agent) is None, "the killed agent out of the roster")
        assert any(p.jid == agent and p.subscription == "remove" for p in alice.roster_pushes)
        assert alice.roster_item(manager) is not None
