"""Chat commands registered by decorator; the help text is generated from the registry."""

from __future__ import annotations

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

    @property
    def takes_args(self) -> bool:
        return self.usage is not None

    async def run(self, context: Context, text: str) -> None:
        parts = text.strip().split(maxsplit=1)
        await self.handler(context, parts[1].strip() if len(parts) > 1 else "")


class CommandRegistry(Generic[Context]):
    def __init__(self) -> None:
        self._commands: list[Command[Context]] = []
        self._by_name: dict[str, Command[Context]] = {}

    def command(
        self, name: str, *aliases: str, help: str, usage: str | None = None
    ) -> Callable[[Handler[Context]], Handler[Context]]:
        def register(handler: Handler[Context]) -> Handler[Context]:
            command = Command(name, aliases, help, handler, usage)
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
        return command

    def __iter__(self) -> Iterator[Command[Context]]:
        return iter(self._commands)

    def help_text(self, title: str) -> str:
        lines = [title]
        for command in self._commands:
            shown = command.usage or command.name
            aliases = f" (or {', '.join(command.aliases)})" if command.aliases else ""
            lines.append(f"• {shown}{aliases}: {command.help}")
        return "\n".join(lines)
