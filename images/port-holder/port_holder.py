"""Holds a unit's host ports and forwards each connection to the unit by its network alias.

MLSTACK_FORWARD="8006>voice-interaction:8006 ..." : listen on 8006, forward to the address(es)
the alias resolves to at that moment. Each connection resolves anew and tries every address
the alias has (asyncio's create_connection), and retries for MLSTACK_CONNECT_RETRY_S while
none answers: during a switch the old and the new container share the alias and the old one
refuses as it stops, so a client never sees the switch.

An address can outlive its container by a moment (resolved just before the stopped one left
the network): a connect to it gets no answer at all, not a refusal. So the next address is
tried after HAPPY_EYEBALLS_S without waiting for the first, and a whole attempt gives up after
ATTEMPT_S and resolves anew, well inside a client's patience.

``port_holder.py --check``: the Docker healthcheck; every listening port accepts a connection.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

RETRY_S = float(os.environ.get("MLSTACK_CONNECT_RETRY_S", "10"))
ATTEMPT_S = 2.0
HAPPY_EYEBALLS_S = 0.25
CHUNK = 65536


def routes() -> list[tuple[int, str, int]]:
    out = []
    for item in os.environ.get("MLSTACK_FORWARD", "").split():
        listen, _sep, target = item.partition(">")
        host, _sep, port = target.rpartition(":")
        out.append((int(listen), host, int(port)))
    if not out:
        sys.exit("port_holder: MLSTACK_FORWARD is empty; set it to '<listen>><alias>:<port> ...'")
    return out


async def connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETRY_S
    while True:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(host, port, happy_eyeballs_delay=HAPPY_EYEBALLS_S), ATTEMPT_S)
        except (TimeoutError, OSError):
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.05)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the other direction may still carry the answer
    except OSError:
        writer.close()


def serve(host: str, port: int):  # noqa: ANN201 - asyncio's callback type
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await connect(host, port)
        except (TimeoutError, OSError):
            client_w.close()
            return
        try:
            await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))
        finally:
            for writer in (up_w, client_w):
                writer.close()

    return handle


async def main() -> None:
    servers = [await asyncio.start_server(serve(host, port), "0.0.0.0", listen, reuse_address=True)
               for listen, host, port in routes()]
    print("port_holder: " + ", ".join(f"{src} -> {host}:{port}" for src, host, port in routes()), flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def check() -> None:
    for listen, _host, _port in routes():
        socket.create_connection(("127.0.0.1", listen), timeout=2).close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        check()
    else:
        asyncio.run(main())
