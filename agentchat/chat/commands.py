"""Chat commands registered by decorator; the help text is generated from the registry."""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

Context = TypeVar("Context")
Handler = Callable[[Context, str], Awaitable[None]]


@dataclass(frozen=True)
class Command(Generic[Context]):
    name: str
    aliases: tuple[str, ...]
    help: str
    handler: Handler[Context]
    # Without arguments the command only matches a message that is exactly its name, so
    # "stop the server" still reaches the agent while "stop" interrupts it.
    usage: str | None = None
    # For a command that takes arguments in a chat where anything else goes to an agent: which arguments
    # make the message this command ("mode plan" does, "mode of transport is bus" stays a message).
    accepts: Callable[[str], bool] | None = None

    @property
    def takes_args(self) -> bool:
        return self.usage is not None

    async def run(self, context: Context, text: str) -> None:
        parts = text.strip().split(maxsplit=1)
        await self.handler(context, parts[1].strip() if len(parts) > 1 else "")


@dataclass(frozen=True)
class Reading(Generic[Context]):
    command: Command[Context] | None
    ignored: str = ""  # words after a command that takes none
    suggestion: str = ""  # the nearest command, for a likely typo


class CommandRegistry(Generic[Context]):
    def __init__(self) -> None:
        self._commands: list[Command[Context]] = []
        self._by_name: dict[str, Command[Context]] = {}

    def command(
        self, name: str, *aliases: str, help: str, usage: str | None = None,
        accepts: Callable[[str], bool] | None = None,
    ) -> Callable[[Handler[Context]], Handler[Context]]:
        def register(handler: Handler[Context]) -> Handler[Context]:
            command = Command(name, aliases, help, handler, usage, accepts)
            self._commands.append(command)
            for key in (name, *aliases):
                if key in self._by_name:
                    raise ValueError(f"command {key!r} registered twice")
                self._by_name[key] = command
            return handler

        return register

    def find(self, text: str) -> Command[Context] | None:
        """The command a message invokes, case-insensitively; None for anything else."""
        words = text.strip().split(maxsplit=1)
        if not words:
            return None
        command = self._by_name.get(words[0].lower())
        if command is None:
            return None
        if len(words) > 1 and not command.takes_args:
            return None
        if command.accepts is not None and not command.accepts(words[1].strip() if len(words) > 1 else ""):
            return None
        return command

    def read(self, text: str) -> Reading[Context]:
        """A lenient reading, for a bot where everything is a command (the manager): the first word names
        the command when it is one, whatever follows (``Help me please``: help, and "me please" was
        ignored); otherwise the nearest command, if a typo is likely (``hlep``: did you mean help?)."""
        exact = self.find(text)
        words = text.strip().split(maxsplit=1)
        if exact is not None or not words:
            return Reading(exact)
        first, rest = words[0].lower(), (words[1] if len(words) > 1 else "")
        command = self._by_name.get(first)
        if command is not None:
            return Reading(command, ignored=rest)
        close = difflib.get_close_matches(first, list(self._by_name), n=1, cutoff=0.6)
        if close:
            nearest = self._by_name[close[0]]
            suggestion = f"{close[0]} {rest}".strip() if nearest.takes_args else close[0]
            return Reading(None, suggestion=suggestion)
        return Reading(None)

    def __iter__(self) -> Iterator[Command[Context]]:
        return iter(self._commands)

    def help_text(self, title: str) -> str:
        lines = [title]
        for command in self._commands:
            shown = command.usage or command.name
            aliases = f" (or {', '.join(command.aliases)})" if command.aliases else ""
            lines.append(f"• {shown}{aliases}: {command.help}")
        return "\n".join(lines)
