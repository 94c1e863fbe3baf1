"""The web client in a real browser: Debian's Chromium, driven by Playwright, against a real Prosody
serving Converse.js and the whole service behind it (the fake CLI as the agent).

One run, as a person would: log in through the page, `help` to the manager, create an agent, read its
answer, answer its permission prompt, send it a picture and see it land in the repository. The
screenshot goes to .cache/test-artifacts/web-client.png (README's docs/web-client.png is one of them).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agentchat.provisioning.admin_rest import AdminRestProvisioner
from agentchat.provisioning.contacts import introduce
from agentchat.server.web_client import converse_dist_dir, write_web_root
from tests.files.test_files_in import files_settings, png
from tests.harness.prosody import ProsodyServer
from tests.support.service import make_repositories, running_service

CHROMIUM = os.environ.get("AGENTCHAT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".cache" / "test-artifacts"
STEP = 20_000  # ms for one step seen in the page (an answer, a prompt)
# What Chromium must not do on a machine without a network (each of these phones home at start).
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-gpu", "--disable-quic"]


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (make test installs Debian's chromium with apt)"
    if converse_dist_dir() is None:
        return "Converse.js is not installed (make install fetches it with npm)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture
def web_prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProsodyServer]:
    run_dir = tmp_path_factory.mktemp("web-prosody")
    web_root = write_web_root(run_dir / "www", "localhost", "manager@localhost")
    server = ProsodyServer.create(run_dir=run_dir, web_root=web_root)
    server.start_blocking()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # As root Chromium needs --no-sandbox, which Playwright adds by itself; never `playwright install`.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def test_log_in_create_an_agent_answer_a_prompt_and_send_a_picture(web_prosody, browser, tmp_path: Path) -> None:
    from playwright.async_api import Page

    server = web_prosody
    settings = files_settings(server, tmp_path)
    work = make_repositories(settings.work.base_path)
    await server.create_account("alice", "alice-password")
    async with AdminRestProvisioner(server.admin_rest_url, server.domain, server.admin_jid, server.admin_password) as rest:
        await introduce(rest, "alice@localhost", settings.manager_jid, "agentchat manager")
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
        await page.fill("#converse-login-jid", "alice@localhost")
        await page.fill("#converse-login-password", "alice-password")
        await page.click("converse-login-form [type=submit]")
        # Logged in once the page says so (Converse's "connected" comes after SASL and bind).
        await page.locator("body[data-xmpp=connected]").wait_for(state="attached", timeout=STEP)
        timings["login"] = time.monotonic() - began

        async def say(text: str) -> None:
            box = page.locator("converse-chats textarea.chat-textarea").locator("visible=true")
            await box.fill(text)
            await box.press("Enter")

        async def seen(text: str) -> str:
            found = page.locator(".chat-msg__text", has_text=text).last
            await found.wait_for(timeout=STEP)
            return await found.inner_text()

        # It opens on the manager's chat, a contact already.
        await page.locator("converse-chat-heading", has_text="agentchat manager").locator("visible=true").wait_for(timeout=STEP)
        await say("help")
        assert "new (or create)" in await seen("agentchat manager. Commands")
        for answer, question in (("new", "Which type?"), ("1", "Which repository?"), ("api", "first task")):
            await say(answer)
            await seen(question)
        await say("hello from the browser")
        created = await seen("created. Chat at")
        agent_id = created.split()[1]
        timings["agent created"] = time.monotonic() - began

        # The agent is a contact too: open its chat from the roster, read its first answer.
        await page.locator("converse-roster a.open-chat", has_text=agent_id).click()
        await seen("MOCK_REPLY: hello from the browser")

        target = work / "api" / "from-the-web.txt"
        write = {"file_path": str(target), "content": "written after a yes in the browser\n"}
        await say(f"[[tool:Write {json.dumps(write)}]]")
        prompt = await seen("🔐 Permission #")
        assert "from-the-web.txt" in prompt
        await say("yes")
        await seen("allowed")
        await seen("MOCK_TOOL_RESULT")
        assert target.read_text() == "written after a yes in the browser\n"
        timings["prompt answered"] = time.monotonic() - began

        picture = tmp_path / "screenshot.png"
        picture.write_bytes(png(16, 9))
        await page.locator("converse-chats input.fileupload").locator("visible=false").first.set_input_files(str(picture))
        await seen("📎 Saved")
        await seen("[image image/png")
        saved = work / "api" / ".agentchat" / "inbox" / "screenshot.png"
        assert saved.read_bytes() == picture.read_bytes()
        timings["picture received"] = time.monotonic() - began

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "web-client.png"))
        assert loaded_elsewhere == [], loaded_elsewhere  # the CSP kept everything on this server
        assert all(failure.endswith(" csp") for failure in blocked), blocked  # blocked by the CSP, nothing else failed
    print("web client: " + ", ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))
