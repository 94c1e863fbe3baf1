"""Requests between two service accounts as IQ stanzas in a namespace of ours: the transport only.

A request is ``<iq type='set'><request xmlns=NAMESPACE op=OP><json xmlns='urn:xmpp:json:0'>…</json></request></iq>``
and its answer ``<iq type='result'><response xmlns=NAMESPACE op=OP><json …>…</json></response></iq>`` (the JSON
text in a XEP-0335 container), or an IQ error with a condition and a text. What the JSON means, and who may
ask what, is the caller's: this module knows neither (agentchat.runners.protocol does). The sender it hands
to the handler is the one the server stamped on the stanza, so it cannot be forged by another client of the
same server.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import JID
from slixmpp.stanza import Iq
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from agentchat.errors import AgentChatError
from agentchat.tasks import TaskGroup

log = logging.getLogger(__name__)

JSON_CONTAINER = "urn:xmpp:json:0"  # XEP-0335


class IqFailed(AgentChatError):
    """A request got no answer: the peer is not online (``absent``: the server said so), or did not answer in
    time (a link that died without the server knowing yet, or a peer that is too busy)."""

    def __init__(self, text: str, *, absent: bool) -> None:
        super().__init__(text)
        self.absent = absent


class IqRefused(AgentChatError):
    """The peer answered with an error (``condition`` as in RFC 6120 §8.3.3, ``text`` its words).

    Raised by a handler, it is the error the requester gets."""

    def __init__(self, condition: str, text: str = "") -> None:
        super().__init__(text or condition)
        self.condition = condition
        self.text = text


@dataclass(frozen=True)
class IqRequest:
    sender: str  # full JID, as the server stamped it
    op: str
    body: str  # the JSON text

    @property
    def sender_bare(self) -> str:
        return JID(self.sender).bare.lower()


Handler = Callable[[IqRequest], Awaitable[str]]


class IqChannel:
    """Requests and answers in one namespace over one account's client (its XmppSession's)."""

    def __init__(self, client: ClientXMPP, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._handler: Handler | None = None
        self._tasks = TaskGroup(f"iq:{namespace}")
        self._name = f"agentchat iq {namespace}"
        client.register_handler(
            Callback(self._name, MatchXPath(f"{{jabber:client}}iq/{{{namespace}}}request"), self._on_iq)
        )

    def serve(self, handler: Handler) -> None:
        """Answer requests with ``handler``: its return value is the answer's JSON, an IqRefused an error."""
        self._handler = handler

    async def request(self, to: str, op: str, body: str, timeout: float) -> str:
        """Send a request to a full JID; the answer's JSON. IqRefused for an error answer (``recipient-unavailable``
        and ``service-unavailable`` mean nobody is there: IqFailed), IqFailed when none came in time."""
        iq = self.client.make_iq_set(ito=to)
        request = ET.SubElement(iq.xml, f"{{{self.namespace}}}request", {"op": op})
        ET.SubElement(request, f"{{{JSON_CONTAINER}}}json").text = body
        try:
            answer = await iq.send(timeout=timeout)
        except IqTimeout:
            raise IqFailed(f"{to} did not answer {op!r} within {timeout:g} s", absent=False) from None
        except IqError as exc:
            condition, text = exc.iq["error"]["condition"], exc.iq["error"]["text"]
            if condition in ("service-unavailable", "recipient-unavailable", "remote-server-not-found"):
                raise IqFailed(f"{to} is not online ({condition})", absent=True) from None
            raise IqRefused(condition, text) from None
        return _json_of(answer.xml.find(f"{{{self.namespace}}}response"))

    async def close(self) -> None:
        self.client.remove_handler(self._name)
        await self._tasks.cancel_all()

    def _on_iq(self, stanza: StanzaBase) -> None:
        assert isinstance(stanza, Iq)
        if stanza["type"] not in ("get", "set"):
            return
        element = stanza.xml.find(f"{{{self.namespace}}}request")
        request = IqRequest(str(stanza["from"]), (element.get("op") if element is not None else "") or "", _json_of(element))
        self._tasks.spawn(self._answer(stanza, request), f"{request.op}:{stanza['id']}")

    async def _answer(self, iq: Iq, request: IqRequest) -> None:
        try:
            if self._handler is None:
                raise IqRefused("service-unavailable", "not serving requests")
            body = await self._handler(request)
        except IqRefused as exc:
            _error(iq, exc.condition, exc.text).send()
            return
        except Exception:  # a bug of ours: the requester gets an error, not silence
            log.exception("%s: request %r from %s failed", self.namespace, request.op, request.sender)
            _error(iq, "internal-server-error", "the request failed (see the log)").send()
            return
        reply = iq.reply(clear=True)
        response = ET.SubElement(reply.xml, f"{{{self.namespace}}}response", {"op": request.op})
        ET.SubElement(response, f"{{{JSON_CONTAINER}}}json").text = body
        reply.send()


def _json_of(element: ET.Element | None) -> str:
    container = element.find(f"{{{JSON_CONTAINER}}}json") if element is not None else None
    return (container.text or "") if container is not None else ""


def _error(iq: Iq, condition: str, text: str) -> Iq:
    reply = iq.reply(clear=True)
    reply["error"]["type"] = "cancel" if condition != "not-authorized" else "auth"
    reply["error"]["condition"] = condition
    if text:
        reply["error"]["text"] = text
    reply["type"] = "error"
    return reply
