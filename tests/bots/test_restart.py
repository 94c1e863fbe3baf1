"""Restarts: agents come back after a service restart and resume; messages sent while a bot was
offline are answered when it returns."""

from __future__ import annotations

from pathlib import Path

from tests.support.service import create_agent, make_repositories, running_service, service_settings, show_to_agents


async def test_service_restart_restores_agents_and_resumes_sessions(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    alice = await user_client("alice")
    async with running_service(settings):
        agent_id, agent = await create_agent(alice, settings.manager_jid, task="the password is swordfish")
        await alice.expect("✅ Done", from_=agent, timeout=20)

    # While the service is down, alice writes to the agent: the server keeps it offline.
    await alice.send(agent, "[[recall]] are you there?")

    async with running_service(settings) as service:
        assert service.supervisor is not None
        restored = service.supervisor.get(agent_id)
        assert restored is not None and restored.owner == alice.bare_jid
        await alice.expect("restarted", from_=agent, timeout=20)
        recall = await alice.expect("MOCK_HISTORY", from_=agent, timeout=20)
        assert "swordfish" in recall.body  # resumed with --resume: the earlier turn is remembered
        await alice.send(settings.manager_jid, "list")
        assert agent_id in (await alice.expect("Your agents", from_=settings.manager_jid)).body


async def test_lost_session_starts_fresh_and_says_so(prosody, user_client, tmp_path: Path) -> None:
    settings = service_settings(prosody, tmp_path)
    make_repositories(settings.work.base_path)
    alice = await user_client("alice")
    async with running_service(settings):
        _, agent = await create_agent(alice, settings.manager_jid, task="first")
        await alice.expect("✅ Done", from_=agent, timeout=20)
    # The CLI forgets every session (its HOME is wiped), as after a reinstall.
    home = Path(settings.agents.claude.env["HOME"])
    for path in sorted(home.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    async with running_service(settings):
        await alice.expect("restarted", from_=agent, timeout=20)
        await alice.send(agent, "second")
        await alice.expect("fresh", from_=agent, timeout=20)
        await alice.expect("MOCK_REPLY: second", from_=agent, timeout=20)


async def test_mode_model_and_progress_survive_a_restart(prosody, user_client, tmp_path: Path, tmp_path_factory) -> None:
    import json

    settings = service_settings(prosody, tmp_path)
    # Outside the state directory, which the agent's sandbox hides.
    log = show_to_agents(settings, tmp_path_factory.mktemp("logs"), writable=True) / "fake.log"
    settings.agents.claude.env["FAKE_CLAUDE_LOG"] = str(log)
    make_repositories(settings.work.base_path)
    alice = await user_client("alice")
    async with running_service(settings):
        agent_id, agent = await create_agent(alice, settings.manager_jid)
        for command, said in (("mode plan", "Permission mode: plan"), ("model claude-kept", "Model: claude-kept"),
                              ("progress quiet", "Progress: quiet")):
            await alice.send(agent, command)
            await alice.expect(said, from_=agent, timeout=20)

    async with running_service(settings) as service:
        restored = service.supervisor.get(agent_id)
        assert (restored.record.permission_mode, restored.record.model, restored.record.progress) == \
            ("plan", "claude-kept", "quiet")
        await alice.send(agent, "hello again")
        await alice.expect("MOCK_REPLY: hello again", from_=agent, timeout=20)
        starts = [json.loads(line)["argv"] for line in log.read_text().splitlines() if json.loads(line)["event"] == "start"]
        args = starts[-1]
        assert args[args.index("--permission-mode") + 1] == "plan" and args[args.index("--model") + 1] == "claude-kept"
