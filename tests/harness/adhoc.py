"""A test user's side of XEP-0050 ad-hoc commands, through slixmpp's xep_0050 and xep_0004 plugins, as Gajim
drives them: list a contact's commands (disco#items on its full JID), execute one, fill in the form it
returns and submit it (``next`` or ``complete``), read the notes and the result table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slixmpp.plugins.xep_0004 import Form
from slixmpp.stanza import Iq

from tests.harness.clients import UserClient

NS_COMMANDS = "http://jabber.org/protocol/commands"


@dataclass
class CommandStep:
    """One answer of the command's provider."""

    node: str
    sessionid: str
    status: str  # executing, completed, canceled
    actions: list[str]
    form: Form | None
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def fields(self) -> dict[str, Any]:
        return self.form.get_fields() if self.form is not None else {}

    def options(self, var: str) -> list[str]:
        return [option["value"] for option in self.fields[var]["options"]]

    def value(self, var: str) -> Any:
        return self.fields[var]["value"]

    @property
    def text(self) -> str:
        return "\n".join(text for _, text in self.notes)

    @property
    def table(self) -> tuple[list[str], list[dict[str, Any]]]:
        """(column vars, rows) of a result form."""
        assert self.form is not None and self.form["type"] == "result", self
        return list(self.form.get_reported()), self.form.get_items()


class AdHoc:
    """Runs ``jid``'s commands as ``client``; ``jid`` must be a full JID (servers answer for bare ones)."""

    def __init__(self, client: UserClient, jid: str) -> None:
        self.client = client
        self.jid = jid

    async def commands(self) -> dict[str, str]:
        """node -> name of every command the contact offers."""
        items = await self.client.xmpp.plugin["xep_0050"].get_commands(self.jid, timeout=10)
        return {node: name for _, node, name in items["disco_items"]["items"]}

    async def execute(self, node: str) -> CommandStep:
        return await self._send(node, "execute")

    async def submit(self, step: CommandStep, values: Mapping[str, Any], action: str = "complete") -> CommandStep:
        """Answer ``step``'s form with ``values`` (var -> str, bool or list), the others left as offered."""
        assert step.form is not None, step
        form = self.client.xmpp.plugin["xep_0004"].make_form(ftype="submit")
        for var, offered in step.fields.items():
            kind = offered["type"]
            if kind == "fixed" or not var:
                continue
            value = values.get(var, offered["value"])
            if value is None:
                continue
            submitted = form.add_field(var=var, ftype=kind)
            submitted["value"] = value
        return await self._send(step.node, action, form, step.sessionid)

    async def cancel(self, step: CommandStep) -> CommandStep:
        return await self._send(step.node, "cancel", None, step.sessionid)

    async def _send(self, node: str, action: str, payload: Form | None = None, sessionid: str | None = None) -> CommandStep:
        iq: Iq = self.client.xmpp.Iq()
        iq["type"] = "set"
        iq["to"] = self.jid
        iq["command"]["node"] = node
        iq["command"]["action"] = action
        if sessionid:
            iq["command"]["sessionid"] = sessionid
        if payload is not None:
            iq["command"].append(payload)
        answer = await iq.send(timeout=30)
        command = answer["command"]
        forms = [item for item in command["substanzas"] if isinstance(item, Form)]
        return CommandStep(
            node=command["node"],
            sessionid=command["sessionid"],
            status=command["status"],
            actions=list(command["actions"]),
            form=forms[0] if forms else None,
            notes=[(kind, text) for kind, text in command["notes"]],
        )
