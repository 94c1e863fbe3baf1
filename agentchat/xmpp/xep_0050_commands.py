"""XEP-0050 ad-hoc commands with XEP-0004 data forms: a bot's ``FormCommand``s (agentchat.chat.forms) served on
its account, through slixmpp's xep_0050 and xep_0004 plugins.

Transport only: a ``Page`` becomes a form (``type="form"``), the submitted form becomes ``Answers`` (plain
typed values, read from the XML of the page's own fields), ``Done`` becomes the command's notes and, for a
``Table``, a result form (``reported`` and ``item``). What a command does, and who may run it, is the bot's
business: the requester's bare JID is handed to ``FormCommand.start``.

Commands answer on the account's full JID (``<account>/agentchat``, the resource every service account
binds): XMPP servers answer IQs to a bare JID themselves (prosody-slixmpp.md G15). Sessions left open
(a form never submitted) end after ``SESSION_TIMEOUT``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Any

from slixmpp.jid import JID
from slixmpp.plugins.xep_0004 import Form as XmppForm
from slixmpp.plugins.xep_0030 import DiscoInfo, DiscoItems

from agentchat.chat.forms import Answers, Done, FieldKind, Form, FormCommand, FormInputError, Page, Step, Table
from agentchat.errors import AgentChatError
from agentchat.xmpp.session import RESOURCE, XmppSession

log = logging.getLogger(__name__)

NS_DATA = "jabber:x:data"
NS_COMMANDS = "http://jabber.org/protocol/commands"
SESSION_TIMEOUT = 600.0
PLUGINS = ("xep_0004", "xep_0050")
# Where the current page of a command session is kept (slixmpp's session dict, one per execution).
_PAGE = "agentchat_page"
_COMMAND = "agentchat_command"


class AdHocCommands:
    """The commands one account serves. ``install()`` once, before the session starts (or after)."""

    def __init__(self, session: XmppSession, commands: Sequence[FormCommand]) -> None:
        missing = [name for name in PLUGINS if name not in session.client.plugin]
        if missing:
            raise AgentChatError(f"{session.jid}: ad-hoc commands need the slixmpp plugins {', '.join(missing)}")
        self._session = session
        self._commands = tuple(commands)

    @property
    def full_jid(self) -> str:
        return f"{self._session.jid}/{RESOURCE}"

    def install(self) -> None:
        """Serve the commands. Their disco#items and disco#info are answered by handlers rather than stored
        (slixmpp's add_command keeps a disco node per command and JID: 41 kB a bot for six commands), and
        they outlive every new session (xep_0050 empties its stored list at each bind)."""
        jid = JID(self.full_jid)
        disco = self._session.client.plugin["xep_0030"]
        self._session.client.plugin["xep_0050"].api.register(self._find, "get_command", jid=jid)
        disco.set_node_handler("get_items", jid, NS_COMMANDS, self._items)
        disco.set_node_handler("get_info", jid, NS_COMMANDS, self._list_info)
        for command in self._commands:
            disco.set_node_handler("get_info", jid, command.node, self._command_info)

    # what slixmpp asks: the command behind a node, and disco

    def _find(self, _jid: JID | None, node: str | None, _ifrom: JID | None, _args: Any) -> tuple[str, Any, None, float] | None:
        command = next((c for c in self._commands if c.node == node), None)
        if command is None:
            return None
        return command.name, partial(self._start, command), None, SESSION_TIMEOUT

    def _items(self, jid: JID, node: str, _ifrom: JID | None, _data: object) -> DiscoItems:
        items = DiscoItems()
        # Each answer names the node asked, as XEP-0030 requires (slixmpp's reply() drops the request's
        # node): Converse.js lists no command from a disco#items answer without it.
        items["node"] = node
        for command in self._commands:
            items.add_item(jid, command.node, command.name)
        return items

    def _list_info(self, _jid: JID, node: str, _ifrom: JID | None, _data: object) -> DiscoInfo:
        info = DiscoInfo()
        info["node"] = node
        info.add_identity("automation", "command-list", name="Ad-Hoc commands")
        return info

    def _command_info(self, _jid: JID, node: str, _ifrom: JID | None, _data: object) -> DiscoInfo:
        info = DiscoInfo()
        info["node"] = node
        command = next((c for c in self._commands if c.node == node), None)
        info.add_identity("automation", "command-node", name=command.name if command else node)
        info.add_feature(NS_COMMANDS)
        info.add_feature(NS_DATA)
        return info

    # slixmpp's handlers: (iq, session) to start, (payload, session) for each submitted page

    async def _start(self, command: FormCommand, iq: Any, session: dict[str, Any]) -> dict[str, Any]:
        requester = str(iq["from"].bare).lower()
        session[_COMMAND] = command.node
        step = await self._guarded(command.node, requester, command.start(requester))
        return self._show(step, session)

    async def _submit(self, payload: Any, session: dict[str, Any]) -> dict[str, Any]:
        page: Page | None = session.get(_PAGE)
        requester = str(session["from"].bare).lower()
        if page is None:  # pragma: no cover - slixmpp only calls us with a page shown
            return self._show(Done.error("This command has ended; run it again."), session)
        answers = Answers.of(page.form, _submitted_values(payload))
        step = await self._guarded(session.get(_COMMAND, "?"), requester, page.submit(answers))
        return self._show(step, session)

    async def _guarded(self, node: str, requester: str, pending: Any) -> Step:
        """The step a command gives; its failures become one error note, never an unanswered IQ."""
        try:
            step: Step = await pending
            return step
        except FormInputError as exc:
            return Done.error(str(exc))
        except AgentChatError as exc:
            log.warning("%s: command %s for %s failed: %s", self._session.jid, node, requester, exc)
            return Done.error(f"⚠️ {exc}")
        except Exception:
            log.exception("%s: command %s for %s failed", self._session.jid, node, requester)
            return Done.error("⚠️ Internal error (see the service log).")

    def _show(self, step: Step, session: dict[str, Any]) -> dict[str, Any]:
        if isinstance(step, Page):
            session[_PAGE] = step
            session["payload"] = self._form(step.form)
            session["next"] = self._submit
            session["has_next"] = not step.last
            session["allow_complete"] = False
            session["notes"] = None
            return session
        session.pop(_PAGE, None)
        session["payload"] = self._table(step.table) if step.table is not None else None
        session["notes"] = [(note.kind.value, note.text) for note in step.notes] or None
        session["next"] = None
        session["has_next"] = False
        return session

    # chat.forms -> XEP-0004

    def _new_form(self, ftype: str, title: str, instructions: str = "") -> XmppForm:
        form: XmppForm = self._session.client.plugin["xep_0004"].make_form(ftype=ftype, title=title)
        if instructions:
            form["instructions"] = instructions
        return form

    def _form(self, form: Form) -> XmppForm:
        xmpp_form = self._new_form("form", form.title, form.instructions)
        for spec in form.fields:
            options = [{"label": option.label or option.value, "value": option.value} for option in spec.options]
            added = xmpp_form.add_field(
                var=spec.var, ftype=spec.kind.value, label=spec.label, desc=spec.description,
                required=spec.required and spec.kind is not FieldKind.FIXED, options=options or None,
            )
            value = spec.value
            if value is None:
                continue
            if spec.kind is FieldKind.CHOICES:
                added["value"] = list(value) if isinstance(value, tuple) else [str(value)]
            elif spec.kind is FieldKind.BOOLEAN:
                added["value"] = bool(value)
            elif spec.kind is FieldKind.TEXT_MULTI:
                added["value"] = str(value).split("\n")
            else:
                added["value"] = str(value)
        return xmpp_form

    def _table(self, table: Table) -> XmppForm:
        form = self._new_form("result", table.title)
        for key, heading in table.columns:
            form.add_reported(key, ftype="text-single", label=heading)
        for row in table.rows:
            form.add_item({key: str(row.get(key, "")) for key, _ in table.columns})
        return form


def _submitted_values(payload: Any) -> dict[str, list[str]]:
    """Every field's ``<value/>`` texts of the submitted form (types are the page's, not the sender's)."""
    items = payload if isinstance(payload, list) else [payload]
    form = next((item for item in items if isinstance(item, XmppForm)), None)
    if form is None:
        return {}
    values: dict[str, list[str]] = {}
    for element in form.xml.findall(f"{{{NS_DATA}}}field"):
        var = element.get("var")
        if var:
            values[var] = [value.text or "" for value in element.findall(f"{{{NS_DATA}}}value")]
    return values
