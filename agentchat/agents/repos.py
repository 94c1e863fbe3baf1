"""Which repository an agent works in: one of the directories directly under the work base path.

A chat message chooses the directory an agent will run in, with the rights of the service, so every
choice is checked against the *real* base path: symlinks are resolved and must stay inside it, and
anything that looks like a path is refused before the file system is asked. The file system calls
here block; call these functions through ``asyncio.to_thread``.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from agentchat.errors import RepositoryError

__all__ = [
    "Repository",
    "empty_base_message",
    "format_repository_list",
    "list_repositories",
    "resolve_repository",
]

BASE_SETTING = "WORK_BASE_PATH"
LIST_COMMAND = "repos"
# Longest name a Linux or macOS file system accepts, in bytes.
_NAME_BYTES = 255
_NUMBER = re.compile(r"[0-9]+")
# Line breaks, control and format characters (bidi overrides, zero-width), and undecodable bytes.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHOWN_CHARS = 60


@dataclass(frozen=True)
class Repository:
    name: str
    # The real path (symlinks resolved), always inside the real base path.
    path: Path
    is_git: bool


def list_repositories(base: Path) -> list[Repository]:
    """The directories directly under ``base``, sorted by name; hidden ones and escaping links left out."""
    real_base = _real_base(base)
    try:
        names = [entry.name for entry in os.scandir(real_base)]
    except OSError as error:
        raise RepositoryError(f"Cannot read the work directory {base}: {error.strerror or error}.") from error
    repositories: list[Repository] = []
    for name in sorted(names, key=lambda name: (name.casefold(), name)):
        if name.startswith(".") or _has_unsafe_characters(name):
            continue
        try:
            repositories.append(_inspect(real_base, name, base))
        except RepositoryError:
            continue  # not a directory, a broken link or one leading outside: not offered
    return repositories


def resolve_repository(base: Path, choice: str, listed: Sequence[Repository]) -> Repository:
    """The repository a person chose by its number in ``listed`` or by its name; RepositoryError if none."""
    text = choice.strip()
    if not text:
        raise RepositoryError(f"Give a repository: its number or its name (send `{LIST_COMMAND}` to list them).")
    if _has_unsafe_characters(text):
        raise RepositoryError(
            "A repository name is one line of plain text, without control characters: "
            f"give the name of a directory directly under {base}."
        )
    real_base = _real_base(base)
    if _NUMBER.fullmatch(text):
        number = int(text) if len(text) <= 9 else 0
        if 1 <= number <= len(listed):
            # Checked again: the list may be stale, or not made by list_repositories at all.
            return _inspect(real_base, listed[number - 1].name, base)
        if not _exists(real_base / text):  # a directory may be called "2024"
            raise RepositoryError(_out_of_range_message(text, len(listed)))
    _check_plain_name(text, base)
    name = text if _exists(real_base / text) else _case_insensitive_match(text, listed)
    if name is None:
        raise RepositoryError(_not_found_message(text, base, listed))
    return _inspect(real_base, name, base)


def format_repository_list(repos: Sequence[Repository], base: Path | None = None) -> str:
    """``1. api (git)`` lines; for an empty list, a message saying how to add repositories."""
    if not repos:
        return empty_base_message(base)
    return "\n".join(
        f"{number}. {repo.name}{' (git)' if repo.is_git else ''}" for number, repo in enumerate(repos, start=1)
    )


def empty_base_message(base: Path | None) -> str:
    where = f"in {base}" if base is not None else "in the work directory"
    target = f"{base}/<name>" if base is not None else "<work directory>/<name>"
    return (
        f"No repositories {where} yet: clone or create one there (git clone <url> {target}), "
        f"or set {BASE_SETTING} to the directory that holds your repositories."
    )


def _real_base(base: Path) -> Path:
    try:
        real = base.resolve(strict=True)
    except FileNotFoundError as error:
        raise RepositoryError(
            f"The work directory {base} does not exist: create it (mkdir -p {base}) "
            f"or set {BASE_SETTING} to the directory that holds your repositories."
        ) from error
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop on older Pythons
        raise RepositoryError(f"Cannot open the work directory {base}: {error}.") from error
    if not _is_dir(real):
        raise RepositoryError(
            f"The work path {base} is not a directory: set {BASE_SETTING} to the directory "
            "that holds your repositories."
        )
    return real


def _inspect(real_base: Path, name: str, base: Path) -> Repository:
    """``name`` under the real base as a Repository, or RepositoryError saying why it cannot be one."""
    _check_plain_name(name, base)
    shown = _shown(name)
    try:
        real = (real_base / name).resolve(strict=True)
    except FileNotFoundError as error:
        raise RepositoryError(
            f"'{shown}' is gone or is a broken link; send `{LIST_COMMAND}` to see the choices."
        ) from error
    except (OSError, RuntimeError) as error:
        raise RepositoryError(f"Cannot open '{shown}': {getattr(error, 'strerror', None) or error}.") from error
    # The check that matters: the real path, links resolved, must be strictly inside the real base.
    if real == real_base or not real.is_relative_to(real_base):
        raise RepositoryError(
            f"'{shown}' is a link to a place outside {base}; only directories under {base} can be used."
        )
    if not _is_dir(real):
        raise RepositoryError(f"'{shown}' is a file, not a directory; send `{LIST_COMMAND}` to see the choices.")
    return Repository(name=name, path=real, is_git=_exists(real / ".git"))


def _check_plain_name(name: str, base: Path) -> None:
    """Refuse anything but a single directory name, before the file system sees it."""
    looks_like_path = (
        name in (".", "..")
        or "/" in name
        or "\\" in name
        or (os.sep in name)
        or (os.altsep is not None and os.altsep in name)
        or PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).is_absolute()
        or name.startswith("~")
    )
    if looks_like_path:
        raise RepositoryError(
            f"'{_shown(name)}' is a path: give the name of a directory directly under {base} "
            f"(send `{LIST_COMMAND}` to see them)."
        )
    if name.startswith("."):
        raise RepositoryError(f"Hidden directories are not offered: choose one listed by `{LIST_COMMAND}`.")
    if _has_unsafe_characters(name):
        raise RepositoryError(
            "A repository name is one line of plain text, without control characters: "
            f"give the name of a directory directly under {base}."
        )
    if len(name.encode("utf-8", "surrogatepass")) > _NAME_BYTES:
        raise RepositoryError(f"That name is too long for a directory; send `{LIST_COMMAND}` to see the choices.")


def _case_insensitive_match(text: str, listed: Sequence[Repository]) -> str | None:
    # Phone keyboards capitalise the first letter: "Api" still means api, when that is unambiguous.
    matches = [repo.name for repo in listed if repo.name.casefold() == text.casefold()]
    return matches[0] if len(matches) == 1 else None


def _not_found_message(text: str, base: Path, listed: Sequence[Repository]) -> str:
    close = difflib.get_close_matches(text, [repo.name for repo in listed], n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    return f"There is no repository '{_shown(text)}' in {base}; send `{LIST_COMMAND}` to see the choices.{hint}"


def _out_of_range_message(text: str, count: int) -> str:
    shown = _shown(text)
    if count == 0:
        return f"There is no repository number {shown}: send `{LIST_COMMAND}` to see the choices."
    return (
        f"There is no repository number {shown}: choose 1 to {count}, "
        f"or send `{LIST_COMMAND}` to see the list again."
    )


def _has_unsafe_characters(text: str) -> bool:
    return any(unicodedata.category(char) in _UNSAFE_CATEGORIES for char in text)


def _exists(path: Path) -> bool:
    try:
        os.lstat(path)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return False
    return True


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # no permission to look: not something an agent could work in either
        return False


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"
