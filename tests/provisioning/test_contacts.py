"""Contacts that appear by themselves: the roster API of mod_admin_rest (through AdminRestProvisioner
and ``introduce``) and the subscription-request fallback, seen by real logged-in clients."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from agentchat.config import XmppSettings
from agentchat.errors import ProvisioningError
from agentchat.provisioning.adhoc import AdhocProvisioner
from agentchat.provisioning.admin_rest import AdminRestProvisioner
from agentchat.provisioning.base import AccountMissing, RostersUnsupported
from agentchat.provisioning.contacts import CONTACT_GROUP, Introduction, forget, introduce
from agentchat.xmpp.session import XmppSession
from tests.harness.prosody import ProsodyServer


@pytest.fixture
async def provisioner(prosody: ProsodyServer) -> AsyncIterator[AdminRestProvisioner]:
    async with AdminRestProvisioner(prosody.admin_rest_url, prosody.domain, prosody.admin_jid, prosody.admin_password) as p:
        yield p


def local(jid: str) -> str:
    return jid.split("@")[0]


async def test_introduce_pushes_a_named_grouped_mutual_contact_to_online_clients(provisioner, user_client) -> None:
    alice = await user_client("alice")
    agent = await user_client("swift-fox", service=True)
    agent_presence = "idle"
    agent.xmpp.send_presence(pstatus=agent_presence)

    outcome = await introduce(provisioner, alice.bare_jid, agent.bare_jid, "swift-fox (api)")

    assert outcome is Introduction.ROSTER
    # Alice's client got a roster push, as Conversations would, and shows the contact named and grouped.
    await alice.wait_until(lambda: any(p.jid == agent.bare_jid for p in alice.roster_pushes), "a roster push")
    push = next(p for p in alice.roster_pushes if p.jid == agent.bare_jid)
    assert (push.subscription, push.name, push.groups) == ("both", "swift-fox (api)", (CONTACT_GROUP,))
    assert alice.roster_item(agent.bare_jid) == {"subscription": "both", "name": "swift-fox (api)",
                                                 "groups": [CONTACT_GROUP]}
    # ... and the contact's current presence at once, without anyone sending presence again.
    await alice.wait_until(
        lambda: any(p.from_.startswith(agent.bare_jid + "/") and p.status == agent_presence for p in alice.presences),
        "the agent's presence",
    )
    # The other side: the agent has alice, both ways, and sees her online.
    await agent.wait_until(lambda: any(p.jid == alice.bare_jid for p in agent.roster_pushes), "a push to the agent")
    assert agent.roster_item(alice.bare_jid)["subscription"] == "both"  # type: ignore[index]
    await agent.wait_until(lambda: any(p.from_.startswith(alice.bare_jid + "/") for p in agent.presences),
                           "alice's presence")
    # What the server keeps, and what a later login sees.
    roster = await provisioner.roster(local(alice.bare_jid))
    assert roster[agent.bare_jid].subscription == "both" and roster[agent.bare_jid].groups == (CONTACT_GROUP,)
    await alice.disconnect()
    again = await user_client(local(alice.bare_jid), password=alice.xmpp.password, create=False, unique=False)
    assert again.roster_item(agent.bare_jid) == {"subscription": "both", "name": "swift-fox (api)",
                                                 "groups": [CONTACT_GROUP]}
    # Presence keeps flowing: a new status of the agent reaches the user (the subscription is real).
    agent.xmpp.send_presence(pstatus="working")
    await again.wait_until(lambda: any(p.status == "working" for p in again.presences), "the new status")


async def test_forget_removes_the_contact_from_both_rosters(provisioner, user_client) -> None:
    alice = await user_client("alice")
    agent = await user_client("brave-otter", service=True)
    await introduce(provisioner, alice.bare_jid, agent.bare_jid, "brave-otter (web)")
    await alice.wait_until(lambda: alice.roster_item(agent.bare_jid) is not None, "the contact")

    assert await forget(provisioner, alice.bare_jid, agent.bare_jid) is True

    await alice.wait_until(lambda: any(p.jid == agent.bare_jid and p.subscription == "remove"
                                       for p in alice.roster_pushes), "a remove push")
    assert alice.roster_item(agent.bare_jid) is None
    await agent.wait_until(lambda: agent.roster_item(alice.bare_jid) is None, "alice leaving the agent's roster")
    assert agent.bare_jid not in await provisioner.roster(local(alice.bare_jid))
    assert alice.bare_jid not in await provisioner.roster(local(agent.bare_jid))
    assert await forget(provisioner, alice.bare_jid, agent.bare_jid) is False  # nothing left to remove


async def test_an_offline_user_finds_the_contact_at_next_login(prosody, provisioner, user_client) -> None:
    bob = await user_client("bob", connect=False)
    manager = f"manager@{prosody.domain}"

    await provisioner.add_contact(local(bob.bare_jid), manager, "agentchat manager", (CONTACT_GROUP,))

    await bob.connect()
    assert bob.roster_item(manager) == {"subscription": "both", "name": "agentchat manager", "groups": [CONTACT_GROUP]}
    # Introducing again changes nothing but the name: no duplicate, still both ways.
    await provisioner.add_contact(local(bob.bare_jid), manager, "manager", (CONTACT_GROUP,))
    await bob.wait_until(lambda: (bob.roster_item(manager) or {}).get("name") == "manager", "the new name")
    assert bob.roster_item(manager)["subscription"] == "both"  # type: ignore[index]


async def test_roster_calls_refuse_what_they_cannot_do(prosody, provisioner, user_client) -> None:
    alice = await user_client("alice", connect=False)
    name = local(alice.bare_jid)
    with pytest.raises(AccountMissing, match="not an account on this server"):
        await provisioner.add_contact(name, f"nobody-{secrets.token_hex(3)}@{prosody.domain}", "x")
    with pytest.raises(AccountMissing, match="not an account on this server"):
        await provisioner.add_contact(name, "someone@elsewhere.example", "x")
    with pytest.raises(AccountMissing, match="User does not exist"):
        await provisioner.add_contact(f"ghost-{secrets.token_hex(3)}", f"manager@{prosody.domain}", "x")
    with pytest.raises(ProvisioningError, match="HTTP 400"):
        await provisioner.add_contact(name, alice.bare_jid, "myself")
    with pytest.raises(ProvisioningError, match="HTTP 400"):
        await provisioner.add_contact(name, f"manager@{prosody.domain}/resource", "x")
    with pytest.raises(AccountMissing):
        await provisioner.roster(f"ghost-{secrets.token_hex(3)}")
    with pytest.raises(AccountMissing, match="not in the roster"):
        await provisioner.remove_contact(name, f"manager@{prosody.domain}")


async def test_without_roster_editing_the_contact_asks_and_the_user_accepts(prosody, user_client) -> None:
    """The XEP-0133 fallback: the bot pre-approves and asks; the user's client shows a request."""
    alice = await user_client("alice")
    alice.xmpp.roster.auto_authorize = None  # decide by hand, as a person in Conversations does
    alice.xmpp.roster.auto_subscribe = False
    bot_name = f"quiet-owl-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    await prosody.mark_service(bot_name)
    await prosody.create_account(bot_name, password)
    bot = XmppSession(f"{bot_name}@{prosody.domain}", password, XmppSettings(host=prosody.host, port=prosody.c2s_port,
                      domain=prosody.domain))
    await bot.start()
    admin = XmppSession(prosody.admin_jid, prosody.admin_password,
                        XmppSettings(host=prosody.host, port=prosody.c2s_port, domain=prosody.domain),
                        extra_plugins=("xep_0004", "xep_0050"))
    await admin.start()
    try:
        adhoc = AdhocProvisioner(admin.client, prosody.domain)
        with pytest.raises(RostersUnsupported):
            await adhoc.add_contact("x", "y@z")
        with pytest.raises(ProvisioningError, match="no subscription request"):
            await introduce(adhoc, alice.bare_jid, bot.jid, "quiet-owl")

        outcome = await introduce(adhoc, alice.bare_jid, bot.jid, "quiet-owl", request_subscription=bot.request_subscription)

        assert outcome is Introduction.REQUESTED
        await alice.wait_until(lambda: any(p.from_ == bot.jid and p.type == "subscribe" for p in alice.presences),
                               "a subscription request")
        # Accept, and ask back, as clients do with one tap: the bot pre-approved, so it is mutual at once.
        alice.xmpp.send_presence(pto=bot.jid, ptype="subscribed")
        alice.xmpp.send_presence(pto=bot.jid, ptype="subscribe")
        await alice.wait_until(lambda: (alice.roster_item(bot.jid) or {}).get("subscription") == "both",
                               "a mutual subscription")
        assert await forget(adhoc, alice.bare_jid, bot.jid) is False  # nothing to do server-side
    finally:
        await bot.stop()
        await admin.stop()
