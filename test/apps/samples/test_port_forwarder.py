"""Integration tests of apps/samples/port_forwarder:
`python3 test_port_forwarder.py CASE PORT_FORWARDER_BINARY`.

The upstream servers are Python threads on 127.0.0.1 with kernel-chosen ports.
"""

import hashlib
import os
import signal
import socket
import threading
import time

from samplelib import (App, IO_TIMEOUT, Upstream, check, check_cli, check_eq, check_refused, connect, flood_then_stop,
                       main, recv_all, recv_exact)


def echo_handler(conn):
    """Echoes until end of stream, then ends its own stream."""
    while True:
        data = conn.recv(1 << 16)
        if not data:
            conn.shutdown(socket.SHUT_WR)
            return
        conn.sendall(data)


def digest_after_eof_handler(conn):
    """Answers only after the client's end of stream: length and SHA-256 of what came."""
    data = recv_all(conn)
    conn.sendall(f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode())


def start_forwarder(binary, upstream_port, *extra):
    return App([binary, "--port", "0", "--to", f"127.0.0.1:{upstream_port}", *extra])


def roundtrip(binary):
    """Concurrent clients, several messages each, echoed through the forwarder."""
    up = Upstream(echo_handler)
    fwd = start_forwarder(binary, up.port)
    failures = []

    def client(k):
        try:
            with connect(fwd.port) as s:
                for i in range(20):
                    msg = f"client {k} message {i} ".encode() * (1 + i)
                    s.sendall(msg)
                    check_eq(recv_exact(s, len(msg)), msg, f"echo of client {k} message {i}")
                s.shutdown(socket.SHUT_WR)
                check_eq(recv_all(s), b"", f"client {k}: bytes after end of stream")
        except Exception as e:  # noqa: BLE001
            failures.append(f"client {k}: {e!r}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    check(not failures, f"clients failed: {failures}")
    check(not up.errors, f"upstream errors: {up.errors}")
    check_eq(up.accepted, 16, "upstream connections")
    fwd.stop()


def half_close_client_first(binary):
    """The client sends, then shuts down its sending half: the upstream must see
    end of stream (or it would never answer) and the answer must still come back."""
    up = Upstream(digest_after_eof_handler)
    fwd = start_forwarder(binary, up.port)
    payload = os.urandom(300_000)
    with connect(fwd.port) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        answer = recv_all(s)
    check_eq(answer, f"{len(payload)} {hashlib.sha256(payload).hexdigest()}\n".encode(), "upstream's answer")
    check(not up.errors, f"upstream errors: {up.errors}")
    fwd.stop()


def half_close_upstream_first(binary):
    """The upstream greets and ends its stream at once, then reads: the client
    sees end of stream after the greeting and can still send to the upstream."""
    received = []
    done = threading.Event()

    def greet_then_read(conn):
        conn.sendall(b"hello, then goodbye\n")
        conn.shutdown(socket.SHUT_WR)
        received.append(recv_all(conn))
        done.set()

    up = Upstream(greet_then_read)
    fwd = start_forwarder(binary, up.port)
    payload = os.urandom(200_000)
    with connect(fwd.port) as s:
        check_eq(recv_all(s), b"hello, then goodbye\n", "greeting, then end of stream")
        s.sendall(payload)  # the other direction still flows
        s.shutdown(socket.SHUT_WR)
        check(done.wait(IO_TIMEOUT), "the upstream never saw the client's end of stream")
    check_eq(len(received[0]), len(payload), "bytes the upstream received after its own end of stream")
    check(received[0] == payload, "the upstream received different bytes")
    check(not up.errors, f"upstream errors: {up.errors}")
    fwd.stop()


def large_transfer(binary):
    """32 MiB each way at once through an echo upstream, on two connections."""
    up = Upstream(echo_handler)
    fwd = start_forwarder(binary, up.port)
    size = 32 << 20
    failures = []

    def one(k):
        try:
            block = os.urandom(1 << 20)
            expected = hashlib.sha256()
            with connect(fwd.port) as s:
                def send():
                    for _ in range(size // len(block)):
                        s.sendall(block)
                    s.shutdown(socket.SHUT_WR)
                sender = threading.Thread(target=send)
                sender.start()
                for _ in range(size // len(block)):
                    expected.update(block)
                got = hashlib.sha256()
                n = 0
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got.update(chunk)
                    n += len(chunk)
                sender.join(IO_TIMEOUT)
            check_eq(n, size, f"connection {k}: bytes echoed")
            check(got.digest() == expected.digest(), f"connection {k}: echoed bytes differ")
        except Exception as e:  # noqa: BLE001
            failures.append(f"connection {k}: {e!r}")

    threads = [threading.Thread(target=one, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not failures, f"transfers failed: {failures}")
    check(not up.errors, f"upstream errors: {up.errors}")
    fwd.stop()


def upstream_down(binary):
    """While nothing listens upstream, each client is closed (and only it: the
    forwarder keeps running); once the upstream listens, forwarding works."""
    up = Upstream(echo_handler, listen=False)  # bound, not listening: connect is refused
    fwd = start_forwarder(binary, up.port)
    with connect(fwd.port) as idle:  # a connection that stays open throughout
        for _ in range(3):
            with connect(fwd.port) as s:
                check_eq(recv_all(s), b"", "a client whose upstream is down gets end of stream")
        check("cannot reach" in fwd.stderr(), f"no error logged: {fwd.stderr()!r}")
        check(fwd.alive(), "the forwarder exited")
        # The idle client's connection was refused too (it was the first one).
        check_eq(recv_all(idle), b"", "the idle client was closed")
    up.listen()
    with connect(fwd.port) as s:
        s.sendall(b"ping\n")
        check_eq(recv_exact(s, 5), b"ping\n", "echo once the upstream is up")
    fwd.stop()


def sigterm_with_clients(binary):
    """SIGTERM while clients are connected and idle: exit 0, clients see the end."""
    up = Upstream(echo_handler)
    fwd = start_forwarder(binary, up.port, "--drain-timeout", "1")  # the idle ones are closed after it
    clients = [connect(fwd.port) for _ in range(5)]
    for i, s in enumerate(clients):
        s.sendall(b"x%d\n" % i)
        check_eq(recv_exact(s, 3), b"x%d\n" % i, "echo before shutdown")
    fwd.stop(signal.SIGTERM)
    for s in clients:
        check_eq(recv_all(s), b"", "a client after shutdown")
        s.close()
    fwd2 = start_forwarder(binary, up.port)
    fwd2.stop(signal.SIGINT)


def sigterm_during_connect_flood(binary):
    up = Upstream(echo_handler)
    flood_then_stop(start_forwarder(binary, up.port, "--drain-timeout", "1"))


def sigterm_drains(binary):
    """SIGTERM: new clients are refused at once, a session in progress keeps relaying
    until it ends, then the forwarder exits."""
    up = Upstream(echo_handler)
    fwd = start_forwarder(binary, up.port, "--drain-timeout", "20")
    s = connect(fwd.port)
    s.sendall(b"before\n")
    check_eq(recv_exact(s, 7), b"before\n", "echo before shutdown")
    fwd.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    check_refused(fwd.port)
    s.sendall(b"during\n")
    check_eq(recv_exact(s, 7), b"during\n", "echo while draining")
    s.shutdown(socket.SHUT_WR)  # the session ends: the upstream sees EOF and closes
    check_eq(recv_all(s), b"", "the end of the session")
    s.close()
    fwd.stop_waiting(timeout=10.0)


def cli(binary):
    check_cli(binary, [
        [],  # --to is required
        ["--to", "127.0.0.1"],
        ["--to", "127.0.0.1:0"],
        ["--to", "127.0.0.1:70000"],
        ["--to", "127.0.0.1:http"],
        ["--to", "127.0.0.1:1", "--port", "65536"],
        ["--to", "127.0.0.1:1", "--port", "-1"],
        ["--to", "127.0.0.1:1", "--host", "not-an-address"],
        ["--to", "127.0.0.1:1", "--bogus"],
        ["--to", "127.0.0.1:1", "--idle-timeout", "-1"],
        ["--to", "127.0.0.1:1", "--idle-timeout", "1e9"],
    ])


if __name__ == "__main__":
    main({
        "roundtrip": roundtrip,
        "half_close_client_first": half_close_client_first,
        "half_close_upstream_first": half_close_upstream_first,
        "large_transfer": large_transfer,
        "upstream_down": upstream_down,
        "sigterm_with_clients": sigterm_with_clients,
        "sigterm_during_connect_flood": sigterm_during_connect_flood,
        "sigterm_drains": sigterm_drains,
        "cli": cli,
    })
