"""Files as a person's client moves them: an XEP-0363 upload, then a message whose body is the URL with
an XEP-0066 element (as Conversations, Gajim, Dino and Converse send it), and downloading what arrived."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import aiohttp
import slixmpp

from tests.harness.clients import UserClient

NS_OOB = "jabber:x:oob"


async def upload(client: UserClient, name: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    """Upload through the server's upload service as this user; the URL to share."""
    if client.xmpp.plugin.get("xep_0363", None) is None:
        client.xmpp.register_plugin("xep_0363")
    url = await client.xmpp.plugin["xep_0363"].upload_file(
        name, size=len(data), content_type=content_type, input_file=io.BytesIO(data), timeout=10)
    return str(url)


def send_file_message(client: UserClient, to: str, url: str, body: str | None = None, mtype: str = "chat") -> str:
    """The message that shares ``url`` (body: the URL itself unless given; ``mtype`` groupchat in a room); its id."""
    message: slixmpp.Message = client.xmpp.make_message(mto=to, mbody=body if body is not None else url, mtype=mtype)
    oob = ET.SubElement(message.xml, f"{{{NS_OOB}}}x")
    ET.SubElement(oob, f"{{{NS_OOB}}}url").text = url
    message.send()
    return str(message["id"])


def oob_url(message: slixmpp.Message) -> str | None:
    element = message.xml.find(f"{{{NS_OOB}}}x/{{{NS_OOB}}}url")
    return element.text if element is not None else None


async def download(url: str) -> bytes:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            response.raise_for_status()
            return await response.read()
