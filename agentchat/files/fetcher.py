"""Fetching an upload from our own server: only URLs under the upload service's prefix, through
the loopback address the service reaches it at, never following a redirect, never reading more
than the size limit."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from agentchat.errors import FileRefused
from agentchat.files.checks import check_size, human_size, name_in_url

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 60.0
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fetched:
    name: str
    data: bytes
    content_type: str  # as the server stored it (the uploader's claim; content decides)


class UploadFetcher:
    """GETs uploads under ``upload_url`` (as clients see them) from ``local_url`` (the same files,
    where this process reaches them), at most ``max_size`` bytes each."""

    def __init__(self, upload_url: str, max_size: int, local_url: str | None = None) -> None:
        self.upload_url = upload_url
        self.local_url = local_url or upload_url
        self.max_size = max_size

    def local(self, url: str) -> str:
        """The URL this process uses for an upload URL under ``upload_url``."""
        return self.local_url + url[len(self.upload_url):] if url.startswith(self.upload_url) else url

    async def fetch(self, url: str) -> Fetched:
        name = name_in_url(url, self.upload_url)  # refuses anything but our own uploads, before any connection
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(self.local(url), allow_redirects=False) as response:
                    if response.status == 404:
                        raise FileRefused(f"{name} was not taken: the server no longer has it (uploads expire)")
                    if response.status != 200:
                        raise FileRefused(f"{name} was not taken: the server answered HTTP {response.status}")
                    if response.content_length is not None:
                        check_size(name, response.content_length, self.max_size)
                    data = bytearray()
                    async for chunk in response.content.iter_chunked(CHUNK):
                        data += chunk
                        if len(data) > self.max_size:
                            raise FileRefused(f"{name} was not taken: it is over the "
                                              f"{human_size(self.max_size)} limit (files.maxSize)")
                    return Fetched(name, bytes(data), response.headers.get("Content-Type", ""))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not fetch %s: %s", url, exc)
            raise FileRefused(f"{name} was not taken: fetching it from the server failed ({type(exc).__name__})") from exc
