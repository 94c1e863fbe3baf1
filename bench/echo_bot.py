"""The baseline: a bare slixmpp echo bot (no agentchat), in a process of its own like the service.

``python -m bench.echo_bot JID PASSWORD HOST PORT [--via-child]``; prints ``READY`` once its session
started and exits when stdin closes. With ``--via-child`` every echo goes through a ``cat`` child
process over pipes first: the floor for any design with a process per agent (what a process hop
adds to the bare bot, measured rather than assumed). A message ``BURST <n>`` is answered with n messages ``EVT <i> <t>`` sent
back to back (<t>: time.monotonic_ns() just before each send, as the echo backend stamps its
events), ``BURST <n> <ms>`` with ms of quiet before each; anything else is echoed as is. No
plugins beyond slixmpp's defaults: this is the floor.

A line ``JOIN <room> <nick>`` on stdin makes it join that room (XEP-0045: its one extra plugin, then),
answered ``JOINED`` on stdout; there a line ``@<nick> <text>`` from another occupant is answered in the
room with ``<text>`` (the floor for a mention answered in a room, bench/rooms.py).
"""

from __future__ import annotations

import asyncio
import sys
import time

import slixmpp


class ChildEcho:
    """A ``cat`` child: a line written to its stdin comes back on its stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.waiting: asyncio.Queue[slixmpp.JID] = asyncio.Queue()

    @classmethod
    async def start(cls) -> ChildEcho:
        process = await asyncio.create_subprocess_exec(
            "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        return cls(process)

    def send(self, to: slixmpp.JID, body: str) -> None:
        assert self.process.stdin is not None
        self.waiting.put_nowait(to)
        self.process.stdin.write(body.replace("\n", " ").encode() + b"\n")

    async def relay(self, bot: slixmpp.ClientXMPP) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            to = self.waiting.get_nowait()
            bot.send_message(mto=to, mbody=line.decode().rstrip("\n"), mtype="chat")


def make_bot(
    jid: str, password: str, child: ChildEcho | None = None, rooms: dict[str, str] | None = None
) -> slixmpp.ClientXMPP:
    """``rooms``: room -> our nick there, as join() fills it."""
    rooms = {} if rooms is None else rooms
    bot = slixmpp.ClientXMPP(jid, password, plugin_config={"feature_mechanisms": {"unencrypted_scram": True}})
    bot.enable_plaintext = True
    bot.enable_starttls = False
    bot.enable_direct_tls = False

    def event(to: slixmpp.JID, index: int) -> None:
        bot.send_message(mto=to, mbody=f"EVT {index} {time.monotonic_ns()}", mtype="chat")

    async def paced(to: slixmpp.JID, count: int, pause: float) -> None:
        for index in range(count):
            await asyncio.sleep(pause)
            event(to, index)

    def on_message(msg: slixmpp.Message) -> None:
        body = msg["body"]
        if msg["type"] == "groupchat":
            nick = rooms.get(msg["from"].bare)
            if body and nick is not None and msg["from"].resource != nick and body.startswith(f"@{nick} "):
                bot.send_message(mto=msg["from"].bare, mbody=body[len(nick) + 2 :], mtype="groupchat")
            return
        if not body or msg["type"] not in ("chat", "normal"):
            return
        to = msg["from"]
        if body.startswith("BURST "):
            count, *pause = (int(word) for word in body.split()[1:])
            if pause:
                tasks.add(task := asyncio.get_running_loop().create_task(paced(to, count, pause[0] / 1000)))
                task.add_done_callback(tasks.discard)
            else:
                for index in range(count):
                    event(to, index)
        elif child is not None:
            child.send(to, body)
        else:
            bot.send_message(mto=to, mbody=body, mtype="chat")

    tasks: set[asyncio.Task[None]] = set()
    bot.add_event_handler("message", on_message)
    return bot


async def join(bot: slixmpp.ClientXMPP, rooms: dict[str, str], room: str, nick: str) -> None:
    if "xep_0045" not in bot.plugin:
        bot.register_plugin("xep_0045")
    rooms[room] = nick
    await bot.plugin["xep_0045"].join_muc_wait(slixmpp.JID(room), nick, maxstanzas=0, timeout=30)


async def main(jid: str, password: str, host: str, port: int, via_child: bool) -> None:
    child = await ChildEcho.start() if via_child else None
    rooms: dict[str, str] = {}
    bot = make_bot(jid, password, child, rooms)
    relay = asyncio.get_running_loop().create_task(child.relay(bot)) if child is not None else None
    started = asyncio.get_running_loop().create_future()
    bot.add_event_handler("session_start", lambda _: started.done() or started.set_result(None))
    bot.connect(host, port)
    await asyncio.wait_for(started, 15)
    bot.send_presence()
    await bot.get_roster()
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():  # until EOF
        command = line.decode().split()
        if command[:1] == ["JOIN"]:
            await join(bot, rooms, command[1], command[2])
            print("JOINED", flush=True)
    await bot.disconnect(wait=0.5)
    if child is not None and relay is not None:
        assert child.process.stdin is not None
        child.process.stdin.close()
        await child.process.wait()
        await relay


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), "--via-child" in sys.argv[5:]))
