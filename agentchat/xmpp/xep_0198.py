"""XEP-0198 Stream Management: acknowledge an inbound message only once the chat side has taken it.

slixmpp counts a stanza as handled (the ``h`` it reports to the server) in an incoming filter, before any
handler ran; a crash between that count and the message being saved lost the message, and stanzas the bot
never acknowledged at shutdown went to offline storage and were delivered again at the next login (the
restarts that replayed old commands). ``AckGate`` replaces that count:

* every inbound message gets a ``Hold``; the chat side releases it once the message is durably recorded
  (or found not worth keeping). Presences and IQs count at once.
* ``h`` is the length of the prefix of inbound stanzas that are all released, as XEP-0198 requires (the
  count is cumulative): a message still being recorded holds back those after it.
* when the link drops, holds of the old stream are void: the value we resume with (or the server keeps)
  is what had been released by then, and the server resends the rest (recognised as duplicates if they had
  been recorded meanwhile).
* ``acknowledge()`` sends an unsolicited ``<a h=…/>``: before closing the stream on purpose, so the server
  forgets everything we took and stores nothing for the next login.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import slixmpp
from slixmpp.stanza import Iq, Message, Presence
from slixmpp.xmlstream import StanzaBase

log = logging.getLogger(__name__)

MAX_SEQ = 2**32


@dataclass(eq=False)
class Hold:
    """One inbound message not yet taken by the chat side."""

    gate: AckGate
    generation: int
    sequence: int
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.gate._release(self)


class AckGate:
    """Owns the ``handled`` counter of one client's xep_0198 plugin."""

    def __init__(self, client: slixmpp.ClientXMPP) -> None:
        self._client = client
        self._sm = client.plugin["xep_0198"]
        self._generation = 0
        self._received = 0  # inbound stanzas counted in this stream (since enable or resume)
        self._handled = 0  # the released prefix of them
        self._held: set[int] = set()
        self._current: Hold | None = None
        # We answered an ack request with a count that left messages out (they were being recorded).
        self._behind = False
        # slixmpp's own counter must go: ours replaces it; its ack answers go through us.
        client.del_filter("in", self._sm._handle_incoming)
        self._plugin_send_ack = self._sm.send_ack
        self._sm.send_ack = self._send_ack  # type: ignore[method-assign]
        client.add_filter("in", self._count)
        client.add_event_handler("sm_enabled", self._stream_started)
        client.add_event_handler("session_resumed", self._stream_resumed)
        client.add_event_handler("disconnected", self._stream_lost)

    @property
    def handled(self) -> int:
        return self._handled

    @property
    def held(self) -> int:
        return len(self._held)

    def take(self) -> Hold | None:
        """The hold of the message being dispatched right now (handlers run right after the filter)."""
        hold, self._current = self._current, None
        return hold

    def acknowledge(self) -> None:
        """Tell the server now how many stanzas we took (unsolicited ``<a/>``)."""
        if self._sm.enabled_in and self._client.transport is not None:
            self._send_ack()

    def _send_ack(self) -> None:
        self._behind = self._handled < self._received
        self._plugin_send_ack()

    # -- the filter and the stream's life cycle

    def _count(self, stanza: StanzaBase) -> StanzaBase:
        # A message nobody took (no handler of ours ran for it) is released when the next stanza comes.
        untaken, self._current = self._current, None
        if untaken is not None:
            untaken.release()
        if not self._sm.enabled_in or not isinstance(stanza, (Message, Presence, Iq)):
            return stanza
        self._received += 1
        if isinstance(stanza, Message):
            self._held.add(self._received)
            self._current = Hold(self, self._generation, self._received)
        else:
            self._advance()
        return stanza

    def _release(self, hold: Hold) -> None:
        if hold.generation != self._generation:
            return  # a stream that is gone: the server resends what it did not hear about
        self._held.discard(hold.sequence)
        self._advance()

    def _advance(self) -> None:
        while self._handled < self._received and (self._handled + 1) not in self._held:
            self._handled += 1
        self._sm.handled = self._handled % MAX_SEQ
        if self._behind and not self._held:
            # We answered an ack request while messages were being recorded: say the new count now, so the
            # server does not keep (or, at a close, store for the next login) what we have.
            self.acknowledge()

    def _stream_started(self, _event: object) -> None:
        self._generation += 1
        self._received = self._handled = 0
        self._behind = False
        self._held.clear()
        self._current = None

    def _stream_resumed(self, _event: object) -> None:
        # The server resends what comes after the h we resumed with, which is what was released when the
        # link dropped (releases of the old stream stopped counting then).
        self._generation += 1
        self._received = self._handled
        self._held.clear()
        self._current = None

    def _stream_lost(self, _event: object) -> None:
        self._generation += 1
        self._held.clear()
        self._received = self._handled
        self._current = None
