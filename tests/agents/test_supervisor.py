"""AgentSupervisor.restore(): every agent of the last run comes back, a few at a time, in the
records' order; killed ones are forgotten, leftover processes ended, and one that fails is skipped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentchat.agents import supervisor as supervisor_module
from agentchat.agents.agent import Agent
from agentchat.agents.backends.base import AgentBackend, AgentEvent, BackendSpec
from agentchat.agents.supervisor import RESTORE_CONCURRENCY, AgentSupervisor
from agentchat.errors import AgentChatError, ProvisioningError
from agentchat.provisioning.base import AccountExists, Provisioner
from agentchat.store.database import StateStore
from agentchat.store.records import AgentRecord, AgentStatus, InboundMessage


class FakeProvisioner(Provisioner):
    """Every account exists already (a restart); ``broken`` ones cannot be changed."""

    domain = "test.example"

    def __init__(self, broken: set[str]) -> None:
        self.broken = broken
        self.in_flight = 0
        self.most_in_flight = 0
        self.deleted: list[str] = []

    async def create_account(self, username: str, password: str) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # a round trip to the server: the others get their turn
        finally:
            self.in_flight -= 1
        raise AccountExists(username)

    async def change_password(self, username: str, password: str) -> None:
        if username in self.broken:
            raise ProvisioningError(f"cannot change the password of {username}: the server said no")

    async def delete_account(self, username: str) -> None:
        self.deleted.append(username)

    async def account_exists(self, username: str) -> bool:
        return True

    async def close(self) -> None:
        pass


class FakeChat:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.closed = False

    async def show_event(self, event: AgentEvent) -> None:
        pass

    async def notify(self, text: str) -> None:
        pass

    def status_changed(self, status: AgentStatus) -> None:
        pass

    def recover_unhandled(self, messages: list[InboundMessage]) -> None:
        pass

    async def open(self) -> None:
        pass

    def request_contact(self) -> None:
        pass

    def turn_changed(self, turn: object) -> None:
        pass

    async def close(self) -> None:
        self.closed = True


class FakeServiceAccounts:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def add(self, *jids: str) -> None:
        self.calls.append(jids)

    async def remove(self, *jids: str) -> None:
        pass


def make_supervisor(store: StateStore, tmp_path: Path, service_accounts: FakeServiceAccounts) -> AgentSupervisor:
    def open_chat(agent: Agent, password: str) -> FakeChat:
        return FakeChat(agent)

    def no_backend(kind: str, spec: BackendSpec) -> AgentBackend:
        raise AssertionError("a restored agent starts no process before its next message")

    return AgentSupervisor(
        domain="test.example",
        store=store,
        chat_factory=open_chat,
        backend_factory=no_backend,
        spec_factory=lambda record: BackendSpec(agent_id=record.id, cwd=tmp_path, session_id=record.session_id),
        max_concurrent=2,
        idle_timeout=3600,
        service_accounts=service_accounts,
    )


async def test_restore_brings_agents_back_in_order_and_skips_a_failing_one(
    store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    count = RESTORE_CONCURRENCY + 8
    names = [f"agent-{n:02d}" for n in range(count)]
    # Saved in scrambled order: restore() follows created_at, not the order of the writes.
    for n in sorted(range(count), key=lambda n: (n * 7) % count):
        record = AgentRecord(
            id=names[n], owner="alice@test.example", repo=str(tmp_path), backend="claude",
            session_id=f"s{n}", status=AgentStatus.WORKING, created_at=1000.0 + n, pid=40000 + n,
        )
        await store.save_agent(record)
    killed = AgentRecord(
        id="killed-one", owner="alice@test.example", repo=str(tmp_path), backend="claude",
        session_id="sk", status=AgentStatus.KILLED, created_at=1500.0,
    )
    await store.save_agent(killed)
    stale_groups: list[tuple[int | None, str]] = []
    monkeypatch.setattr(supervisor_module, "kill_stale_process_group", lambda pid, agent_id: stale_groups.append((pid, agent_id)))
    accounts = FakeServiceAccounts()
    supervisor = make_supervisor(store, tmp_path, accounts)
    provisioner = FakeProvisioner(broken={names[3]})
    supervisor.provisioner = provisioner

    try:
        restored = await supervisor.restore()

        expected = [name for name in names if name != names[3]]
        assert [agent.id for agent in restored] == expected
        assert [agent.id for agent in supervisor.all()] == expected
        assert supervisor.get(names[3]) is None
        assert f"agent {names[3]} could not be restored" in caplog.text
        assert all(isinstance(agent.chat, FakeChat) for agent in restored)
        assert 1 < provisioner.most_in_flight <= RESTORE_CONCURRENCY
        assert sorted(g for g in stale_groups if g[0] is not None) == [(40000 + n, names[n]) for n in range(count)]
        # The kill the last run left half done is finished: its account goes too.
        assert (None, "killed-one") in stale_groups and provisioner.deleted == ["killed-one"]
        assert accounts.calls == [tuple(f"{name}@test.example" for name in names)]
        saved = {record.id: record for record in await store.load_agents()}
        assert "killed-one" not in saved
        assert all((saved[name].status, saved[name].pid) == (AgentStatus.STOPPED, None) for name in expected)
    finally:
        await supervisor.shutdown()


async def test_restore_of_nothing_returns_nothing(store: StateStore, tmp_path: Path) -> None:
    accounts = FakeServiceAccounts()
    supervisor = make_supervisor(store, tmp_path, accounts)
    supervisor.provisioner = FakeProvisioner(broken=set())
    assert await supervisor.restore() == []
    assert accounts.calls == []


async def test_restore_cancelled_leaves_nothing_running(store: StateStore, tmp_path: Path) -> None:
    for n in range(3):
        await store.save_agent(AgentRecord(
            id=f"agent-{n}", owner="alice@test.example", repo=str(tmp_path), backend="claude", session_id=f"s{n}",
        ))
    supervisor = make_supervisor(store, tmp_path, FakeServiceAccounts())
    entered = asyncio.Event()

    class HangingProvisioner(FakeProvisioner):
        async def create_account(self, username: str, password: str) -> None:
            entered.set()
            await asyncio.Event().wait()  # the server never answers

    supervisor.provisioner = HangingProvisioner(broken=set())
    restoring = asyncio.get_running_loop().create_task(supervisor.restore())
    await asyncio.wait_for(entered.wait(), 5)
    restoring.cancel()
    with pytest.raises(asyncio.CancelledError):
        await restoring
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("restore:")]


class CountingProvisioner(FakeProvisioner):
    def __init__(self) -> None:
        super().__init__(broken=set())
        self.changed: list[str] = []

    async def change_password(self, username: str, password: str) -> None:
        self.changed.append(username)


class RememberingCache:
    def __init__(self) -> None:
        self.seeded: dict[str, str] = {}

    def seed(self, password: str, cached: str) -> None:
        self.seeded[password] = cached

    def export(self, password: str) -> str | None:
        return f"derived-from-{password}"


async def test_restore_logs_in_with_the_kept_passwords_and_sets_a_refused_one_anew(store: StateStore, tmp_path: Path) -> None:
    """No provisioning at a restart: each agent logs in with its kept password (its SCRAM key handed back to the
    login); one the server refuses (a password changed elsewhere, a server that lost its accounts) is set anew."""
    for n in range(3):
        await store.save_agent(AgentRecord(id=f"agent-{n}", owner="alice@test.example", repo=str(tmp_path),
                                           backend="claude", session_id=f"s{n}", created_at=1000.0 + n))
    await store.save_agent_secrets([("agent-0", "kept-0", "cache-0"), ("agent-1", "kept-1", None), ("agent-2", "stale", None)])
    logins: list[tuple[str, str]] = []

    class RefusingChat(FakeChat):
        def __init__(self, agent: Agent, password: str) -> None:
            super().__init__(agent)
            self.password = password

        async def open(self) -> None:
            logins.append((self.agent.id, self.password))
            if self.password == "stale":
                raise AgentChatError(f"{self.agent.id}: the server refused the password")

    def no_backend(kind: str, spec: BackendSpec) -> AgentBackend:
        raise AssertionError("a restored agent starts no process before its next message")

    cache = RememberingCache()
    supervisor = AgentSupervisor(
        domain="test.example", store=store, chat_factory=RefusingChat, backend_factory=no_backend,
        spec_factory=lambda record: BackendSpec(agent_id=record.id, cwd=tmp_path, session_id=record.session_id),
        max_concurrent=2, idle_timeout=3600, login_cache=cache,
    )  # fmt: skip
    provisioner = CountingProvisioner()
    supervisor.provisioner = provisioner
    try:
        restored = await supervisor.restore()
        assert [agent.id for agent in restored] == ["agent-0", "agent-1", "agent-2"]
        assert provisioner.changed == ["agent-2"]  # only the refused one was reset
        assert cache.seeded == {"kept-0": "cache-0"}
        assert ("agent-0", "kept-0") in logins and ("agent-1", "kept-1") in logins and ("agent-2", "stale") in logins
        new_password = [password for agent_id, password in logins if agent_id == "agent-2"][-1]
        assert new_password != "stale"
        kept = await store.load_agent_secrets()
        assert kept["agent-2"] == (new_password, f"derived-from-{new_password}")
        assert kept["agent-1"] == ("kept-1", "derived-from-kept-1")  # its login's key kept for the next start
        assert isinstance(supervisor.get("agent-2").chat, RefusingChat)  # type: ignore[union-attr]
    finally:
        await supervisor.shutdown()
