"""Is Prosody ready? Only when a c2s stream is answered with its features.

An open port is not enough: Prosody listens ~100 ms before its hosts are active and before
its SIGTERM handler is installed (pitfall G2), so a client or a stop in that window fails.
"""

from __future__ import annotations

import asyncio
import contextlib

from agentchat.errors import ProsodyError

_FEATURES_END = b"</stream:features>"
_RETRY_INTERVAL = 0.05
_PROBE_TIMEOUT = 2.0


async def wait_for_stream_features(host: str, port: int, domain: str, timeout: float = 10.0) -> None:
    """Return once ``host:port`` answers a c2s stream header for ``domain`` with stream features.

    Raises ProsodyError after ``timeout`` seconds, naming the last thing seen.
    """
    last_seen = "nothing yet"
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    reply = await asyncio.wait_for(_probe(host, port, domain), _PROBE_TIMEOUT)
                except TimeoutError:  # accepted but silent: not serving c2s (yet)
                    last_seen = "connection accepted, no stream features"
                    continue
                except OSError as exc:  # refused or reset while Prosody starts
                    last_seen = f"{type(exc).__name__}: {exc}"
                else:
                    if _FEATURES_END in reply:
                        return
                    last_seen = reply[-200:].decode("utf-8", "replace") or "connection closed"
                # Polling an external process that offers no other signal; short and bounded.
                await asyncio.sleep(_RETRY_INTERVAL)
    except TimeoutError:
        raise ProsodyError(
            f"Prosody on {host}:{port} did not offer stream features for {domain} within {timeout:g} s "
            f"(last: {last_seen})"
        ) from None


async def _probe(host: str, port: int, domain: str) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            (
                "<?xml version='1.0'?>"
                f"<stream:stream to='{domain}' version='1.0' xml:lang='en' "
                "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
            ).encode()
        )
        await writer.drain()
        received = b""
        while _FEATURES_END not in received:
            chunk = await reader.read(4096)
            if not chunk:
                break
            received += chunk
        if _FEATURES_END in received:
            # Close the stream and wait for Prosody to close its side: a half-closed probe
            # connection (read-paused by mod_limits) otherwise delays Prosody's shutdown by 1 s.
            writer.write(b"</stream:stream>")
            with contextlib.suppress(OSError):
                await writer.drain()
                while await reader.read(4096):
                    pass
        return received
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
