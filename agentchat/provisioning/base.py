"""The one interface every account provisioner implements (mod_admin_rest over HTTP, XEP-0133 over XMPP)."""

from __future__ import annotations

import abc
import re

from agentchat.errors import ProvisioningError


class AccountExists(ProvisioningError):
    """create_account: the account is already there (its password was left alone)."""


class AccountMissing(ProvisioningError):
    """delete_account / change_password: there is no such account."""


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

    @abc.abstractmethod
    async def close(self) -> None:
        """Release what the provisioner owns (an HTTP session; never a borrowed XMPP client)."""

    async def __aenter__(self) -> Provisioner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
