"""Reconnection over a slow link: each attempt runs to its end (slixmpp's connect() cancels the one in
flight, so a retry timer shorter than the connect never got through: 21 cancelled attempts in 10 s with a
0.8 s connect), then a back-off with jitter.

The bot runs as a process of its own whose TCP connects each take CONNECT_DELAY seconds (this machine's
kernel has no netem to slow a real link down), against a real Prosody that the test kills and starts again.

And a link that drops again the moment the stream came back: the bot reconnects once more; and a busy link,
whose ping answers come late behind what the server sends, is not taken for a dead one.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path

import pytest

from agentchat.config import XmppSettings
from agentchat.server.embedded import die_with_parent_preexec
from agentchat.xmpp import session as xmpp_session
from agentchat.xmpp.session import XmppSession
from tests.faults.support import TcpProxy, record_figures, wait_until
from tests.harness.prosody import ProsodyServer

pytestmark = pytest.mark.slow

CONNECT_DELAY = 2.0  # four times the 0.5 s reconnect interval


async def next_line(process: asyncio.subprocess.Process, timeout: float) -> dict[str, object]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout)
    assert line, "the bot process ended"
    return json.loads(line)


async def test_a_bot_logs_in_and_comes_back_over_a_slow_link(isolated_prosody: ProsodyServer) -> None:
    server = isolated_prosody
    await server.create_account("slowbot", "pw-slowbot")
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.xmpp.slow_link_bot", "--jid", f"slowbot@{server.domain}",
        "--password", "pw-slowbot", "--port", str(server.c2s_port), "--connect-delay", str(CONNECT_DELAY),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
        preexec_fn=die_with_parent_preexec(),
    )
    try:
        first = await next_line(bot, 30)
        assert first["online"] is True and first["attempts"] == 1, first

        await server.kill()
        lost = await next_line(bot, 30)
        assert lost["online"] is False
        await asyncio.sleep(1.0)  # the server stays away a moment: the first retries are refused
        await server.start()
        back = await next_line(bot, 30)
        assert back["online"] is True
        retries = int(back["attempts"]) - int(first["attempts"])
        # Each attempt took its 2 s: a handful in all, each one run to its end, the last one through.
        assert 1 <= retries <= 4, (first, back)
        assert float(back["t"]) - float(lost["t"]) < 1.0 + 4 * (CONNECT_DELAY + 1.0)
        record_figures("slow_link", connect_delay_s=CONNECT_DELAY, first_login_attempts=first["attempts"],
                       reconnect_attempts=retries, back_after_loss_s=round(float(back["t"]) - float(lost["t"]), 2))
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()


async def test_a_bot_whose_link_drops_again_the_moment_its_stream_resumed_comes_back(prosody: ProsodyServer) -> None:
    # What a busy Prosody did in the room benchmark: it resumed a bot's stream and closed it at once (a
    # not-well-formed error over the old connection's last bytes). The link went down before the reconnect
    # loop had returned from its successful attempt; nobody reconnected, and the agent stayed offline for good.
    proxy = TcpProxy(prosody.host, prosody.c2s_port)
    await proxy.start()
    username = f"bot-{secrets.token_hex(3)}"
    await prosody.create_account(username, "pw-" + username)
    connection = XmppSession(f"{username}@{prosody.domain}", "pw-" + username,
                             XmppSettings(host=prosody.host, port=proxy.port, domain=prosody.domain))
    sessions: list[str] = []
    for event in ("session_start", "session_resumed", "sm_enabled"):
        connection.client.add_event_handler(event, lambda _e, event=event: sessions.append(event))
    try:
        await connection.start()
        await wait_until(lambda: "sm_enabled" in sessions, 10, "a stream the server would resume")
        sessions.remove("sm_enabled")
        proxy.cut_after(b"<resumed")
        proxy.drop()
        await wait_until(lambda: proxy.cuts == 1, 10, "the stream resumed, and its link closed right behind it")
        await wait_until(lambda: connection.online and len(sessions) >= 3, 10, "the bot back once more")
        assert sessions[:2] == ["session_start", "session_resumed"], sessions
    finally:
        await connection.stop()
        await proxy.close()


async def test_a_busy_link_whose_ping_answers_come_late_is_not_cut(prosody: ProsodyServer, user_client,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # In the room benchmark every agent's session receives every room line: behind thousands of them, the
    # answer to a keepalive ping came after its 10 s, the service cut 20 links that were working, and the
    # streams Prosody then resumed over connections it had not yet seen close lost what the agents said.
    # Here: the server's bytes reach the bot at 20 kB/s, a 100 kB backlog (5 s), a 1.5 s ping timeout.
    monkeypatch.setattr(xmpp_session, "KEEPALIVE_TIMEOUT", 1.5)
    proxy = TcpProxy(prosody.host, prosody.c2s_port)
    await proxy.start()
    username = f"bot-{secrets.token_hex(3)}"
    await prosody.mark_service(username)
    await prosody.create_account(username, "pw-" + username)
    connection = XmppSession(f"{username}@{prosody.domain}", "pw-" + username,
                             XmppSettings(host=prosody.host, port=proxy.port, domain=prosody.domain),
                             keepalive_interval=0.5)
    received: list[str] = []

    def sink(inbound, release):  # type: ignore[no-untyped-def]
        received.append(inbound.text)
        release()

    connection.attach(sink)
    sender = await user_client("sender", service=True)
    try:
        await connection.start()
        proxy.slow_down(20_000)
        for n in range(100):
            await sender.send(connection.jid, f"{n:03d} " + "x" * 1000)
        await wait_until(lambda: len(received) == 100, 30, "the whole backlog delivered")
        assert connection.attempts == 1 and connection.online, f"{connection.attempts} connection attempts"
    finally:
        await connection.stop()
        await proxy.close()
