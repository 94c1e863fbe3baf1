"""A hub and a runner on one machine (loopback): the manager sees the runner, creates an agent there, the
agent answers from the runner; only the hub commands a runner and only registered runners are heard."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path

import pytest

from agentchat.errors import StateError
from agentchat.runners import protocol as p
from agentchat.runners.registration import JOIN_FILE, Registered, list_runners, remove_runner
from agentchat.xmpp.iq import IqChannel, IqRefused
from tests.faults.test_agent_isolation import PROBE_BACKEND, probe_script
from tests.support.runners import create_on, register, running_runner, runner_settings
from tests.support.service import make_repositories, running_service, service_settings


async def test_an_agent_on_a_runner_answers_and_the_manager_knows_where_it_runs(prosody, user_client, tmp_path: Path) -> None:
    hub = service_settings(prosody, tmp_path / "hub", runners={"pingInterval": 0.5, "pingTimeout": 2})
    make_repositories(hub.work.base_path)
    manager = hub.manager_jid
    async with running_service(hub) as service:
        registered = await register(hub, "laptop")
        assert registered.jid == f"runner-laptop@{prosody.domain}"
        line = registered.join_line()
        # The password goes in the command's environment: no command line (what `ps` shows) carries it.
        assert "--fingerprint SHA256:" in line and line.startswith(f"AGENTCHAT_RUNNER_PASSWORD={registered.password} ")
        assert "--password" not in line
        async with running_runner(runner_settings(prosody, tmp_path / "laptop", registered)):
            alice = await user_client("alice")
            await alice.send(manager, "runners")
            listing = (await alice.expect("laptop", from_=manager, timeout=10)).body
            assert "laptop — online since" in listing and "2 repositories" in listing, listing
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
            # Rooms are the hub's: the runner's agent cannot sit in one, and the manager says why.
            await alice.send(manager, "room new team")
            await alice.expect("Room team created", from_=manager, timeout=10)
            await alice.send(manager, f"room invite {agent_id} team")
            refusal = (await alice.expect("cannot join rooms", from_=manager, timeout=10)).body
            assert f"{agent_id} runs on laptop" in refusal, refusal
            with pytest.raises(StateError, match=f"still runs {agent_id}"):
                await remove_runner(hub.model_copy(deep=True), "laptop")
            await alice.send(manager, f"kill {agent_id}")
            await alice.expect("killed", from_=manager, timeout=20)
        assert [r.name for r in await list_runners(hub.model_copy(deep=True))] == ["laptop"]
        await remove_runner(hub.model_copy(deep=True), "laptop")
        assert await list_runners(hub.model_copy(deep=True)) == []
        assert service.runner_hub is not None


async def test_only_registered_runners_are_heard_and_only_the_hub_commands_a_runner(
    prosody, user_client, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    hub = service_settings(prosody, tmp_path / "hub", runners={"pingInterval": 0.5, "pingTimeout": 2})
    make_repositories(hub.work.base_path)
    async with running_service(hub):
        first = await register(hub, "first")
        second = await register(hub, "second")
        # A valid account of the server that `runner add` never registered.
        fake_password = secrets.token_urlsafe(12)
        await prosody.create_account("runner-fake", fake_password)
        fake = Registered("fake", f"runner-fake@{prosody.domain}", fake_password, prosody.host, prosody.c2s_port,
                          hub.manager_jid, None)
        async with running_runner(runner_settings(prosody, tmp_path / "first", first)) as runner_one, \
                running_runner(runner_settings(prosody, tmp_path / "second", second)) as runner_two, \
                running_runner(runner_settings(prosody, tmp_path / "fake", fake)) as impostor:
            # The impostor's hello is refused, and it says why.
            await asyncio.wait_for(impostor._refused.wait(), 10)
            assert impostor.refusal is not None and "not a registered runner" in impostor.refusal
            assert any("refused hello from runner-fake@" in r.getMessage() for r in caplog.records)

            # A runner commands neither another runner nor the hub.
            create = p.encode(p.CreateAgent(agent_id="evil-twin", owner=f"mallory@{prosody.domain}", backend="claude",
                                            repository="api", password="x" * 20))
            for target in (runner_two.jid + "/agentchat", hub.manager_jid + "/agentchat"):
                try:
                    await runner_one.channel.request(target, p.Op.CREATE.value, create, 5)
                except IqRefused as exc:
                    assert exc.condition == "forbidden", exc
                else:
                    raise AssertionError(f"{target} obeyed another runner")
            assert runner_two.agents.get("evil-twin") is None and not runner_two.agents.all()
            assert any("refused create from runner-first@" in r.getMessage() and "only the hub" in r.getMessage()
                       for r in caplog.records), [r.getMessage() for r in caplog.records]
            # Nor does a person: a user's IQ to a runner is refused the same way.
            mallory = await user_client("mallory")
            channel = IqChannel(mallory.xmpp, p.NAMESPACE)
            try:
                await channel.request(runner_two.jid + "/agentchat", p.Op.STATE.value, "{}", 5)
            except IqRefused as exc:
                assert exc.condition == "forbidden"
            else:
                raise AssertionError("a runner answered a stranger")
            alice = await user_client("alice")
            await alice.send(hub.manager_jid, "runners")
            machines = (await alice.expect("Machines", from_=hub.manager_jid, timeout=10)).body
            assert "first — online" in machines and "second — online" in machines and "fake" not in machines


async def test_an_agent_on_a_runner_is_confined_as_on_the_hub(prosody, user_client, tmp_path: Path) -> None:
    """The runner's own secrets (its join file with its password, its state) are out of its agents' reach."""
    hub = service_settings(prosody, tmp_path / "hub")
    make_repositories(hub.work.base_path)
    async with running_service(hub):
        registered = await register(hub, "laptop")
        home = tmp_path / "laptop"
        home.mkdir()
        (home / JOIN_FILE).write_text(json.dumps({"password": registered.password}))
        settings = runner_settings(prosody, home, registered, agents={"commandBackends": PROBE_BACKEND})
        async with running_runner(settings) as runner:
            assert runner.agent_host.sandbox.enabled, runner.agent_host.sandbox.summary()
            alice = await user_client("alice")
            _, probe = await create_on(alice, hub.manager_jid, "laptop", kind="probe")
            targets = {"runner.json": home / JOIN_FILE, "state.db": home / "state.db",
                       "audit.jsonl": home / "audit.jsonl", "other-repo": settings.work.base_path / "site" / "README.md"}
            (home / "audit.jsonl").touch()
            (settings.work.base_path / "site" / "README.md").write_text("another repository\n")
            await alice.send(probe, probe_script({name: path for name, path in targets.items()}, "no-such-token"))
            output = (await alice.expect("READ own-repo", from_=probe, timeout=30)).body
        for name in targets:
            assert f"DENIED {name}" in output, f"{name}:\n{output}"
        assert registered.password not in output
