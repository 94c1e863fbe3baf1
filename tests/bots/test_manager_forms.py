"""The manager's forms (XEP-0050 ad-hoc commands with XEP-0004 forms), driven by a slixmpp client with the
xep_0050 plugin as Gajim drives them: New agent, List agents, Kill agent; the same rules as the text commands."""

from __future__ import annotations

from pathlib import Path

from agentchat.agents.backends.factory import available_backends

from agentchat.xmpp.session import RESOURCE
from tests.harness.adhoc import AdHoc
from tests.support.service import create_agent, make_repositories, running_service, service_settings


async def test_the_manager_lists_its_forms_on_its_full_jid(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings):
        alice = await user_client("alice")
        commands = await AdHoc(alice, f"{settings.manager_jid}/{RESOURCE}").commands()
        assert commands == {"new": "New agent", "list": "List agents", "kill": "Kill agent"}


async def test_new_agent_by_form_creates_it_and_runs_the_first_task(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path, ("api", "web"))
    async with running_service(settings) as service:
        alice = await user_client("alice")
        manager = AdHoc(alice, f"{settings.manager_jid}/{RESOURCE}")
        page = await manager.execute("new")
        assert page.status == "executing" and page.actions == ["complete"]
        # The types `new` offers: Claude Code first, then whichever engines this machine has installed.
        offered = [kind for kind, _label in available_backends(settings.agents)]
        assert page.fields["type"]["type"] == "list-single" and page.options("type") == offered and offered[0] == "claude"
        assert page.options("repository") == ["api", "web"]
        assert page.fields["task"]["type"] == "text-multi"
        done = await manager.submit(page, {"type": "claude", "repository": "web", "task": "say hello\nin two lines"})
        assert done.status == "completed", done
        assert "created. Chat at" in done.text, done.notes
        agent_jid = done.text.split()[-1]
        agent_id = agent_jid.split("@")[0]
        # The first task went to the agent, whole: the same path as the dialogue's.
        reply = await alice.expect("MOCK_REPLY: say hello\nin two lines", from_=agent_jid, timeout=20)
        assert reply.body.endswith("in two lines")
        agent = service.supervisor.get(agent_id)
        assert agent is not None and agent.record.repo.endswith("/web") and agent.owner == alice.bare_jid


async def test_new_agent_form_refuses_what_the_dialogue_refuses(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    work = make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        manager = AdHoc(alice, f"{settings.manager_jid}/{RESOURCE}")
        page = await manager.execute("new")
        # A repository that is not offered (the field's options) is refused before anything is created.
        (work / "later").mkdir()
        done = await manager.submit(page, {"repository": "../etc"})
        assert done.status == "completed" and done.notes[0][0] == "error", done
        assert "not one of the choices" in done.text
        assert service.supervisor.owned_by(alice.bare_jid) == []


async def test_list_agents_is_a_table_and_kill_asks_for_confirmation(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice")
        agent_id, agent_jid = await create_agent(alice, settings.manager_jid)
        manager = AdHoc(alice, f"{settings.manager_jid}/{RESOURCE}")

        listed = await manager.execute("list")
        assert listed.status == "completed"
        columns, rows = listed.table
        assert columns == ["id", "state", "repository", "mode", "chat"]
        assert rows == [{"id": agent_id, "state": "idle", "repository": "api", "mode": "default", "chat": agent_jid}]

        page = await manager.execute("kill")
        assert page.options("agent") == [agent_id] and page.value("confirm") is False
        unconfirmed = await manager.submit(page, {"agent": agent_id})
        assert "not killed" in unconfirmed.text and service.supervisor.get(agent_id) is not None

        page = await manager.execute("kill")
        killed = await manager.submit(page, {"agent": agent_id, "confirm": True})
        assert f"Agent {agent_id} killed" in killed.text, killed.notes
        assert service.supervisor.get(agent_id) is None
        assert not await service.provisioner.account_exists(agent_id)
        empty = await manager.execute("list")
        assert "You have no agents" in empty.text


async def test_forms_follow_the_managers_access_rules(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    alice, bob, mallory = await user_client("alice"), await user_client("bob"), await user_client("mallory")
    settings.manager.allowed_users = [alice.bare_jid, bob.bare_jid]
    async with running_service(settings) as service:
        agent_id, _ = await create_agent(alice, settings.manager_jid)
        as_mallory = AdHoc(mallory, f"{settings.manager_jid}/{RESOURCE}")
        for node in ("new", "list", "kill"):
            refused = await as_mallory.execute(node)
            assert refused.status == "completed"
            assert refused.notes == [("error", "⛔ You are not allowed to use this service.")]
        # An allowed user sees none of another's agents, so cannot pick one to kill.
        as_bob = AdHoc(bob, f"{settings.manager_jid}/{RESOURCE}")
        assert "You have no agents" in (await as_bob.execute("list")).text
        assert "You have no agents" in (await as_bob.execute("kill")).text
        assert service.supervisor.get(agent_id) is not None
