"""Inside a network-less sandbox: relay a loopback TCP port to a Unix socket, then run the command.

    python -I -S sandbox_relay.py HOST PORT SOCKET -- COMMAND [ARGS...]

The agent's CLI reaches the MCP permission endpoint at http://HOST:PORT/mcp as usual; in a sandbox
without network, that port is served here and every connection is carried over to the service's
Unix socket, which bubblewrap binds into the sandbox. Standard library only, run without site
(``-S``): the sandbox shows the interpreter and its standard library, nothing else of Python.

The port is listening before the command starts. The relay forks: the child relays, the parent
becomes the command (same pid, same pipes), so its exit status is the sandbox's; when it ends, the
sandbox's PID namespace ends and takes the relay with it.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

CHUNK = 256 * 1024


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _carry(client: socket.socket, path: str) -> None:
    with client:
        try:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(path)
        except OSError:
            return  # the client sees the connection close: the service is gone
        with upstream:
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_carry, args=(client, path), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 6 or argv[4] != "--":
        print("usage: sandbox_relay.py HOST PORT SOCKET -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    host, port, path, command = argv[1], int(argv[2]), argv[3], argv[5:]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family)
    if os.fork() == 0:
        # The relay holds none of the command's pipes, so their end is the command's end.
        devnull = os.open(os.devnull, os.O_RDWR)
        for descriptor in (0, 1, 2):
            os.dup2(devnull, descriptor)
        try:
            _serve(listener, path)
        finally:
            os._exit(0)
    listener.close()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"sandbox_relay: cannot run {command[0]}: {exc}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
