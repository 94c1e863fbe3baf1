"""Profanity, driven through tmux as a person types: the default `/connect` (TLS as Profanity
chooses it) logs in to `agentchat start --embedded-prosody`, after comparing the fingerprint the
login hint printed with the one Profanity shows and answering `/tls allow`."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.embedded_process import start_embedded

pytestmark = pytest.mark.skipif(
    shutil.which("profanity") is None or shutil.which("tmux") is None,
    reason="needs Debian's profanity and tmux (`make install` installs them where apt exists)",
)


class Terminal:
    """A tmux window running one program; read like a screen, typed into like a keyboard."""

    def __init__(self, name: str) -> None:
        self.name = name

    def type(self, text: str, *, enter: bool = True) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", "--", text], check=True)  # literally
        if enter:
            subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-J", "-S", "-200", "-t", self.name],
                              capture_output=True, text=True, check=True).stdout

    async def wait_for(self, text: str, timeout: float = 15) -> str:
        """The screen once it shows ``text``. tmux has no change event: poll its screen, briefly."""
        try:
            async with asyncio.timeout(timeout):
                while text not in (screen := self.screen()):
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(f"{text!r} never appeared on the screen:\n{self.screen()}") from None
        return screen


@pytest.fixture
def profanity(tmp_path: Path) -> Iterator[Terminal]:
    name = f"agentchat-profanity-{secrets.token_hex(3)}"
    home = tmp_path / "profanity-home"
    home.mkdir()
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, "-x", "200", "-y", "50",
         f"env HOME={home} XDG_CONFIG_HOME={home}/config XDG_DATA_HOME={home}/data profanity"],
        check=True,
    )
    try:
        yield Terminal(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


async def test_profanity_default_connect_logs_in_and_gets_help(profanity: Terminal, tmp_path: Path) -> None:
    running = await start_embedded(tmp_path / "service")
    try:
        jid, password = running.login()
        await profanity.wait_for("Type '/help'")
        # The defaults: no "tls" option. Host and port only because the test may not use port 5222.
        profanity.type(f"/connect {jid} server 127.0.0.1 port {running.port}")
        await profanity.wait_for("Enter password:")
        profanity.type(password)
        screen = await profanity.wait_for("Use '/tls allow' to accept this certificate.")
        # What a person compares: Profanity shows the SHA-1 fingerprint, which the hint printed too.
        shown = screen.split("Fingerprint", 1)[1].split(":", 1)[1].split()[0]
        assert shown == running.fingerprint_sha1().replace(":", "").lower()
        assert "self-signed certificate" in screen
        profanity.type("/tls allow")
        await profanity.wait_for("logged in successfully")
        profanity.type("/msg manager@localhost help")
        screen = await profanity.wait_for("Commands (any case)")
        assert "agentchat manager" in screen  # the manager's roster name: it is already a contact
        assert "[TLS]" in screen
    finally:
        assert await running.stop() == 0
