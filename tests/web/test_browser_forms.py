"""The bots' forms (XEP-0050 ad-hoc commands with XEP-0004 data forms) in the web client, in a real browser.

In Converse.js a person runs a contact's commands from the ⚙ by their own name (its converse-adhoc-views
plugin): Settings → Commands, the address, "List available commands"; a command's name opens its form,
"Complete" submits it. The address may be the bot's bare JID, as a person types it (Converse asks the
address as typed: our Prosody module mod_agentchat_commands answers there for the bot's session) or its
full JID (``…/agentchat``).
The screenshot of the filled New agent form goes to .cache/test-artifacts/web-client-form.png
(README's docs/web-client-form.png is one of them).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from agentchat.xmpp.session import RESOURCE
from tests.files.test_files_in import files_settings
from tests.support.service import make_repositories, running_service
from tests.web.converse import ARTIFACTS, ConversePage, alice_with_the_manager, requires_browser

pytestmark = requires_browser

MANAGER_COMMANDS = {"new": "New agent", "list": "List agents", "kill": "Kill agent"}
AGENT_COMMANDS = {"answer": "Answer prompt", "stop": "Stop", "mode": "Permission mode", "model": "Model",
                  "progress": "Progress", "status": "Status"}


async def test_the_new_agent_form_creates_an_agent_and_the_agents_forms_run(web_prosody, browser, tmp_path: Path) -> None:
    from playwright.async_api import Page

    server = web_prosody
    settings = files_settings(server, tmp_path)
    make_repositories(settings.work.base_path)
    await alice_with_the_manager(server, settings.manager_jid)
    timings: dict[str, float] = {}
    began = time.monotonic()

    async with running_service(settings):
        # Tall enough for the whole New agent form and its buttons in the screenshot.
        page: Page = await browser.new_page(viewport={"width": 1280, "height": 1080})  # type: ignore[attr-defined]
        await page.goto(f"http://localhost:{server.http_port}/")
        converse = ConversePage(page)
        await converse.log_in("alice@localhost", "alice-password", "agentchat manager")
        timings["login"] = time.monotonic() - began

        # The address as a person types it, the bare JID (the server lists the bot's commands there).
        assert await converse.list_commands(settings.manager_jid, f"{settings.manager_jid}/{RESOURCE}") == MANAGER_COMMANDS

        # New agent: the type and repository lists and the first task, on one page.
        form = await converse.open_command("new")
        assert await form.locator("h6").inner_text() == "New agent"
        assert "An agent works in one repository under" in await form.locator(".form-instructions").inner_text()
        labels = await form.locator("label").all_inner_texts()
        assert labels == ["Agent type", "Repository", "First task\nLeave empty to start without one."], labels
        assert "Claude Code" in await form.locator("select[name=type] option").all_inner_texts()
        assert await form.locator("select[name=repository] option").all_inner_texts() == ["api (git)", "web"]
        await form.locator("select[name=repository]").select_option("web")
        await form.locator("textarea[name=task]").fill("hello from a form\nin two lines")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "web-client-form.png"))
        await form.locator("input[data-action=complete]").click()
        note = await converse.completed("created. Chat at")
        created = re.fullmatch(r"⏳ Creating a claude agent in web…\nAgent (\S+) created\. Chat at (\S+)", note)
        assert created is not None, note
        agent_id, agent = created.groups()
        timings["agent created"] = time.monotonic() - began

        # List agents: a table, at once.
        table = (await converse.open_command("list")).locator("table")
        assert await table.locator("th").all_inner_texts() == ["Agent", "State", "Repository", "Mode", "Chat"]
        row = await table.locator("tbody tr td").all_inner_texts()
        assert [row[0], *row[2:]] == [agent_id, "web", "default", agent], row

        # Kill agent: the agent (a list) and a confirmation box; left unticked, nothing is killed, and
        # Converse says "Completed" above the warning.
        form = await converse.open_command("kill")
        assert await form.locator("select[name=agent]").input_value() == agent_id
        confirm = form.locator("input[type=checkbox][name=confirm]")
        assert not await confirm.is_checked()
        await form.locator("input[data-action=complete]").click()
        assert await converse.completed("not killed") == f"{agent_id} was not killed: tick the confirmation to end it."

        # The agent took the first task, both lines of it.
        await converse.close_settings()
        await converse.open_chat(agent, agent_id)
        assert await converse.seen(agent, "MOCK_REPLY") == "MOCK_REPLY: hello from a form\nin two lines"
        timings["first answer"] = time.monotonic() - began

        # The agent's own commands, on its full JID: Status (a note), Progress (a list, current setting chosen).
        assert await converse.list_commands(f"{agent}/{RESOURCE}") == AGENT_COMMANDS
        status = (await (await converse.open_command("status")).locator(".alert").inner_text()).splitlines()
        assert status[0].startswith(f"📊 {agent_id}: "), status
        assert status[1].startswith("Repository: ") and status[1].endswith("/work/web"), status
        assert "Pending prompts: none" in status and status[-1].startswith("Progress: "), status
        form = await converse.open_command("progress")
        choice = form.locator("select[name=progress]")
        assert await choice.input_value() == "auto"
        await choice.select_option("quiet")
        await form.locator("input[data-action=complete]").click()
        assert await converse.completed("Progress") == "📶 Progress: quiet, from the next turn on."
        status = (await (await converse.open_command("status")).locator(".alert").inner_text()).splitlines()
        assert status[-1] == "Progress: quiet", status
        timings["agent's forms"] = time.monotonic() - began

        # The agent's bare JID lists them too.
        assert await converse.list_commands(agent, f"{agent}/{RESOURCE}") == AGENT_COMMANDS
    print("web client forms: " + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))
