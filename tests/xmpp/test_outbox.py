"""The outbox keeps each message until the server acknowledged it (XEP-0198), and no longer: a message left
unacknowledged on a stream that works is sent again after the next new session, and the person reads it twice.

Against a real Prosody, with the session the service's bots use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from agentchat.chat.port import Outbound
from agentchat.config import XmppSettings
from agentchat.xmpp import session as xmpp_session
from agentchat.xmpp.session import XmppSession
from tests.faults.support import wait_until
from tests.harness.prosody import ProsodyServer


@contextlib.asynccontextmanager
async def bot_session(prosody: ProsodyServer, events: list[str]) -> AsyncIterator[XmppSession]:
    """A bot's session on an account of its own, once stream management is on; ``events`` collects
    sm_enabled and session_resumed. A timeout inside says what waited in the outbox."""
    username = f"bot-{secrets.token_hex(3)}"
    await prosody.create_account(username, "pw-" + username)
    connection = XmppSession(f"{username}@{prosody.domain}", "pw-" + username,
                             XmppSettings(host=prosody.host, port=prosody.c2s_port, domain=prosody.domain))
    for event in ("sm_enabled", "session_resumed"):
        connection.client.add_event_handler(event, lambda _e, event=event: events.append(event))
    try:
        await connection.start()
        await wait_until(lambda: "sm_enabled" in events, 10, "stream management enabled")
        yield connection
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{connection.outbox_report()}") from None
    finally:
        await connection.stop()


async def test_a_message_queued_as_the_ack_request_falls_due_is_acknowledged_too(prosody: ProsodyServer,
                                                                                   user_client) -> None:
    # Seen in the outage test under load: the agent's answer and its "✅ Done" stayed unacknowledged on a
    # resumed stream that worked. The ack request was written at once while the second message still waited
    # in slixmpp's send queue (both fell in the same loop iteration): the server's ack covered the first only.
    reader = await user_client("reader")
    async with bot_session(prosody, []) as connection:
        connection.send(Outbound(to=reader.bare_jid, text="first"))
        # Blocking the event loop on purpose, as a long callback of the service would: the ack request falls
        # due meanwhile and runs in the same iteration as the code that sends the second message.
        time.sleep(xmpp_session.ACK_REQUEST_DELAY * 2)
        asyncio.get_running_loop().call_soon(connection.send, Outbound(to=reader.bare_jid, text="second"))
        await reader.expect("first", timeout=10)
        await reader.expect("second", timeout=10)
        await wait_until(lambda: connection.unacked == 0, 5, "both messages acknowledged")


async def test_a_message_sent_as_the_link_drops_arrives_once_the_stream_resumed(
    prosody: ProsodyServer, user_client, caplog: pytest.LogCaptureFixture
) -> None:
    # The link's loss was already on its way (the loop runs it before slixmpp's send queue reaches the
    # message): slixmpp never tracked the stanza nor wrote it, so its resumption did not send it again, and
    # neither did we (it counted as written on this stream). The person never got it.
    reader = await user_client("reader")
    events: list[str] = []
    async with bot_session(prosody, events) as connection:
        connection.client.abort()  # the connection's loss is now queued in the loop
        connection.send(Outbound(to=reader.bare_jid, text="sent as the link dropped"))
        await wait_until(lambda: "session_resumed" in events and connection.online, 10, "the stream resumed")
        await reader.expect("sent as the link dropped", timeout=10)
        await wait_until(lambda: connection.unacked == 0, 5, "the message acknowledged")
        assert [m.body for m in reader.messages].count("sent as the link dropped") == 1
        # Nor a traceback in the service's log for a message the link's loss caught in slixmpp's send queue.
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
