"""The one interface every account provisioner implements (mod_admin_rest over HTTP, XEP-0133 over XMPP)."""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import Self

from agentchat.errors import ProvisioningError


class AccountExists(ProvisioningError):
    """create_account: the account is already there (its password was left alone)."""


class AccountMissing(ProvisioningError):
    """delete_account / change_password / a roster call: there is no such account (or contact)."""


class RostersUnsupported(ProvisioningError):
    """This provisioner cannot edit rosters on the server (XEP-0133 has no roster command)."""


class SessionsUnsupported(ProvisioningError):
    """This provisioner cannot end an account's sessions with a reason of its own."""


@dataclass(frozen=True)
class RosterItem:
    """One contact in an account's roster, as the server keeps it (RFC 6121)."""

    jid: str
    subscription: str  # "none", "to", "from" or "both"
    name: str | None = None
    groups: tuple[str, ...] = field(default_factory=tuple)
    ask: str | None = None  # "subscribe" while a request of the account's own is pending


# Characters nodeprep forbids in a localpart, plus whitespace: refuse them before any round trip.
_BAD_LOCALPART = re.compile(r"[\s\"&'/:<>@\x00-\x1f\x7f]")


def check_username(username: str) -> str:
    """The localpart, lower-cased as the server would store it; ProvisioningError if unusable."""
    if not username or len(username.encode()) > 1023 or _BAD_LOCALPART.search(username):
        raise ProvisioningError(f"invalid account name {username!r}: use a localpart such as 'brave-otter'")
    return username.lower()


def check_password(password: str) -> str:
    if not password:
        raise ProvisioningError("an account password must not be empty")
    return password


class Provisioner(abc.ABC):
    """Creates, changes and deletes accounts on one XMPP domain. Usernames are localparts.

    Password changes and deletions close the account's live sessions (the server's own events).
    """

    domain: str

    def jid(self, username: str) -> str:
        return f"{check_username(username)}@{self.domain}"

    @abc.abstractmethod
    async def create_account(self, username: str, password: str) -> None:
        """Create the account; AccountExists if it is there already, ProvisioningError otherwise."""

    @abc.abstractmethod
    async def delete_account(self, username: str) -> None:
        """Delete the account and kick its sessions; AccountMissing if there is none."""

    @abc.abstractmethod
    async def change_password(self, username: str, password: str) -> None:
        """Set a new password and kick the account's sessions; AccountMissing if there is none."""

    @abc.abstractmethod
    async def account_exists(self, username: str) -> bool:
        """Whether the account exists."""

    # Whether add_contact / remove_contact / roster work: they edit rosters on the server itself.
    edits_rosters: bool = False

    async def add_contact(self, username: str, contact_jid: str, name: str | None = None,
                          groups: tuple[str, ...] = ()) -> None:
        """Put ``contact_jid`` (an account of this server) into ``username``'s roster and the account
        into the contact's, with subscription "both" each way, ``name`` and ``groups`` on the user's
        side; both get a roster push and each other's presence. Again: name and groups are replaced.

        AccountMissing if either account does not exist; RostersUnsupported if this provisioner
        cannot (then the contact asks for the subscription itself: see provisioning.contacts).
        """
        raise RostersUnsupported(f"{type(self).__name__} cannot edit rosters")

    async def remove_contact(self, username: str, contact_jid: str) -> None:
        """Take ``contact_jid`` out of ``username``'s roster and the account out of the contact's
        (pushed to online resources); AccountMissing if it was in neither."""
        raise RostersUnsupported(f"{type(self).__name__} cannot edit rosters")

    async def roster(self, username: str) -> dict[str, RosterItem]:
        """``username``'s roster by contact JID; AccountMissing if there is no such account."""
        raise RostersUnsupported(f"{type(self).__name__} cannot read rosters")

    async def end_sessions(self, username: str, reason: str) -> int:
        """End every session of the account, live or hibernating (XEP-0198), now: its contacts see it go
        unavailable with ``reason`` as its status, and what it was sent and did not acknowledge waits in
        offline storage. How many there were; AccountMissing if there is no such account."""
        raise SessionsUnsupported(f"{type(self).__name__} cannot end sessions")

    @abc.abstractmethod
    async def close(self) -> None:
        """Release what the provisioner owns (an HTTP session; never a borrowed XMPP client)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
