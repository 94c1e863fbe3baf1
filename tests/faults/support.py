"""Helpers shared by the fault tests: waiting on state with a timeout, process checks, figures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("agentchat.faults")

# Set to a file path to collect the figures of a run (one JSON object per line) for the README.
FIGURES_ENV = "AGENTCHAT_FAULT_FIGURES"


async def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> float:
    """Poll ``condition`` (state another process or thread changes, with no event to wait on).

    Returns the seconds it took; raises TimeoutError naming ``what``.
    """
    started = time.monotonic()
    deadline = started + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment has ``name=value`` (how the supervisor finds its own CLIs)."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0") and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def record_figures(test: str, **figures: Any) -> None:
    """Print the figures of a fault run (shown with -s or on failure) and append them to $AGENTCHAT_FAULT_FIGURES."""
    line = json.dumps({"test": test, **figures}, default=str, ensure_ascii=False)
    log.warning("figures %s", line)
    print(f"FIGURES {line}")
    target = os.environ.get(FIGURES_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


async def wait_until_async(condition: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.02) -> float:
    """As wait_until, for a condition that needs to await (a database query)."""
    started = time.monotonic()
    deadline = started + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


class TcpProxy:
    """A loopback TCP relay between the service and Prosody, to cut the service's links for real.

    ``drop()`` resets every relayed connection (RST both ways, as a NAT timeout or a Wi-Fi change
    does); while ``blocked``, new connections are reset at once, so the outage lasts until ``unblock()``.
    ``cut_after(marker)``: the next time the server sends bytes containing ``marker``, they are passed on and
    that link is closed right behind them (the client reads both at once), once. ``slow_down(bytes_per_s)``:
    what the server sends reaches the client at that rate (None: at once), as over a busy or thin link.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.blocked = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cut_marker: bytes | None = None
        self.cuts = 0
        self.rate: float | None = None

    def cut_after(self, marker: bytes) -> None:
        self._cut_marker = marker

    def slow_down(self, bytes_per_second: float | None) -> None:
        self.rate = bytes_per_second

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def drop(self) -> int:
        """Reset every relayed connection; returns how many there were."""
        links = list(self._links)
        for client, upstream in links:
            _reset(client)
            _reset(upstream)
        self._links.clear()
        return len(links)

    def block(self) -> int:
        self.blocked = True
        return self.drop()

    def unblock(self) -> None:
        self.blocked = False

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        link = (writer, up_writer)
        self._links.add(link)
        for source, sink, watch, rate in ((reader, up_writer, None, None),
                                          (up_reader, writer, self._watch(link), lambda: self.rate)):
            task = asyncio.get_running_loop().create_task(_pump(source, sink, watch, rate))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _watch(self, link: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> Callable[[bytes], bool]:
        """For the server's bytes on one link: True once they must be followed by the end of the link."""

        def cut(data: bytes) -> bool:
            if self._cut_marker is None or self._cut_marker not in data:
                return False
            self._cut_marker = None
            self.cuts += 1
            self._links.discard(link)
            link[1].close()  # the server's side too: to the server, the client went away
            return True

        return cut


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                cut: Callable[[bytes], bool] | None = None, rate: Callable[[], float | None] | None = None) -> None:
    try:
        while data := await source.read(65536):
            per_second = rate() if rate is not None else None
            for start in range(0, len(data), 1024 if per_second else len(data)):
                piece = data[start : start + 1024] if per_second else data
                sink.write(piece)
                await sink.drain()
                if per_second:
                    await asyncio.sleep(len(piece) / per_second)
            if cut is not None and cut(data):
                break  # the finally closes the client's side: a FIN right behind the data
    except (ConnectionError, OSError):
        pass
    finally:
        if not sink.is_closing():
            sink.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
