"""Closed prompts marked on every device: the message that showed a prompt is corrected (XEP-0308) once the
prompt is answered (by text, reply, reaction or form), times out or is withdrawn, so that another phone or
desktop of the owner's no longer offers an answer nobody wants.

Only where every client the owner has online shows corrections: elsewhere a correction arrives as one more
message, and the line the bot sends anyway ("↪ #a1b2: allowed") says it all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agentchat.chat.port import ChatTransport, Outbound, PeerFeature
from agentchat.chat.prompts import describe_outcome, render_prompt_closed
from agentchat.permissions.requests import Decision, PermissionRequest


class PromptMessages:
    """The messages that showed each open prompt of one agent (the first one carries the prompt's id)."""

    def __init__(self, transport: ChatTransport, owner: str, repo: Callable[[], Path]) -> None:
        self._transport = transport
        self._owner = owner
        self._repo = repo
        self._messages: dict[str, list[str]] = {}  # request id -> stanza ids, in order

    def shown(self, request_id: str, message_id: str) -> None:
        self._messages.setdefault(request_id, []).append(message_id)

    async def close(self, request: PermissionRequest, decision: Decision | None) -> bool:
        """Correct the prompt's messages to say what became of it; True when it was corrected."""
        message_ids = self._messages.pop(request.request_id, [])
        if not message_ids or not await self._transport.peer_supports(self._owner, PeerFeature.CORRECTIONS):
            return False
        first, *rest = message_ids
        self._transport.send(Outbound(self._owner, render_prompt_closed(request, decision, self._repo()), chat_state=None, replaces=first))
        for message_id in rest:  # the rest of a prompt too long for one message
            continued = f"🔐 #{request.request_id} (continued): {describe_outcome(request, decision)}"
            self._transport.send(Outbound(self._owner, continued, chat_state=None, replaces=message_id))
        return True
