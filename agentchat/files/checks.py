"""What a received file must pass before it is saved: its URL (our upload service only), its name
(no path, no control characters), its size, and its content (sniffed: a ``.png`` must be a PNG).

Pure functions; each refusal is a FileRefused whose message is the one line the chat shows.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from agentchat.errors import FileRefused

MAX_NAME_BYTES = 200
# Image types the model reads as image blocks (Anthropic's Messages API takes these four).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass(frozen=True)
class Kind:
    """A file type recognised by its first bytes."""

    media_type: str
    label: str  # for the chat: "a PNG"
    extensions: tuple[str, ...]
    signatures: tuple[bytes, ...]

    def matches(self, head: bytes) -> bool:
        if self.media_type == "image/webp":
            return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
        return any(head.startswith(signature) for signature in self.signatures)


KINDS = (
    Kind("image/png", "a PNG", (".png",), (b"\x89PNG\r\n\x1a\n",)),
    Kind("image/jpeg", "a JPEG", (".jpg", ".jpeg"), (b"\xff\xd8\xff",)),
    Kind("image/gif", "a GIF", (".gif",), (b"GIF87a", b"GIF89a")),
    Kind("image/webp", "a WebP image", (".webp",), ()),
    Kind("application/pdf", "a PDF", (".pdf",), (b"%PDF-",)),
    Kind("application/zip", "a ZIP archive", (".zip", ".docx", ".xlsx", ".pptx", ".odt", ".jar"),
         (b"PK\x03\x04", b"PK\x05\x06")),
    Kind("application/gzip", "a gzip file", (".gz", ".tgz"), (b"\x1f\x8b",)),
)


@dataclass(frozen=True)
class Checked:
    """A file that passed: its safe name, its media type (by content) and whether the model can see it."""

    name: str
    media_type: str
    size: int

    @property
    def is_image(self) -> bool:
        return self.media_type in IMAGE_TYPES


def name_in_url(url: str, allowed_prefix: str) -> str:
    """The file's name in an upload URL under ``allowed_prefix``, or FileRefused (another host or
    scheme, a query, ``..`` or ``.`` segments, encoded slashes, control characters)."""
    parts, allowed = urlsplit(url), urlsplit(allowed_prefix)
    if (parts.scheme.lower(), parts.netloc.lower()) != (allowed.scheme.lower(), allowed.netloc.lower()):
        raise FileRefused(f"not fetched: {_shown(url)} is not on this server's upload service ({allowed_prefix})")
    if parts.query or parts.fragment or not parts.path.startswith(allowed.path):
        raise FileRefused(f"not fetched: {_shown(url)} is not an upload of this server ({allowed_prefix})")
    segments = parts.path[len(allowed.path):].split("/")
    for segment in segments:
        decoded = unquote(segment)
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded:
            raise FileRefused(f"not fetched: {_shown(url)} has a path in it (`..` or a slash), not a file name")
    if len(segments) < 2 or not all(segments):
        raise FileRefused(f"not fetched: {_shown(url)} is not an upload of this server ({allowed_prefix})")
    return safe_name(unquote(segments[-1]))


def safe_name(name: str) -> str:
    """``name`` as it may be saved: one path component, printable, not too long (FileRefused otherwise)."""
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs") for char in name):
        raise FileRefused(f"not saved: the file name {_shown(name)} has control characters")
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise FileRefused(f"not saved: {_shown(name)} is a path, not a file name")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise FileRefused(f"not saved: the file name is longer than {MAX_NAME_BYTES} bytes")
    return name


def check_size(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise FileRefused(f"{name} was not taken: {human_size(size)} is over the {human_size(limit)} limit (files.maxSize)")


def check_content(name: str, data: bytes) -> Checked:
    """The media type by content; FileRefused when the name promises a type the content is not."""
    head = data[:16]
    found = next((kind for kind in KINDS if kind.matches(head)), None)
    claimed = next((kind for kind in KINDS if PurePosixPath(name.lower()).suffix in kind.extensions), None)
    if claimed is not None and claimed is not found:
        what = found.label if found is not None else "something else"
        raise FileRefused(f"{name} was not taken: it is named like {claimed.label} but its content is {what}")
    if found is not None:
        media_type = found.media_type
    elif _is_text(data):
        media_type = "text/plain"
    else:
        media_type = "application/octet-stream"
    return Checked(name, media_type, len(data))


def human_size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def _is_text(data: bytes) -> bool:
    if b"\x00" in data[:8192]:
        return False
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= 65536 - 4  # a character cut at the end of the sample
    return True


def _shown(text: str, limit: int = 80) -> str:
    """Text for a chat line: control characters made visible, long text cut."""
    visible = "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) in ("Cc", "Cf", "Cs") else c for c in text)
    return visible if len(visible) <= limit else visible[: limit - 1] + "…"
