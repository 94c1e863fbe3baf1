"""Logging: rich on a terminal, plain lines otherwise, and secrets scrubbed from every record."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from rich.logging import RichHandler

MASK = "********"


# Secrets are found through their pieces of this many characters (shorter than any secret).
_PIECE = 4


class SecretFilter(logging.Filter):
    """Replaces every registered secret (passwords, tokens, API keys) in a record's final text.

    Every record passes here, and at 500 agents there are 1,000 secrets: testing each one against
    every record was the cost. Instead each secret is indexed by every 4-character piece of it.
    A secret at least ``shortest`` long always covers one of the positions 0, step, 2·step…
    of a text (step = shortest - 3), so looking up the pieces at those positions finds every
    secret the text may hold, whatever their number; only those are searched and replaced.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._by_piece: dict[str, tuple[str, ...]] = {}
        self._step = 0  # 0: no secret yet
        # Reentrant: a finalizer run by the garbage collector inside scrub() may log too.
        self._lock = threading.RLock()

    def add(self, secret: str | None) -> None:
        # Very short strings would mask ordinary words; our secrets are long random strings.
        if not secret or len(secret) < 6:
            return
        with self._lock:
            if secret in self._secrets:
                return
            self._secrets.add(secret)
            for piece in self._pieces(secret):
                self._by_piece[piece] = self._by_piece.get(piece, ()) + (secret,)
            step = self._step_for(len(secret))
            self._step = min(self._step, step) if self._step else step

    def remove(self, secret: str | None) -> None:
        """Stop masking a secret that no longer grants anything (a deleted account, a revoked token)."""
        with self._lock:
            if secret not in self._secrets:
                return
            self._secrets.discard(secret)
            for piece in self._pieces(secret):
                holders = tuple(s for s in self._by_piece.get(piece, ()) if s != secret)
                if holders:
                    self._by_piece[piece] = holders
                else:
                    self._by_piece.pop(piece, None)
            self._step = self._step_for(min(map(len, self._secrets))) if self._secrets else 0

    @staticmethod
    def _pieces(secret: str) -> set[str]:
        return {secret[i : i + _PIECE] for i in range(len(secret) - _PIECE + 1)}

    @staticmethod
    def _step_for(length: int) -> int:
        return length - _PIECE + 1

    def scrub(self, text: str) -> str:
        found: set[str] = set()
        with self._lock:
            step, by_piece = self._step, self._by_piece
            if step:
                for i in range(0, len(text) - _PIECE + 1, step):
                    found.update(by_piece.get(text[i : i + _PIECE], ()))
        # Longest first: a secret that contains another is masked whole.
        for secret in sorted(found, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


secrets = SecretFilter()


def register_secret(secret: str | None) -> None:
    """Never let this string reach a log line."""
    secrets.add(secret)


def unregister_secret(secret: str | None) -> None:
    """The string is no longer a secret (it was revoked): stop looking for it."""
    secrets.remove(secret)


def setup_logging(level: str = "INFO", log_file: Path | None = None) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    if sys.stderr.isatty():
        console: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        console.setFormatter(logging.Formatter("%(message)s"))
    else:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file_handler)
    for handler in handlers:
        handler.addFilter(secrets)
        root.addHandler(handler)
    # slixmpp logs whole stanzas at DEBUG (bodies, SASL): keep it at WARNING unless asked.
    if level != "DEBUG":
        logging.getLogger("slixmpp").setLevel(logging.WARNING)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
