"""Integration tests of apps/samples/udp_echo: `python3 test_udp_echo.py CASE UDP_ECHO_BINARY`."""

import asyncio
import os
import signal
import socket

from samplelib import App, IO_TIMEOUT, check, check_cli, check_eq, main


def echo(binary):
    """Datagrams of many sizes (empty to 60000 bytes) come back unchanged, to
    the socket that sent them."""
    app = App([binary, "--port", "0"])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(IO_TIMEOUT)
    for size in (0, 1, 100, 1472, 9000, 60000):
        data = os.urandom(size)
        s.sendto(data, ("127.0.0.1", app.port))
        reply, sender = s.recvfrom(1 << 16)
        check_eq(sender, ("127.0.0.1", app.port), "reply comes from the server's port")
        check(reply == data, f"echo of a {size}-byte datagram differs ({len(reply)} bytes back)")
    s.close()
    app.stop()


def many_clients(binary):
    """Fifty asyncio clients at once, each sending twenty datagrams, one after
    the other's echo: every client gets exactly its own datagrams back. (At
    most fifty datagrams are in flight, far below what the socket buffers
    hold, so loopback does not drop any.)"""
    app = App([binary, "--port", "0"])

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.replies = asyncio.Queue()

        def datagram_received(self, data, addr):
            self.replies.put_nowait((data, addr))

    async def client(k):
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", app.port))
        try:
            for i in range(20):
                msg = b"client %d datagram %d " % (k, i) + b"." * (i * 50)
                transport.sendto(msg)
                data, addr = await asyncio.wait_for(proto.replies.get(), IO_TIMEOUT)
                check_eq(data, msg, f"echo to client {k}")
                check_eq(addr, ("127.0.0.1", app.port), f"sender of the echo to client {k}")
        finally:
            transport.close()

    async def run():
        await asyncio.gather(*(client(k) for k in range(50)))

    asyncio.run(run())
    app.stop()


def sigterm(binary):
    """SIGTERM and SIGINT: clean exit, status 0, after serving traffic."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        app = App([binary, "--port", "0"])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(IO_TIMEOUT)
        s.sendto(b"ping", ("127.0.0.1", app.port))
        check_eq(s.recvfrom(100)[0], b"ping", "echo before the signal")
        s.close()
        app.stop(sig)


def cli(binary):
    check_cli(binary, [
        ["--port", "65536"],
        ["--port", "-5"],
        ["--port"],
        ["--host", "127.0.0.300"],
        ["--bogus"],
    ])


if __name__ == "__main__":
    main({"echo": echo, "many_clients": many_clients, "sigterm": sigterm, "cli": cli})
