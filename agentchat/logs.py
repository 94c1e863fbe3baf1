"""Logging: rich on a terminal, plain lines otherwise, and secrets scrubbed from every record."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from rich.logging import RichHandler

MASK = "********"


class SecretFilter(logging.Filter):
    """Replaces every registered secret (passwords, tokens, API keys) in a record's final text."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        # Reentrant: a finalizer run by the garbage collector inside scrub() may log too.
        self._lock = threading.RLock()

    def add(self, secret: str | None) -> None:
        # Very short strings would mask ordinary words; our secrets are long random strings.
        if secret and len(secret) >= 6:
            with self._lock:
                self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
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
