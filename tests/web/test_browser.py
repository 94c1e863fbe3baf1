"""The web client in a real browser: Debian's Chromium, driven by Playwright, against a real Prosody
serving Converse.js and the whole service behind it (the fake CLI as the agent).

One run, as a person would: log in through the page, `help` to the manager, create an agent, read its
answer, answer its permission prompt, send it a picture and see it land in the repository. The
screenshot goes to .cache/test-artifacts/web-client.png (README's docs/web-client.png is one of them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.files.test_files_in import files_settings, png
from tests.support.service import make_repositories, running_service
from tests.web.converse import ARTIFACTS, ConversePage, alice_with_the_manager, requires_browser

pytestmark = requires_browser


async def test_log_in_create_an_agent_answer_a_prompt_and_send_a_picture(web_prosody, browser, tmp_path: Path) -> None:
    from playwright.async_api import Page

    server = web_prosody
    settings = files_settings(server, tmp_path)
    work = make_repositories(settings.work.base_path)
    await alice_with_the_manager(server, settings.manager_jid)
    timings: dict[str, float] = {}
    began = time.monotonic()

    async with running_service(settings):
        page: Page = await browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
        origin = f"http://localhost:{server.http_port}"
        # Converse's login page shows its sponsors' logos from its web site: the CSP must stop them.
        loaded_elsewhere: list[str] = []
        blocked: list[str] = []
        page.on("requestfinished", lambda request: None if request.url.startswith((origin, "data:", "blob:"))
                else loaded_elsewhere.append(request.url))
        page.on("requestfailed", lambda request: blocked.append(f"{request.url} {request.failure}"))
        await page.goto(origin + "/")
        converse = ConversePage(page)
        manager = settings.manager_jid
        # It opens on the manager's chat, a contact already.
        await converse.log_in("alice@localhost", "alice-password", "agentchat manager")
        timings["login"] = time.monotonic() - began

        await converse.say(manager, "help")
        assert "new (or create)" in await converse.seen(manager, "agentchat manager. Commands")
        # The manager, online and ready (show "chat"), has the online colour in the roster, not offline grey.
        dot = page.locator(f'.list-item-link[data-jid="{manager}"] .chat-status--avatar svg').first
        colours = await dot.evaluate(
            "svg => { const style = getComputedStyle(svg); return [style.fill,"
            " style.getPropertyValue('--chat-status-online').trim(), style.getPropertyValue('--chat-status-offline').trim()]; }")
        assert colours[1] != colours[2], colours
        assert _rgb(colours[0]) == _rgb(colours[1]), colours
        for answer, question in (("new", "Which type?"), ("1", "Which repository?"), ("api", "first task")):
            await converse.say(manager, answer)
            await converse.seen(manager, question)
        await converse.say(manager, "hello from the browser")
        created = (await converse.seen(manager, "created. Chat at")).split()
        agent_id, agent = created[1], created[-1]
        timings["agent created"] = time.monotonic() - began

        # The agent is a contact too: open its chat from the roster, read its first answer.
        await converse.open_chat(agent, agent_id)
        await converse.seen(agent, "MOCK_REPLY: hello from the browser")

        target = work / "api" / "from-the-web.txt"
        write = {"file_path": str(target), "content": "written after a yes in the browser\n"}
        await converse.say(agent, f"[[tool:Write {json.dumps(write)}]]")
        prompt = await converse.seen(agent, "🔐 Permission #")
        assert "from-the-web.txt" in prompt
        await converse.say(agent, "yes")
        await converse.seen(agent, "allowed")
        await converse.seen(agent, "MOCK_TOOL_RESULT")
        assert target.read_text() == "written after a yes in the browser\n"
        timings["prompt answered"] = time.monotonic() - began

        picture = tmp_path / "screenshot.png"
        picture.write_bytes(png(16, 9))
        await converse.chat(agent).locator("input.fileupload").set_input_files(str(picture))
        await converse.seen(agent, "📎 Saved")
        await converse.seen(agent, "[image image/png")
        saved = work / "api" / ".agentchat" / "inbox" / "screenshot.png"
        assert saved.read_bytes() == picture.read_bytes()
        timings["picture received"] = time.monotonic() - began

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "web-client.png"))
        assert loaded_elsewhere == [], loaded_elsewhere  # the CSP kept everything on this server
        assert all(failure.endswith(" csp") for failure in blocked), blocked  # blocked by the CSP, nothing else failed
    print("web client: " + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))


def _rgb(colour: str) -> tuple[int, int, int]:
    """A CSS colour as the page gives it (#rrggbb, #rgb or rgb(r, g, b)) as numbers."""
    colour = colour.strip()
    if colour.startswith("#"):
        digits = colour[1:]
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    r, g, b = (int(float(part)) for part in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3])
    return r, g, b
