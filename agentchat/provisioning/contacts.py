"""Contacts that appear by themselves: the manager and each agent in their user's roster.

The one entry point for the bots: ``introduce`` when a user should see a contact (the manager on
first contact, an agent when it is created), ``forget`` when it goes (an agent killed).

Two ways, chosen by what the provisioner can do:
- ``edits_rosters`` (our mod_admin_rest): both rosters are edited on the server, with subscription
  "both", the contact named and in the group "agentchat". Online clients get a roster push and
  the contact's presence at once; nothing to accept.
- otherwise (XEP-0133 has no roster command): the contact's own session asks for a subscription and
  pre-approves the user's (``XmppSession.request_subscription``: ``subscribed`` then ``subscribe``,
  sent again on every new session). The user's client shows a request to accept; once accepted the
  subscription is mutual. The client names the contact itself; there is no group.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from agentchat.errors import ProvisioningError
from agentchat.provisioning.base import AccountMissing, Provisioner

log = logging.getLogger(__name__)

CONTACT_GROUP = "agentchat"

SubscriptionRequest = Callable[[str], None]


class Introduction(enum.Enum):
    ROSTER = "roster"  # in the user's roster now, subscription both ways
    REQUESTED = "requested"  # the contact asked; the user's client shows a subscription request


async def introduce(
    provisioner: Provisioner,
    user_jid: str,
    contact_jid: str,
    name: str | None,
    *,
    group: str = CONTACT_GROUP,
    request_subscription: SubscriptionRequest | None = None,
) -> Introduction:
    """Make ``contact_jid`` a contact of ``user_jid`` (bare JIDs), both ways.

    ``request_subscription`` is the fallback when the server's rosters cannot be edited (or the user
    is on another server): called with ``user_jid``, it must make the contact's own session ask
    (``XmppSession.request_subscription``). Raises ProvisioningError when neither way works.
    """
    username = _local_username(provisioner, user_jid)
    if provisioner.edits_rosters and username is not None:
        await provisioner.add_contact(username, contact_jid, name, (group,))
        log.info("%s is in the roster of %s (group %s)", contact_jid, user_jid, group)
        return Introduction.ROSTER
    if request_subscription is None:
        raise ProvisioningError(
            f"cannot put {contact_jid} into the roster of {user_jid}: "
            f"{type(provisioner).__name__} cannot edit rosters there, and no subscription request was given"
        )
    request_subscription(user_jid)
    log.info("%s asked %s for a presence subscription", contact_jid, user_jid)
    return Introduction.REQUESTED


async def forget(provisioner: Provisioner, user_jid: str, contact_jid: str) -> bool:
    """Take ``contact_jid`` out of ``user_jid``'s roster (and the user out of the contact's).

    True if something was removed. Without roster editing, False: deleting the contact's account
    makes Prosody end the subscriptions, and the user's client keeps a contact without one
    until the user removes it.
    """
    username = _local_username(provisioner, user_jid)
    if not provisioner.edits_rosters or username is None:
        return False
    try:
        await provisioner.remove_contact(username, contact_jid)
    except AccountMissing:
        return False
    log.info("%s left the roster of %s", contact_jid, user_jid)
    return True


def _local_username(provisioner: Provisioner, user_jid: str) -> str | None:
    local, _, domain = user_jid.partition("@")
    if not local or domain.lower() != provisioner.domain.lower() or "/" in domain:
        return None
    return local
