"""Integration tests of apps/samples/chat_server:
`python3 test_chat_server.py CASE CHAT_SERVER_BINARY`."""

import signal
import socket
import time

from samplelib import (App, IO_TIMEOUT, LineReader, check, check_cli, check_eq, connect, flood_then_stop, main,
                       recv_all)


class Client:
    def __init__(self, port, name, rcvbuf=None):
        self.name = name
        if rcvbuf is None:
            self.sock = connect(port)
        else:  # a small receive buffer must be set before connecting
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(IO_TIMEOUT)
            self.sock.connect(("127.0.0.1", port))
        self.reader = LineReader(self.sock)

    def say(self, text):
        self.sock.sendall(text.encode() + b"\n")

    def next_line(self):
        """The next line that is not part of the joining handshake."""
        while True:
            line = self.reader.line()
            if not line.startswith(b"sync "):
                return line.decode()

    def close(self):
        self.sock.close()


def join_room(clients):
    """Returns once every client is in the room: each one repeats 'sync NAME'
    until all the others have heard it (the server enters a client into the
    room only when its session fiber starts, a little after connect returns)."""
    for speaker in clients:
        others = [c for c in clients if c is not speaker]
        heard = set()
        deadline = time.monotonic() + IO_TIMEOUT
        while len(heard) < len(others):
            check(time.monotonic() < deadline, f"{speaker.name}'s sync never reached everybody")
            speaker.say(f"sync {speaker.name}")
            for c in others:
                if c.name in heard:
                    continue
                c.sock.settimeout(0.05)
                try:
                    while b"sync %s\n" % speaker.name.encode() not in c.reader.buf:
                        chunk = c.sock.recv(1 << 16)
                        check(chunk, f"{c.name} was disconnected while joining")
                        c.reader.buf += chunk
                    heard.add(c.name)
                except socket.timeout:
                    pass
                finally:
                    c.sock.settimeout(IO_TIMEOUT)
    # Everybody is in; make sure no stale sync lines are still in flight:
    # each client says 'sync done' once and everyone reads up to it.
    for speaker in clients:
        speaker.say("sync done")
    for c in clients:
        for _ in range(len(clients) - 1):
            while True:
                line = c.reader.line()
                if line == b"sync done\n":
                    break
                check(line.startswith(b"sync "), f"{c.name} got {line!r} while joining")


def broadcast(binary):
    """A line goes to every other client, in order, and not back to its sender."""
    app = App([binary, "--port", "0"])
    a, b, c = (Client(app.port, n) for n in "ABC")
    join_room([a, b, c])
    a.say("hello from A")
    check_eq(b.next_line(), "hello from A\n", "B hears A")
    check_eq(c.next_line(), "hello from A\n", "C hears A")
    b.say("B answers")
    # If A's own line had been echoed to it, it would come before B's.
    check_eq(a.next_line(), "B answers\n", "A hears B (and not its own line)")
    check_eq(c.next_line(), "B answers\n", "C hears B")
    # Many lines, several per packet and lines split across packets: all arrive, in order.
    lines = [f"line {i} " + "x" * (i % 200) for i in range(2000)]
    payload = "".join(s + "\n" for s in lines).encode()
    for i in range(0, len(payload), 777):
        c.sock.sendall(payload[i:i + 777])
    for who in (a, b):
        for i, expected in enumerate(lines):
            check_eq(who.next_line(), expected + "\n", f"{who.name}, line {i} from C")
    # A client leaves; the others carry on.
    c.close()
    a.say("C has left")
    check_eq(b.next_line(), "C has left\n", "B after C left")
    b.say("bye")
    check_eq(a.next_line(), "bye\n", "A after C left")
    app.stop()


def long_line(binary):
    """A line over --max-line ends that client's connection, and only that one;
    the line is not relayed."""
    app = App([binary, "--port", "0", "--max-line", "100"])
    a, b, c = (Client(app.port, n) for n in "ABC")
    join_room([a, b, c])
    c.say("y" * 99)  # 100 bytes with the newline: the longest allowed
    check_eq(a.next_line(), "y" * 99 + "\n", "the longest allowed line")
    check_eq(b.next_line(), "y" * 99 + "\n", "the longest allowed line")
    c.say("z" * 300)
    check_eq(recv_all(c.sock), b"", "the client that sent a too long line is disconnected")
    a.say("still here")
    check_eq(b.next_line(), "still here\n", "B after C's long line (which must not be relayed)")
    b.say("me too")
    check_eq(a.next_line(), "me too\n", "A after C's long line")
    check("longer than 100" in app.stderr(), f"no log line about the long line: {app.stderr()!r}")
    app.stop()


def slow_client(binary):
    """A client that never reads is disconnected once its outbox (--queue
    lines) is full, instead of making the server buffer without bound; a
    client that keeps up gets every line. The outbox holds 64 lines: the fast
    client, a Python process on a loaded machine, may fall a few lines behind
    while the server reads on (with 4, CI runs saw it dropped as too slow)."""
    app = App([binary, "--port", "0", "--queue", "64"])
    sender, fast = Client(app.port, "sender"), Client(app.port, "fast")
    slow = Client(app.port, "slow", rcvbuf=4096)
    join_room([sender, fast, slow])

    line = b"%06d " + b"m" * 1000 + b"\n"
    batches, per_batch = 24, 1000  # 24 MB: far more than the kernel buffers hold
    sent = 0
    for n in range(batches):
        sender.sock.sendall(b"".join(line % (sent + i) for i in range(per_batch)))
        sent += per_batch
        # Wait until the fast client has everything so far: it never lags
        # more than one batch, so only the slow one can fill its queue.
        while fast.reader.buf.count(b"\n") < per_batch:
            chunk = fast.sock.recv(1 << 20)
            check(chunk, f"the fast client was disconnected in batch {n}: {app.stderr()!r}")
            fast.reader.buf += chunk
        lines = fast.reader.buf.split(b"\n")
        fast.reader.buf = b"\n".join(lines[per_batch:])
        for i, got in enumerate(lines[:per_batch]):
            if got + b"\n" != line % (sent - per_batch + i):
                raise AssertionError(f"fast client, line {sent - per_batch + i}: {got[:20]!r}")
    # The slow client now reads: what was buffered for it, then the end of the stream.
    got = recv_all(slow.sock)
    slow_lines = got.count(b"\n")
    check(slow_lines < sent, f"the slow client got all {sent} lines: it was not cut off")
    # Whole lines, intact (the last one may be cut off where the connection was closed).
    check(all(l.startswith(b"sync") or l[7:] == b"m" * 1000 for l in got.split(b"\n")[:-1]),
          "the slow client got damaged lines")
    check("too slow" in app.stderr(), f"no log line about the slow client: {app.stderr()!r}")
    # The server is fine: the others still talk.
    fast.say("after the storm")
    check_eq(sender.next_line(), "after the storm\n", "sender hears fast")
    print(f"slow client got {slow_lines} of {sent} lines before it was disconnected")
    app.stop()


def sigterm_with_clients(binary):
    """SIGTERM with connected clients: exit 0; the clients see their streams end."""
    app = App([binary, "--port", "0"])
    a, b = Client(app.port, "A"), Client(app.port, "B")
    join_room([a, b])
    app.stop()
    for c in (a, b):
        check_eq(recv_all(c.sock), b"", f"{c.name} after shutdown")
    app2 = App([binary, "--port", "0"])
    app2.stop(signal.SIGINT)


def sigterm_during_connect_flood(binary):
    flood_then_stop(App([binary, "--port", "0"]))


def cli(binary):
    check_cli(binary, [
        ["--queue", "0"],
        ["--queue", "-3"],
        ["--max-line", "1"],
        ["--idle-timeout", "0"],
        ["--idle-timeout", "soon"],
        ["--port", "70000"],
        ["--port", "abc"],
        ["--host", "localhost"],
        ["--bogus"],
    ])


if __name__ == "__main__":
    main({
        "broadcast": broadcast,
        "long_line": long_line,
        "slow_client": slow_client,
        "sigterm_with_clients": sigterm_with_clients,
        "sigterm_during_connect_flood": sigterm_during_connect_flood,
        "cli": cli,
    })
