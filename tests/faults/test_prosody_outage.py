"""Prosody killed, stopped or cut off while agents work: every bot is back within a second of the
server serving again, what the agents said meanwhile arrives afterwards, and every user message
sent around the outage is answered.

Three outages, each with the whole service in-process against a Prosody of the test's own:

* SIGKILL and restart: no stream can be resumed; bots need new sessions and the outbox resends.
* SIGTERM (graceful, clients get <system-shutdown/>) and restart: the same, after a clean close.
* The bots' TCP links reset (through a relay we cut) and refused for a while, Prosody alive:
  XEP-0198 resumes the streams and the server redelivers what it held for the bots.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentchat.app import Service
from agentchat.config import XmppSettings
from agentchat.xmpp.session import XmppSession
from tests.faults.support import TcpProxy, record_figures, wait_until, wait_until_async
from tests.harness.clients import UserClient
from tests.harness.prosody import ProsodyServer
from tests.support.service import create_agent, make_repositories, running_service, service_settings, show_to_agents

pytestmark = pytest.mark.slow

# How long the server stays away. Long enough that the agents finish turns while it is away.
OUTAGE = 2.0
# Messages per agent before the outage (the first keeps the agent busy through it) and after it.
BEFORE = 5
AFTER = 3
AGENTS = 2
# The promise: a bot is back this long after the server serves again (reconnect interval 0.5 s).
RECOVERY_LIMIT = 1.0
PROMPT = "🔐 Permission #"
FIXTURES = Path(__file__).parents[1] / "fixtures"


def delayed_prompt_fixture(directory: Path, seconds: float) -> Path:
    """The recorded Write turn, after a pause: its permission prompt opens while the server is away."""
    meta, *events = (FIXTURES / "tool_use.jsonl").read_text(encoding="utf-8").splitlines()
    path = directory / "delayed_prompt.jsonl"
    pause = json.dumps({"__fake__": "sleep", "seconds": seconds})
    path.write_text("\n".join([meta, pause, *events]) + "\n", encoding="utf-8")
    return path


@dataclass
class SessionClock:
    """When each service connection got a session (new or resumed)."""

    stamps: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))

    def watch(self, connection: XmppSession) -> None:
        def stamp(_event: object) -> None:
            self.stamps[connection.jid].append(time.monotonic())

        connection.client.add_event_handler("session_start", stamp)
        connection.client.add_event_handler("session_resumed", stamp)

    def back_after(self, jid: str, since: float) -> float:
        """When the connection first got a session after ``since``."""
        later = [t for t in self.stamps[jid] if t > since]
        assert later, f"{jid}: no session since the outage began"
        return later[0]


def service_connections(service: Service) -> list[XmppSession]:
    assert service.manager_session is not None and service.supervisor is not None
    connections = [service.manager_session]
    for agent in service.supervisor.all():
        assert agent.chat is not None
        connections.append(agent.chat.transport)  # type: ignore[attr-defined]
    return connections


async def outboxes_acknowledged(connections: list[XmppSession], timeout: float = 10) -> None:
    try:
        await wait_until(lambda: all(c.unacked == 0 for c in connections), timeout, "every outbox acknowledged")
    except TimeoutError as error:
        stuck = "\n".join(c.outbox_report() for c in connections if c.unacked)
        raise AssertionError(f"{error}:\n{stuck}") from None


async def inbound_count(service: Service, agent_id: str) -> int:
    [(count,)] = await service.store.query("SELECT COUNT(*) FROM inbound WHERE bot = ?", (agent_id,))
    return int(count)


async def send_before(alice: UserClient, service: Service, agents: dict[str, str]) -> dict[str, list[str]]:
    """BEFORE messages per agent, the first one a turn long enough to outlast the outage; returns
    the texts sent, once the service has stored every one of them."""
    sent: dict[str, list[str]] = {}
    for agent_id, jid in agents.items():
        texts = [f"[[sleep:{OUTAGE * 0.6:.1f}]] {agent_id} before-0"]
        texts += [f"[[sleep:0.3]] {agent_id} before-{n}" for n in range(1, BEFORE)]
        for text in texts:
            await alice.send(jid, text)
        sent[agent_id] = texts
    for agent_id, texts in sent.items():
        await wait_until_async(
            functools.partial(_stored, service, agent_id, len(texts)),
            10,
            f"{agent_id} stored the messages sent before the outage",
        )
    return sent


async def _stored(service: Service, agent_id: str, count: int) -> bool:
    return await inbound_count(service, agent_id) >= count


async def send_after(alice: UserClient, agents: dict[str, str], sent: dict[str, list[str]]) -> None:
    for agent_id, jid in agents.items():
        for n in range(AFTER):
            text = f"{agent_id} after-{n}"
            await alice.send(jid, text)
            sent[agent_id].append(text)


async def collect_answers(
    alice: UserClient, agents: dict[str, str], sent: dict[str, list[str]], timeout: float = 30
) -> tuple[int, int]:
    """Wait until every sent text got its MOCK_REPLY from its own agent; returns (answered, duplicates)."""
    wanted = {(agents[agent_id], f"MOCK_REPLY: {text}") for agent_id, texts in sent.items() for text in texts}

    def answered() -> set[tuple[str, str]]:
        return {(m.from_bare, m.body) for m in alice.messages} & wanted

    try:
        await wait_until(lambda: answered() == wanted, timeout, "every message answered")
    except TimeoutError:
        missing = sorted(body for _, body in wanted - answered())
        raise AssertionError(f"{len(missing)} of {len(wanted)} messages unanswered: {missing}") from None
    replies = collections.Counter((m.from_bare, m.body) for m in alice.messages if (m.from_bare, m.body) in wanted)
    return len(wanted), sum(count - 1 for count in replies.values())


async def start_agents(alice: UserClient, settings, count: int = AGENTS) -> dict[str, str]:  # type: ignore[no-untyped-def]
    agents: dict[str, str] = {}
    for n in range(count):
        agent_id, jid = await create_agent(alice, settings.manager_jid, repo=("api", "web")[n % 2], task="skip")
        agents[agent_id] = jid
    return agents


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
async def test_prosody_restart_loses_nothing(
    isolated_prosody: ProsodyServer, user_client, tmp_path: Path, how: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = isolated_prosody
    settings = service_settings(server, tmp_path)
    fixtures = show_to_agents(settings, tmp_path_factory.mktemp("fixtures"))
    work = make_repositories(settings.work.base_path)
    async with running_service(settings) as service:
        alice = await user_client("alice", server=server)
        agents = await start_agents(alice, settings)
        prompter_id, prompter = await create_agent(alice, settings.manager_jid, repo="api", task="skip")
        clock = SessionClock()
        connections = service_connections(service)
        for connection in connections:
            clock.watch(connection)

        sent = await send_before(alice, service, agents)
        await alice.send(prompter, f"[[fixture:{delayed_prompt_fixture(fixtures, OUTAGE * 0.4)}]]")
        await wait_until_async(lambda: _stored(service, prompter_id, 1), 10, "the prompter stored its task")
        down_at = time.monotonic()
        await (server.kill(signal.SIGKILL) if how == "sigkill" else server.stop())
        stopped_in = time.monotonic() - down_at
        await wait_until(lambda: not any(c.online for c in connections), 5, "every bot noticed the outage")
        # The outage itself: the agents keep working and talking while the server is away.
        await asyncio.sleep(OUTAGE)
        queued_during_outage = sum(c.unacked for c in connections)
        assert queued_during_outage > 0, "the agents said nothing during the outage: the test proves nothing"
        assert service.permissions.pending(prompter_id), "the permission prompt did not open during the outage"

        await server.start()
        ready_at = time.monotonic()
        await wait_until(lambda: all(c.online for c in connections), 5, "every bot back")
        # A bot may log in a few ms before the readiness probe has seen the server serving: 0 then.
        recovery = {c.jid.split("@")[0]: max(0.0, clock.back_after(c.jid, down_at) - ready_at) for c in connections}
        await alice.connect()
        await send_after(alice, agents, sent)
        answered, duplicates = await collect_answers(alice, agents, sent)
        # The prompt asked while the server was away reaches the owner, and her answer goes through.
        await alice.expect(PROMPT, from_=prompter, timeout=20)
        await alice.send(prompter, "yes")
        await alice.expect("✅ Done", from_=prompter, timeout=20)
        assert (work / "api" / "hello.txt").exists()
        await outboxes_acknowledged(connections)
        await alice.send(settings.manager_jid, "list")
        await alice.expect("Your agents", from_=settings.manager_jid)

    record_figures(
        f"prosody_{how}_restart",
        outage_s=OUTAGE,
        stop_s=round(stopped_in, 2),
        messages_sent=sum(len(t) for t in sent.values()),
        messages_answered=answered,
        duplicate_answers=duplicates,
        bot_messages_queued_during_outage=queued_during_outage,
        recovery_after_ready_s={k: round(v, 3) for k, v in recovery.items()},
    )
    assert max(recovery.values()) < RECOVERY_LIMIT, recovery


async def test_dropped_tcp_links_resume_and_lose_nothing(isolated_prosody: ProsodyServer, user_client, tmp_path: Path) -> None:
    server = isolated_prosody
    proxy = TcpProxy(server.host, server.c2s_port)
    await proxy.start()
    settings = service_settings(server, tmp_path, xmpp={"port": proxy.port})
    make_repositories(settings.work.base_path)
    try:
        async with running_service(settings) as service:
            alice = await user_client("alice", server=server)
            agents = await start_agents(alice, settings)
            clock = SessionClock()
            connections = service_connections(service)
            for connection in connections:
                clock.watch(connection)
            resumed: list[str] = []
            for connection in connections:
                connection.client.add_event_handler("session_resumed", lambda _e, jid=connection.jid: resumed.append(jid))

            sent = await send_before(alice, service, agents)
            links = proxy.block()
            down_at = time.monotonic()
            await wait_until(lambda: not any(c.online for c in connections), 5, "every bot noticed the reset")
            # The server is up: what alice writes now waits in the bots' hibernated sessions.
            for agent_id, jid in agents.items():
                text = f"{agent_id} during-0"
                await alice.send(jid, text)
                sent[agent_id].append(text)
            await asyncio.sleep(OUTAGE)
            queued_during_outage = sum(c.unacked for c in connections)
            assert queued_during_outage > 0

            proxy.unblock()
            back_at = time.monotonic()
            await wait_until(lambda: all(c.online for c in connections), 5, "every bot back")
            recovery = {c.jid.split("@")[0]: clock.back_after(c.jid, down_at) - back_at for c in connections}
            await send_after(alice, agents, sent)
            answered, duplicates = await collect_answers(alice, agents, sent)
            await outboxes_acknowledged(connections)
    finally:
        await proxy.close()

    record_figures(
        "tcp_reset",
        outage_s=OUTAGE,
        links_reset=links,
        streams_resumed=len(set(resumed)),
        messages_sent=sum(len(t) for t in sent.values()),
        messages_answered=answered,
        duplicate_answers=duplicates,
        bot_messages_queued_during_outage=queued_during_outage,
        recovery_after_network_back_s={k: round(v, 3) for k, v in recovery.items()},
    )
    assert max(recovery.values()) < RECOVERY_LIMIT, recovery
    # Prosody kept the sessions (smacks hibernation): the streams resumed, no new sessions needed.
    assert set(resumed) == {c.jid for c in connections}


async def test_a_second_login_with_the_same_account_takes_over_without_flapping(prosody: ProsodyServer) -> None:
    """Two live logins on one service account (a second agentchat started by mistake, or an old one
    still stopping): with one fixed resource they would replace each other twice a second, forever.
    The newer one keeps the account; the older one says why in the log and stays off."""
    username = f"bot-{secrets.token_hex(3)}"
    await prosody.create_account(username, "pw-" + username)
    settings = XmppSettings(host=prosody.host, port=prosody.c2s_port, domain=prosody.domain)
    sessions = collections.Counter[str]()

    connections = {}
    for name in ("older", "newer"):
        connection = XmppSession(f"{username}@{prosody.domain}", "pw-" + username, settings)
        connection.client.add_event_handler("session_start", lambda _e, name=name: sessions.update([name]))
        connections[name] = connection
    try:
        await connections["older"].start()
        await connections["newer"].start()
        await wait_until(lambda: connections["older"].replaced and not connections["older"].online, 5, "the older gave way")
        # Nothing to wait for: watch a few reconnect intervals pass without a new session.
        await asyncio.sleep(4 * settings.reconnect_interval)
        assert sessions == {"older": 1, "newer": 1}
        assert connections["newer"].online
    finally:
        for connection in connections.values():
            await connection.stop()
