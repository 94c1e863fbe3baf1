"""`agentchat start --embedded-prosody` as a real process, read the way a user reads its terminal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agentchat.config import ENV_VARS
from tests.harness.prosody import free_ports

LOGIN = re.compile(r"as (\S+)\n\s+password: (\S+)")
FINGERPRINT = re.compile(r"^\s+SHA-256 ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})$", re.M)
FINGERPRINT_SHA1 = re.compile(r"^\s+SHA-1\s+((?:[0-9A-F]{2}:){19}[0-9A-F]{2}) ", re.M)


@dataclass
class Running:
    process: asyncio.subprocess.Process
    home: Path
    port: int
    output: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.output)

    async def wait_for(self, text: str, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.output):
                line = await self.process.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise AssertionError(f"agentchat exited before {text!r}:\n{self.text}")
                self.output.append(line.decode())

    def login(self) -> tuple[str, str]:
        match = LOGIN.search(self.text)
        assert match, self.text
        return match.group(1), match.group(2)

    def fingerprint(self) -> str:
        """The SHA-256 fingerprint the login hint printed."""
        match = FINGERPRINT.search(self.text)
        assert match, self.text
        return match.group(1)

    def fingerprint_sha1(self) -> str:
        match = FINGERPRINT_SHA1.search(self.text)
        assert match, self.text
        return match.group(1)

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest = await self.process.stdout.read()  # type: ignore[union-attr]
            self.output.append(rest.decode())
            return await self.process.wait()

    async def exited(self, timeout: float = 30) -> int:
        """For a start that must fail: everything it printed, then its exit status."""
        async with asyncio.timeout(timeout):
            rest = await self.process.stdout.read()  # type: ignore[union-attr]
            self.output.append(rest.decode())
            return await self.process.wait()


def service_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(AGENTCHAT_HOME=str(home), XMPP_HOST="127.0.0.1", PYTHONUNBUFFERED="1", **extra)
    return env


async def launch_embedded(home: Path, *args: str, ports: tuple[int, int, int] | None = None,
                          env: dict[str, str] | None = None, work: Path | None = None,
                          cwd: Path | None = None) -> Running:
    """Start it (c2s, Prosody HTTP and MCP on free ports unless given) without waiting for anything."""
    c2s, http, mcp = ports or free_ports(3)
    work = work or home / "work"
    (work / "api").mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentchat", "start", "--embedded-prosody", "--user", "alice",
        "--port", str(c2s), "--mcp-port", str(mcp), "--work-base-path", str(work), *args,
        env={**service_env(home, PROSODY_HTTP_PORT=str(http)), **(env or {})}, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    return Running(process, home, c2s)


async def start_embedded(home: Path, *args: str, **kwargs: object) -> Running:
    """Start it and wait until it listens for messages."""
    running = await launch_embedded(home, *args, **kwargs)  # type: ignore[arg-type]
    try:
        await running.wait_for("Listening for messages...")
    except BaseException:
        if running.process.returncode is None:
            running.process.kill()
            await running.process.wait()
        raise
    return running
