"""mod_admin_rest's DELETE /sessions/USER (AdminRestProvisioner.end_sessions): a session a dropped link left
on the server ends now, its contacts see why, and what it was sent waits in offline storage."""

from __future__ import annotations

import asyncio
import secrets

from agentchat.chat.port import Inbound, Release
from agentchat.config import XmppSettings
from agentchat.provisioning.admin_rest import AdminRestProvisioner
from agentchat.xmpp.session import XmppSession
from tests.faults.support import TcpProxy
from tests.harness.prosody import ProsodyServer


async def test_a_hibernating_session_ends_with_a_reason_and_its_messages_wait_offline(prosody: ProsodyServer, user_client) -> None:
    owner = await user_client("owner")
    name, password = f"agent-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    jid = f"{name}@{prosody.domain}"
    await prosody.mark_service(name)
    proxy = TcpProxy(prosody.host, prosody.c2s_port)
    port = await proxy.start()
    received: list[str] = []
    arrived = asyncio.Event()

    def deliver(inbound: Inbound, release: Release) -> None:
        received.append(inbound.text)
        release()
        arrived.set()

    # Short reconnect waits: the test brings the link back and watches it return.
    session = XmppSession(jid, password, XmppSettings(host="127.0.0.1", port=port, domain=prosody.domain,
                                                      reconnect_interval=0.2))
    session.attach(deliver)
    async with AdminRestProvisioner(prosody.admin_rest_url, prosody.domain, prosody.admin_jid, prosody.admin_password) as admin:
        await admin.create_account(name, password)
        await admin.add_contact(owner.bare_jid.split("@")[0], jid, "agent", ("agentchat",))
        try:
            session.set_presence("idle", "chat")
            await session.start()
            await owner.wait_until(lambda: any(p.from_.startswith(jid) and p.type != "unavailable" for p in owner.presences),
                                   "the agent online")
            # The link dies without a goodbye: the server keeps the session hibernating (XEP-0198) for a minute,
            # and queues what arrives meanwhile there.
            proxy.block()
            await owner.send(jid, "sent while the link was down")
            assert await admin.end_sessions(name, "runner laptop offline") == 1
            await owner.wait_until(
                lambda: any(p.from_.startswith(jid) and p.type == "unavailable" and p.status == "runner laptop offline"
                            for p in owner.presences), "the agent shown offline with the reason")
            assert await admin.end_sessions(name, "again") == 0
            # The link is back: a new session (nothing to resume) gets what waited, from offline storage.
            proxy.unblock()
            await asyncio.wait_for(arrived.wait(), 15)
            assert received == ["sent while the link was down"]
        finally:
            await session.stop()
            await proxy.close()
            await admin.delete_account(name)
