"""The connection deadlines and limit on both uvicorn protocols (h11, httptools), each serving a
trivial app in a thread: no model, short limits."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn

from imreward.serve.connection_limits import ConnectionLimits
from imreward.serve.connections import protocol_class
from serve.serve_helpers import seconds_until_closed

LIMITS = ConnectionLimits(header_timeout_s=0.5, body_timeout_s=0.8, keep_alive_timeout_s=0.5, max_connections=3)


async def body_length_app(scope, receive, send) -> None:
    """Reads the whole body and answers its length."""
    length, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        length += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(length).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module", params=["h11", "httptools"])
def port(request):
    if request.param == "httptools":
        pytest.importorskip("httptools")
    config = uvicorn.Config(body_length_app, host="127.0.0.1", port=0, lifespan="off", log_level="warning",
                            http=protocol_class(LIMITS, request.param), timeout_keep_alive=LIMITS.keep_alive_timeout_s)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5.0)


def test_idle_and_slow_header_connections_are_closed(port):
    with connect(port) as idle, connect(port) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert 0.3 < seconds_until_closed(idle, limit_s=3.0) < 1.5
        assert seconds_until_closed(slow, trickle=b"X-a: b\r\n", every_s=0.1, limit_s=3.0) < 1.5


def test_a_slow_body_is_cut_and_a_prompt_one_is_served(port):
    with connect(port) as slow:
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 1000\r\n\r\nab")
        assert 0.5 < seconds_until_closed(slow, trickle=b"c", every_s=0.1, limit_s=3.0) < 2.0
    with connect(port) as prompt:
        time.sleep(0.3)  # part of the header deadline used up before the request: no matter
        prompt.sendall(b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello")
        answer = prompt.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"5")
        time.sleep(0.3)  # a second request on the kept-alive connection, within the keep-alive timeout
        prompt.sendall(b"POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 3\r\n\r\nabc")
        assert prompt.recv(65536).endswith(b"3")
        assert seconds_until_closed(prompt, limit_s=3.0) < 1.5  # then closed by the keep-alive timeout


def test_connections_past_the_limit_get_503_and_are_closed(port):
    held = [connect(port) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.1)
        with connect(port) as extra:
            extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = extra.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503") and b"too many open connections" in answer
    finally:
        for connection in held:
            connection.close()
        wait_until_served(port)


def wait_until_served(port: int, limit_s: float = 3.0) -> None:
    """Until the server has noticed closed connections and serves again (the next test starts clean)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with connect(port) as probe:
            probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if probe.recv(65536).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)
    raise AssertionError("the server still refuses connections after the held ones closed")


def test_oversized_headers_are_refused(port):
    with connect(port) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        try:
            for _ in range(64):  # 64 x 1 KiB headers in 4 KiB writes, past the 16 KiB limit
                connection.sendall(b"".join(b"X-%d: %s\r\n" % (i, b"a" * 1000) for i in range(4)))
                time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            pass
        connection.settimeout(3.0)
        try:
            answer = connection.recv(65536)
        except ConnectionResetError:
            pass
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer[:100]


def test_chunked_trailers_are_bounded_like_headers(port):
    trailers = b"".join(b"X-t%d: %s\r\n" % (i, b"a" * 1010) for i in range(1024))  # 1 MiB, past the 16 KiB limit
    with connect(port) as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
        try:
            connection.sendall(trailers + b"\r\n")
            answer = connection.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:100]
    with connect(port) as connection:  # a few small trailers are fine
        connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
                           b"X-checksum: 1234\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
