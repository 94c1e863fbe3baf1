"""The baseline: a bare slixmpp echo bot (no agentchat), in a process of its own like the service.

``python -m bench.echo_bot JID PASSWORD HOST PORT``; prints ``READY`` once its session started and
exits when stdin closes. A message ``BURST <n>`` is answered with n messages ``EVT <i> <t>`` sent
back to back (<t>: time.monotonic_ns() just before each send, as the echo backend stamps its
events), ``BURST <n> <ms>`` with ms of quiet before each; anything else is echoed as is. No
plugins beyond slixmpp's defaults: this is the floor.
"""

from __future__ import annotations

import asyncio
import sys
import time

import slixmpp


def make_bot(jid: str, password: str) -> slixmpp.ClientXMPP:
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
        else:
            bot.send_message(mto=to, mbody=body, mtype="chat")

    tasks: set[asyncio.Task[None]] = set()
    bot.add_event_handler("message", on_message)
    return bot


async def main(jid: str, password: str, host: str, port: int) -> None:
    bot = make_bot(jid, password)
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
    await reader.read()  # until EOF
    await bot.disconnect(wait=0.5)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
