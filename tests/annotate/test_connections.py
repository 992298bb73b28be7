"""`imreward annotate serve` has the reward server's connection limits (issue 20, items 1 and 6):
the real command in a subprocess, under an 8 GiB address-space cap, with short deadlines."""

import os
import resource
import socket
import subprocess
import sys
import time

import httpx
import pytest

from serve.serve_helpers import free_port, seconds_until_closed

ADDRESS_SPACE_CAP = 8 * 2**30  # a regression fails its test, never the machine (torch maps ~3 GiB)


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))


@pytest.fixture(scope="module")
def server_port(tmp_path_factory):
    folder = tmp_path_factory.mktemp("annotate-serve")
    port = free_port()
    command = [sys.executable, "-m", "imreward.cli", "annotate", "serve", "--db", str(folder / "a.db"),
               "--media", str(folder / "media"), "--port", str(port), "--header-timeout", "0.5",
               "--body-timeout", "1", "--keep-alive-timeout", "0.5", "--max-connections", "8"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_capped,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.stdout.read().decode()[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=1.0).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the annotation server did not start"
        time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(30)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5.0)


def send_until_refused(connection: socket.socket, head: bytes, filler: bytes, total: int) -> bytes:
    """Send ``head`` then ``filler`` until ``total`` bytes or the server closes; its answer."""
    sent = 0
    try:
        connection.sendall(head)
        while sent < total:
            connection.sendall(filler)
            sent += len(filler)
    except (BrokenPipeError, ConnectionResetError):
        pass
    connection.settimeout(3.0)
    try:
        return connection.recv(65536)
    except (ConnectionResetError, TimeoutError):
        return b""


def test_idle_and_slow_header_connections_are_closed(server_port):
    with connect(server_port) as idle, connect(server_port) as slow:
        slow.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n")
        assert seconds_until_closed(idle, limit_s=4.0) < 2.0
        assert seconds_until_closed(slow, trickle=b"X-a: b\r\n", every_s=0.1, limit_s=4.0) < 2.0


def test_oversized_headers_and_trailers_are_refused(server_port):
    with connect(server_port) as connection:  # 10 MB of headers
        answer = send_until_refused(connection, b"GET /login HTTP/1.1\r\nHost: x\r\n",
                                    b"".join(b"X-%d: %s\r\n" % (i, b"a" * 1000) for i in range(64)), 10 * 2**20)
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), answer[:100]
    with connect(server_port) as connection:  # 10 MB of trailers after a chunked body
        head = b"POST /login HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
        answer = send_until_refused(connection, head, b"".join(b"X-t: %s\r\n" % (b"a" * 1016) for _ in range(64)),
                                    10 * 2**20)
    assert not answer.startswith(b"HTTP/1.1 2"), answer[:100]
    assert httpx.get(f"http://127.0.0.1:{server_port}/login", timeout=5.0).status_code == 200
