"""Converse.js in Chromium, driven as a person would: what the browser tests share.

Each wait is on what the page shows (an element, a text), never on time alone. The roster needs care: it
re-sorts when a contact comes online, and a contact with unread messages is listed twice, in its group and
in a "New messages" group that appears at the top. With Chromium slowed down (CPU throttled 12 times) the
agent's answer came before the test's click on its entry, and the entry was there twice; on a busy machine
the same race moves the entry away under the pointer, and another chat opens. ``open_chat`` clicks the
entry under "New messages": once it is there the contact is online and has written, and the roster holds
still. Messages and text boxes are looked up in the chat of the JID concerned (one chat shows at a time):
a message that went to another chat fails at once, not as an answer that never came.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agentchat.server.web_client import converse_dist_dir

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

    from tests.harness.prosody import ProsodyServer

CHROMIUM = os.environ.get("AGENTCHAT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".cache" / "test-artifacts"
STEP = 20_000  # ms for one step seen in the page (an answer, a prompt)
# What Chromium must not do on a machine without a network (each of these phones home at start).
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-gpu", "--disable-quic"]
# Converse's name for the roster group of contacts with unread messages (labels.HEADER_UNREAD).
NEW_MESSAGES = "New messages"


def missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (make test installs Debian's chromium with apt)"
    if converse_dist_dir() is None:
        return "Converse.js is not installed (make install fetches it with npm)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return None


requires_browser = pytest.mark.skipif(missing() is not None, reason=missing() or "")


async def alice_with_the_manager(server: ProsodyServer, manager_jid: str) -> None:
    """The person of the browser tests, alice (password "alice-password"), with the manager among her
    contacts, as `agentchat user add` leaves her."""
    from agentchat.provisioning.admin_rest import AdminRestProvisioner
    from agentchat.provisioning.contacts import introduce

    await server.create_account("alice", "alice-password")
    async with AdminRestProvisioner(server.admin_rest_url, server.domain, server.admin_jid, server.admin_password) as rest:
        await introduce(rest, "alice@localhost", manager_jid, "agentchat manager")


class ConversePage:
    """One person's Converse page."""

    def __init__(self, page: Page) -> None:
        self.page = page

    async def log_in(self, jid: str, password: str, contact_name: str) -> None:
        """Log in through the login form; done once the chat it opens on (``auto_join_private_chats``)
        shows ``contact_name``: the roster has arrived, not only the connection."""
        await self.page.fill("#converse-login-jid", jid)
        await self.page.fill("#converse-login-password", password)
        await self.page.click("converse-login-form [type=submit]")
        # Converse's "connected" (on <body data-xmpp>, agentchat.js) comes after SASL and bind.
        await self.page.locator("body[data-xmpp=connected]").wait_for(state="attached", timeout=STEP)
        await self.heading(contact_name).wait_for(timeout=STEP)

    def heading(self, contact_name: str) -> Locator:
        return self.page.locator("converse-chat-heading", has_text=contact_name).locator("visible=true")

    def chat(self, jid: str) -> Locator:
        return self.page.locator(f'converse-chat[jid="{jid}"]')

    async def say(self, jid: str, text: str) -> None:
        box = self.chat(jid).locator("textarea.chat-textarea")
        await box.fill(text)
        await box.press("Enter")

    async def seen(self, jid: str, text: str) -> str:
        """The last message of ``jid``'s chat containing ``text``, once it is shown."""
        found = self.chat(jid).locator(".chat-msg__text", has_text=text).last
        await found.wait_for(timeout=STEP)
        return await found.inner_text()

    # Converse's ad-hoc commands (its converse-adhoc-views plugin): the ⚙ by your own name → Settings →
    # Commands, an address, "List available commands"; a command's name opens its form or its result.

    @property
    def commands(self) -> Locator:
        return self.page.locator("converse-adhoc-commands")

    async def list_commands(self, jid: str, runs_at: str | None = None) -> dict[str, str]:
        """node -> name of each command ``jid`` offers, once listed; ``runs_at``: the address the listing
        names for running them (a bot's full JID when asked at its bare one)."""
        await self._ask_commands(jid)
        found = self.commands.locator(f'a[data-command-node][data-command-jid="{runs_at or jid}"]')
        await found.first.wait_for(timeout=STEP)
        return {await link.get_attribute("data-command-node") or "": await link.inner_text() for link in await found.all()}

    async def _ask_commands(self, jid: str) -> None:
        if not await self.commands.is_visible():
            await self.page.locator("converse-controlbox a.show-client-info").click()
            await self.page.locator("converse-user-settings-modal #commands-tab").click()
        await self.commands.locator("input[name=jid]").fill(jid)
        await self.commands.locator("input[type=submit]").click()

    async def open_command(self, node: str) -> Locator:
        """Run a listed command: its form, or its result (a note, a table), below its name. (The name of
        the command shown already hides it: Converse toggles.)"""
        item = self.commands.locator("li.list-group-item", has=self.page.locator(f'a[data-command-node="{node}"]'))
        await item.locator("a[data-command-node]").click()
        shown = item.locator("form")
        await shown.wait_for(timeout=STEP)
        return shown

    async def completed(self, text: str) -> str:
        """The note containing ``text`` of a submitted form, and Converse says "Completed"."""
        note = await self.commands.locator("p.form-help", has_text=text).inner_text(timeout=STEP)
        assert await self.commands.locator(".alert", has_text="Completed").is_visible()
        return note

    async def close_settings(self) -> None:
        await self.page.locator("converse-user-settings-modal .modal-footer button", has_text="Close").click()
        await self.commands.wait_for(state="hidden", timeout=STEP)

    async def open_chat(self, jid: str, contact_name: str) -> None:
        """Open ``jid``'s chat from the roster once it has written (see the module's docstring)."""
        entry = self.page.locator(f'converse-roster .roster-group[data-group="{NEW_MESSAGES}"] '
                                  f'a.open-chat[data-jid="{jid}"]')
        await entry.click(timeout=STEP)
        await self.heading(contact_name).wait_for(timeout=STEP)
