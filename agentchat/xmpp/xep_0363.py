"""XEP-0363 HTTP File Upload, as a client: find the server's upload service (disco), ask for a slot, PUT
the bytes. slixmpp's plugin does the stanzas; the PUT is ours, so that it can go to the address this
process reaches the server at (a public HTTPS URL may not loop back to the machine it names)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiohttp
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import JID

from agentchat.errors import FileRefused

log = logging.getLogger(__name__)

NS_HTTP_UPLOAD = "urn:xmpp:http:upload:0"
SLOT_TIMEOUT = 10.0
PUT_TIMEOUT = 120.0


async def http_upload(
    client: slixmpp.ClientXMPP,
    domain: str,
    name: str,
    data: bytes,
    content_type: str,
    via: Callable[[str], str] | None = None,
) -> str:
    """The GET URL of ``data`` uploaded as ``name``; FileRefused with one line when it cannot be."""
    if client.plugin.get("xep_0363", None) is None:
        client.register_plugin("xep_0363")  # at first use: most agents never upload anything
    plugin = client.plugin["xep_0363"]
    try:
        if plugin.upload_service is None:
            info = await plugin.find_upload_service(domain=JID(domain), timeout=SLOT_TIMEOUT)
            if info is None:
                raise FileRefused(f"{name} was not sent: the server {domain} has no upload service (XEP-0363)")
            plugin.upload_service = info["from"]
        slot_iq = await plugin.request_slot(plugin.upload_service, name, len(data), content_type, timeout=SLOT_TIMEOUT)
    except IqError as exc:
        condition = exc.iq["error"]["condition"]
        text = exc.iq["error"]["text"] or condition
        raise FileRefused(f"{name} was not sent: the upload service refused it ({text})") from exc
    except IqTimeout as exc:
        raise FileRefused(f"{name} was not sent: the upload service did not answer") from exc
    slot = slot_iq["http_upload_slot"]
    put_url, get_url = slot["put"]["url"], slot["get"]["url"]
    headers = {"Content-Type": content_type, **{h["name"]: h["value"] for h in slot["put"]["headers"]}}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PUT_TIMEOUT)) as session:
            async with session.put(via(put_url) if via else put_url, data=data, headers=headers) as response:
                if response.status >= 300:
                    raise FileRefused(f"{name} was not sent: the upload failed (HTTP {response.status})")
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("%s: PUT of %s failed: %s", client.boundjid.bare, name, exc)
        raise FileRefused(f"{name} was not sent: the upload failed ({type(exc).__name__})") from exc
    return str(get_url)
