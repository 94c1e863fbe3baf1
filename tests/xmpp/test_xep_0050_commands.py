"""The XEP-0050 transport alone: FormCommands served on an XmppSession's full JID, forms ↔ typed answers, pages,
tables, failures that become one error note (never an unanswered IQ), and commands still there after a new
session (slixmpp empties the list at every bind)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator

import pytest

from agentchat.chat.forms import Answers, Done, Field, FieldKind, Form, FormCommand, Option, Page, Step, Table, choice_field
from agentchat.config import XmppSettings
from agentchat.xmpp.session import RESOURCE, XmppSession
from agentchat.xmpp.xep_0050_commands import PLUGINS, AdHocCommands
from tests.harness.adhoc import AdHoc
from tests.harness.prosody import ProsodyServer

seen: list[tuple[str, object]] = []


async def echo_start(requester: str) -> Step:
    seen.append(("start", requester))
    form = Form("Echo", (
        Field("text", FieldKind.TEXT_MULTI, "Text", "one\ntwo"),
        Field("sizes", FieldKind.CHOICES, "Sizes", ("m",), (Option("s", "Small"), Option("m", "Medium"), Option("l"))),
        Field("sure", FieldKind.BOOLEAN, "Sure", False),
        choice_field("next", "Then", [("table", "a table"), ("fail", "fail")]),
    ), instructions="Say something.")
    return Page(form, echo_submit, last=False)


async def echo_submit(answers: Answers) -> Step:
    seen.append(("answers", dict(answers.values)))
    if answers.choice("next") == "fail":
        raise RuntimeError("a bug in a command")
    rows = tuple({"text": line, "n": str(number)} for number, line in enumerate(answers.raw_text("text").split("\n")))
    return Page(Form("Last", (Field("x", FieldKind.TEXT, "X"),)), lambda _answers: _table(rows))


async def _table(rows: tuple[dict[str, str], ...]) -> Done:
    return Done(table=Table("Lines", (("n", "#"), ("text", "Text")), rows))


@pytest.fixture
async def bot(prosody: ProsodyServer) -> AsyncIterator[XmppSession]:
    name = f"formbot-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    await prosody.create_account(name, password)
    settings = XmppSettings(host=prosody.host, port=prosody.c2s_port, domain=prosody.domain)
    session = XmppSession(f"{name}@{prosody.domain}", password, settings, extra_plugins=PLUGINS)
    AdHocCommands(session, [FormCommand("echo", "Echo", echo_start)]).install()
    await session.start()
    yield session
    await session.stop()


async def test_pages_answers_and_a_table_round_trip(bot: XmppSession, user_client) -> None:
    seen.clear()
    alice = await user_client("Alice")
    commands = AdHoc(alice, f"{bot.jid}/{RESOURCE}")
    assert await commands.commands() == {"echo": "Echo"}
    page = await commands.execute("echo")
    assert seen == [("start", alice.bare_jid.lower())]
    assert page.actions == ["next"] and page.form["instructions"] == "Say something."
    assert page.fields["sizes"]["type"] == "list-multi" and page.options("sizes") == ["s", "m", "l"]
    assert page.value("text") == ["one", "two"] and page.value("sure") is False
    second = await commands.submit(page, {"text": "α\nβ  \n\ngamma", "sizes": ["s", "l"], "sure": True}, action="next")
    assert seen[-1] == ("answers", {"text": "α\nβ  \n\ngamma", "sizes": ("s", "l"), "sure": True, "next": "table"})
    assert second.status == "executing" and second.actions == ["complete"]
    done = await commands.submit(second, {"x": "?"})
    assert done.status == "completed"
    columns, rows = done.table
    assert columns == ["n", "text"]
    assert rows == [{"n": "0", "text": "α"}, {"n": "1", "text": "β  "}, {"n": "2", "text": ""}, {"n": "3", "text": "gamma"}]


async def test_a_failing_command_answers_with_an_error_note(bot: XmppSession, user_client, caplog) -> None:
    alice = await user_client("alice")
    commands = AdHoc(alice, f"{bot.jid}/{RESOURCE}")
    page = await commands.execute("echo")
    with caplog.at_level(logging.ERROR):
        failed = await commands.submit(page, {"next": "fail"}, action="next")
    assert failed.status == "completed" and failed.notes == [("error", "⚠️ Internal error (see the service log).")]
    assert "a bug in a command" in caplog.text
    cancelled = await commands.cancel(await commands.execute("echo"))
    assert cancelled.status == "canceled"


async def test_commands_are_offered_again_after_a_new_session(bot: XmppSession, user_client) -> None:
    await bot.stop()
    await bot.start()
    alice = await user_client("alice")
    assert await AdHoc(alice, f"{bot.jid}/{RESOURCE}").commands() == {"echo": "Echo"}


async def test_disco_describes_the_command_list_and_each_command(bot: XmppSession, user_client) -> None:
    alice = await user_client("alice")
    disco = alice.xmpp.plugin["xep_0030"]
    full = f"{bot.jid}/{RESOURCE}"
    root = await disco.get_info(jid=full, timeout=10)
    assert "http://jabber.org/protocol/commands" in root["disco_info"]["features"]
    listing = await disco.get_info(jid=full, node="http://jabber.org/protocol/commands", timeout=10)
    assert ("automation", "command-list", None, "Ad-Hoc commands") in listing["disco_info"]["identities"]
    echo = await disco.get_info(jid=full, node="echo", timeout=10)
    assert ("automation", "command-node", None, "Echo") in echo["disco_info"]["identities"]
    # Each answer names the node asked (XEP-0030): Converse.js lists no command from an answer without it.
    items = await disco.get_items(jid=full, node="http://jabber.org/protocol/commands", timeout=10)
    assert items["disco_items"]["node"] == "http://jabber.org/protocol/commands"
    assert listing["disco_info"]["node"] == "http://jabber.org/protocol/commands"
    assert echo["disco_info"]["node"] == "echo"
    assert {"http://jabber.org/protocol/commands", "jabber:x:data"} <= set(echo["disco_info"]["features"])


async def test_a_contact_finds_the_commands_at_the_bots_bare_jid(bot: XmppSession, prosody: ProsodyServer, user_client) -> None:
    """As Converse asks when the address is typed without its resource (mod_agentchat_commands); only a
    contact of the bot (a subscription, as `user add` and `new` make) gets that far."""
    from slixmpp.exceptions import IqError

    from agentchat.provisioning.admin_rest import AdminRestProvisioner
    from agentchat.provisioning.contacts import introduce

    alice, mallory = await user_client("alice"), await user_client("mallory")
    async with AdminRestProvisioner(prosody.admin_rest_url, prosody.domain, prosody.admin_jid, prosody.admin_password) as rest:
        await introduce(rest, alice.bare_jid, bot.jid, "form bot")
    disco = alice.xmpp.plugin["xep_0030"]
    info = await disco.get_info(jid=bot.jid, timeout=10)
    assert "http://jabber.org/protocol/commands" in info["disco_info"]["features"]
    items = await disco.get_items(jid=bot.jid, node="http://jabber.org/protocol/commands", timeout=10)
    assert str(items["from"]) == bot.jid  # answered in the name asked
    assert [(str(jid), node, name) for jid, node, name in items["disco_items"]["items"]] == [
        (f"{bot.jid}/{RESOURCE}", "echo", "Echo")]
    try:
        strangers = await mallory.xmpp.plugin["xep_0030"].get_items(
            jid=bot.jid, node="http://jabber.org/protocol/commands", timeout=10)
    except IqError:
        pass
    else:
        assert not strangers["disco_items"]["items"], strangers
