"""Provisioning over XMPP with XEP-0133 (Service Administration) via Prosody's mod_admin_adhoc.

Uses an admin session that is already logged in (the manager's). Each command is one round
trip: Prosody processes a submitted form that arrives with the first ``execute``.
Prosody reports most failures as a note in an IQ *result*, not as an IQ error (pitfall G10).
"""

from __future__ import annotations

import logging

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from agentchat.errors import ProvisioningError
from agentchat.provisioning.base import AccountExists, AccountMissing, Provisioner, check_password

log = logging.getLogger(__name__)

ADMIN_NS = "http://jabber.org/protocol/admin"
# Note texts of Prosody 0.12's mod_admin_adhoc that carry a meaning we act on.
_EXISTS = "Account already exists"
_NO_SUCH_USER = "User does not exist"
_NOT_DELETED = "could not be deleted"

Notes = list[tuple[str, str]]


class AdhocProvisioner(Provisioner):
    """Sends XEP-0133 commands to the domain's host JID from ``client`` (an admin of it)."""

    def __init__(self, client: slixmpp.ClientXMPP, domain: str, *, timeout: float = 10.0) -> None:
        self.client = client
        self.domain = domain
        self._timeout = timeout
        for plugin in ("xep_0030", "xep_0004", "xep_0050"):
            if plugin not in client.plugin:
                client.register_plugin(plugin)

    async def create_account(self, username: str, password: str) -> None:
        jid = self.jid(username)
        password = check_password(password)
        errors, _ = await self._command("add-user", {"accountjid": jid, "password": password, "password-verify": password})
        if any(_EXISTS in text for text in errors):
            raise AccountExists(f"account {jid} already exists")
        if errors:
            raise ProvisioningError(f"cannot create account {jid}: {'; '.join(errors)}")

    async def delete_account(self, username: str) -> None:
        jid = self.jid(username)
        errors, infos = await self._command("delete-user", {"accountjids": [jid]})
        if errors:
            raise ProvisioningError(f"cannot delete account {jid}: {'; '.join(errors)}")
        if any(_NOT_DELETED in text for text in infos):  # a failure, reported as type="info"
            if await self.account_exists(username):
                raise ProvisioningError(f"cannot delete account {jid}: the server kept it")
            raise AccountMissing(f"account {jid} does not exist")

    async def change_password(self, username: str, password: str) -> None:
        jid = self.jid(username)
        errors, _ = await self._command("change-user-password", {"accountjid": jid, "password": check_password(password)})
        if any(_NO_SUCH_USER in text for text in errors):
            raise AccountMissing(f"account {jid} does not exist")
        if errors:
            raise ProvisioningError(f"cannot change the password of {jid}: {'; '.join(errors)}")

    async def account_exists(self, username: str) -> bool:
        # 0.12 has no "does this user exist" command; user-stats answers "User does not exist".
        jid = self.jid(username)
        errors, _ = await self._command("user-stats", {"accountjid": jid})
        if any(_NO_SUCH_USER in text for text in errors):
            return False
        if errors:
            raise ProvisioningError(f"cannot look up account {jid}: {'; '.join(errors)}")
        return True

    async def close(self) -> None:
        """Nothing to release: the XMPP session belongs to its owner (the manager)."""

    async def _command(self, command: str, fields: dict[str, str | list[str]]) -> tuple[list[str], list[str]]:
        """Run one admin command with a filled form; return the error and info note texts."""
        form = self.client.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value=ADMIN_NS)
        for var, value in fields.items():
            if isinstance(value, list):
                form.add_field(var=var, ftype="jid-multi", value=value)
            else:
                form.add_field(var=var, value=value)
        try:
            iq = await self.client.plugin["xep_0050"].send_command(
                self.domain, f"{ADMIN_NS}#{command}", payload=form, timeout=self._timeout
            )
        except IqError as exc:
            condition = exc.iq["error"]["condition"]
            if condition == "forbidden":
                raise ProvisioningError(
                    f"{self.client.boundjid.bare} may not run {command}: it is not an admin of {self.domain}"
                ) from None
            raise ProvisioningError(f"XEP-0133 {command} failed: {condition} {exc.text}".strip()) from None
        except IqTimeout:
            raise ProvisioningError(f"XEP-0133 {command} got no answer from {self.domain} in {self._timeout:g} s") from None
        notes: Notes = list(iq["command"]["notes"])
        log.debug("XEP-0133 %s -> %s %s", command, iq["command"]["status"], [kind for kind, _ in notes])
        errors = [text for kind, text in notes if kind == "error"]
        infos = [text for kind, text in notes if kind != "error"]
        return errors, infos
