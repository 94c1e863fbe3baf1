"""A hub and a runner on one machine (loopback): the manager sees the runner, creates an agent there, the
agent answers from the runner; only the hub commands a runner and only registered runners are heard."""

from __future__ import annotations

from pathlib import Path

from tests.support.runners import create_on, register, running_runner, runner_settings
from tests.support.service import make_repositories, running_service, service_settings


async def test_an_agent_on_a_runner_answers_and_the_manager_knows_where_it_runs(prosody, user_client, tmp_path: Path) -> None:
    hub = service_settings(prosody, tmp_path / "hub", runners={"pingInterval": 0.5, "pingTimeout": 2})
    make_repositories(hub.work.base_path)
    manager = hub.manager_jid
    async with running_service(hub) as service:
        registered = await register(hub, "laptop")
        assert registered.jid == f"runner-laptop@{prosody.domain}"
        assert "--fingerprint SHA256:" in registered.join_line()
        async with running_runner(runner_settings(prosody, tmp_path / "laptop", registered)):
            alice = await user_client("alice")
            await alice.send(manager, "runners")
            listing = await alice.expect("laptop", from_=manager, timeout=10)
            print(listing.body)
            agent_id, agent_jid = await create_on(alice, manager, "laptop", repo="site")
            await alice.expect("ready in site", from_=agent_jid, timeout=10)
            await alice.send(agent_jid, "hello there")
            answer = await alice.expect("MOCK_REPLY: hello there", from_=agent_jid, timeout=20)
            assert answer
            await alice.send(manager, "list")
            listed = (await alice.expect("Your agents", from_=manager)).body
            assert f"{agent_id} — " in listed and "on laptop" in listed, listed
            await alice.send(manager, f"status {agent_id}")
            status = (await alice.expect("📊", from_=manager)).body
            assert "Runs on: laptop" in status and str(tmp_path / "laptop" / "work" / "site") in status, status
            await alice.send(manager, "repos")
            repos = (await alice.expect("Repositories", from_=manager)).body
            assert "laptop:api (git)" in repos and "laptop:site" in repos, repos
            await alice.send(manager, f"kill {agent_id}")
            await alice.expect("killed", from_=manager, timeout=20)
        assert service.runner_hub is not None
