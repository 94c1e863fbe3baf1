"""The permission audit log: one JSON line per decision, appended, never rewritten.

Each line: ``time`` (UTC, ISO 8601), ``agent``, ``owner``, ``request_id``, ``tool``, ``input`` (summary,
at most 200 characters, secrets masked), ``decision`` (allow / deny / withdrawn: the CLI dropped the call, as
the chat says), ``decided_by`` (the owner's bare JID, or timeout / shutdown / killed / always-rule / limit /
withdrawn), ``message`` (the deny reason, if any; for a Bash command the owner edited before allowing it,
``edited, ran: <the command>``) and ``engine`` (the agent's backend kind: claude, codex, gemini, opencode …).
Bearer tokens never reach this file: they are not part of a request, and anything
that looks like a credential in a tool input is masked before writing.

Writes go to a worker thread, one batch at a time (the file is opened with O_APPEND, mode 0600), so the
event loop never blocks on the disk and lines never interleave.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Callable
from dataclasses import replace
from typing import IO

from agentchat.errors import PermissionPromptError
from agentchat.permissions.requests import SUMMARY_LIMIT, Decision, PermissionRequest, summarize_input

log = logging.getLogger(__name__)

# The word for a prompt the CLI dropped (an interrupt): the same as the chat's "↩️ … withdrawn".
WITHDRAWN = "withdrawn"

_MASK = "********"
# key=value / key: value / "key":"value" pairs whose key names a credential, the same as command-line
# flags (--password x), HTTP auth headers, and URLs with a password in them.
_CREDENTIAL = r"[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|credential)[\w.-]*"
_SECRET_PAIR = re.compile(rf"(?i)\b({_CREDENTIAL}\"?)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&|]+)")
_SECRET_FLAG = re.compile(rf"(?i)(--?{_CREDENTIAL})(\s+)(\"[^\"]*\"|'[^']*'|\S+)")
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@")


def mask_secrets(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ********."""
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)} {_MASK}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{_MASK}@", text)
    text = _SECRET_FLAG.sub(lambda m: f"{m.group(1)}{m.group(2)}{_MASK}", text)
    return _SECRET_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{_MASK}", text)


@dataclass(frozen=True)
class AuditRecord:
    time: str
    agent: str
    owner: str
    request_id: str
    tool: str
    input: str
    decision: str  # "allow", "deny" or "withdrawn"
    decided_by: str
    message: str = ""
    engine: str = ""

    @classmethod
    def of(cls, request: PermissionRequest, decision: Decision | None) -> AuditRecord:
        """The record of ``decision`` on ``request``; ``decision`` None means the CLI withdrew the call."""
        return cls(
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            agent=request.agent_id,
            owner=request.owner,
            request_id=request.request_id,
            tool=request.tool_name,
            input=mask_secrets(request.summary(SUMMARY_LIMIT))[:SUMMARY_LIMIT],
            decision=decision.behavior.value if decision is not None else WITHDRAWN,
            decided_by=decision.decided_by if decision is not None else WITHDRAWN,
            message=mask_secrets(_message(request, decision))[:SUMMARY_LIMIT] if decision is not None else "",
        )


def _message(request: PermissionRequest, decision: Decision) -> str:
    """The deny reason; for an allow of an input the owner edited, what ran instead."""
    if decision.allowed and decision.updated_input is not None and request.bash_command is not None:
        ran = decision.updated_input.get("command")
        if isinstance(ran, str) and ran != request.bash_command:
            return f"edited, ran: {summarize_input(request.tool_name, decision.updated_input)}"
    return decision.message


class AuditLog:
    """Append-only JSONL file. ``append`` is safe to call from many tasks at once.

    Group commit: lines that arrive while a write is in progress are written together by the next one,
    so a burst of decisions costs a few thread hops rather than one each (1000 decisions: about 3 s
    one by one, well under 0.1 s batched).
    """

    def __init__(self, path: Path, engine_of: Callable[[str], str | None] | None = None) -> None:
        self.path = path
        # The backend kind of an agent, filled into records that do not say it.
        self._engine_of = engine_of
        self._file: IO[str] | None = None
        self._buffer: list[tuple[str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def append(self, record: AuditRecord) -> None:
        """Write one line; raises PermissionPromptError when the disk refuses (the caller logs it).

        Once called, the line is written even if the caller is cancelled while waiting.
        """
        if self._closed:
            raise PermissionPromptError(f"audit log {self.path} is closed")
        if not record.engine and self._engine_of is not None:
            record = replace(record, engine=self._engine_of(record.agent) or "")
        line = json.dumps(asdict(record), ensure_ascii=False, separators=(",", ":")) + "\n"
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer.append((line, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="audit-log-writer")
        await asyncio.shield(written)

    async def close(self) -> None:
        """Write what is queued, then close the file; later appends raise."""
        self._closed = True
        if self._writer is not None:
            await self._writer
        if self._file is not None:
            file, self._file = self._file, None
            await asyncio.to_thread(file.close)

    async def _drain(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer, []
            try:
                await asyncio.to_thread(self._write, "".join(line for line, _ in batch))
            except OSError as exc:
                error = PermissionPromptError(f"cannot write audit log {self.path}: {exc}")
                for _, written in batch:
                    if not written.done():
                        written.set_exception(error)
            else:
                for _, written in batch:
                    if not written.done():
                        written.set_result(None)

    def _write(self, text: str) -> None:
        # Runs in a worker thread; only one _drain task exists at a time, so writes never overlap.
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._file.write(text)
        self._file.flush()
