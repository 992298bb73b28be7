"""Attacks on the real server (loopback): refused image formats, invalid text, huge numbers,
idle and slow connections, connection floods. Each test reproduces a defect the server once had."""

from __future__ import annotations

import base64
import io
import socket
import time

import httpx
import msgpack
from PIL import Image

from serve.serve_helpers import HARDENED_LIMITS, encoded_image, seconds_until_closed

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"


def post(server, fields: dict, timeout: float = 30.0) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/score", content=msgpack.packb(fields), timeout=timeout,
                      headers={"content-type": "application/msgpack"})


def test_tiff_gif_and_eps_fail_their_own_item_naming_the_format(server):
    tiff, gif = encoded_image(1, fmt="TIFF"), encoded_image(2, fmt="GIF")
    response = post(server, {"prompt": "a cat", "images": [tiff, encoded_image(3), gif, EPS]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [score is None for score in body["scores"]] == [True, False, True, True]
    messages = {error["index"]: error["message"] for error in body["errors"]}
    for index, name in ((0, "TIFF"), (2, "GIF"), (3, "EPS")):
        assert f"images[{index}]: " in messages[index] and f"image format {name} is not accepted" in messages[index]
    assert "JPEG, MPO, PNG, WEBP" in messages[0]
    only_refused = post(server, {"prompt": "a cat", "images": [EPS]})
    assert only_refused.status_code == 422 and "image format EPS is not accepted" in only_refused.json()["detail"]
    assert Image.open(io.BytesIO(tiff)).format == "TIFF"  # the refused TIFF is a valid image


def post_json_text(server, text: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/score", content=text.encode(), timeout=30.0,
                      headers={"content-type": "application/json"})


def test_a_lone_surrogate_in_a_prompt_is_a_400_naming_it(server):
    image = base64.b64encode(encoded_image(4)).decode()
    body = '{"prompts": ["a cat", "a \\ud800 dog"], "images": ["%s", "%s"]}' % (image, image)
    response = post_json_text(server, body)
    assert response.status_code == 400, response.text
    assert "prompts[1]" in response.json()["detail"] and "lone surrogate" in response.json()["detail"]
    single = post_json_text(server, '{"prompt": "\\udfff", "images": ["%s"]}' % image)
    assert single.status_code == 400 and "prompt:" in single.json()["detail"]


def test_a_lone_surrogate_through_a_multipart_charset_is_a_400(server):
    boundary = "b0undary"
    parts = [(b'name="prompt"', b"+2AA-"),  # UTF-7 for a lone U+D800
             (b'name="images"; filename="a.png"\r\nContent-Type: image/png', encoded_image(5))]
    body = b"".join(b"--%s\r\nContent-Disposition: form-data; %s\r\n\r\n%s\r\n" % (boundary.encode(), header, data)
                    for header, data in parts) + b"--%s--\r\n" % boundary.encode()
    response = httpx.post(f"{server.url}/v1/score", content=body, timeout=30.0,
                          headers={"content-type": f"multipart/form-data; boundary={boundary}; charset=utf-7"})
    assert response.status_code == 400, response.text
    assert "prompt" in response.json()["detail"] and "lone surrogate" in response.json()["detail"]


def test_lone_surrogates_elsewhere_get_4xx_or_fail_their_item(server):
    image = base64.b64encode(encoded_image(6)).decode()
    unknown_model = post_json_text(server, '{"prompt": "p", "images": ["%s"], "model": "\\ud800"}' % image)
    assert unknown_model.status_code == 404 and "\\ud800" in unknown_model.json()["detail"]
    unknown_field = post_json_text(server, '{"prompt": "p", "images": ["%s"], "\\ud800": 1}' % image)
    assert unknown_field.status_code == 422
    bad_image = post_json_text(server, '{"prompt": "p", "images": ["%s", "\\ud800"]}' % image)
    assert bad_image.status_code == 200 and bad_image.json()["scores"][0] is not None
    assert bad_image.json()["errors"][0]["index"] == 1


def test_integers_beyond_python_s_digit_limit_are_a_400(server):
    huge = "9" * 5000
    image = base64.b64encode(encoded_image(7)).decode()
    for body in (huge, f'{{"prompts": [{huge}], "images": ["{image}"]}}',
                 f'{{"prompt": "p", "images": ["{image}"], "model": -{huge}}}', f'[{huge}.5, {huge}]'):
        response = post_json_text(server, body)
        assert response.status_code == 400, (body[:40], response.text)
        assert "malformed JSON" in response.json()["detail"]
    assert post_json_text(server, f'{{"prompt": "p", "images": ["{image}"], "model": "{huge}"}}').status_code == 404


def open_socket(server, timeout: float = 5.0) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return connection


def test_an_idle_connection_is_closed_after_the_header_timeout(hardened_server):
    with open_socket(hardened_server) as connection:
        elapsed = seconds_until_closed(connection)
    assert HARDENED_LIMITS["header"] * 0.8 <= elapsed < HARDENED_LIMITS["header"] + 2.0


def test_slow_loris_headers_are_cut_although_bytes_keep_coming(hardened_server):
    with open_socket(hardened_server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        elapsed = seconds_until_closed(connection, trickle=b"X-a: b\r\n")
    assert elapsed < HARDENED_LIMITS["header"] + 2.0


def test_a_slow_body_is_cut(hardened_server):
    with open_socket(hardened_server) as connection:
        connection.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                           b"content-length: 100000\r\n\r\n{\"prompt\": ")
        elapsed = seconds_until_closed(connection, trickle=b" ")
    assert HARDENED_LIMITS["body"] * 0.8 <= elapsed < HARDENED_LIMITS["body"] + 2.0
    assert hardened_server.alive()
    metrics = httpx.get(f"{hardened_server.url}/metrics", timeout=5.0).text
    assert 'imreward_requests_total{status="499"}' in metrics  # counted as a client that left,
    assert 'reason="internal"' not in metrics  # not as a server error


def test_a_kept_alive_connection_is_closed_after_the_keep_alive_timeout(hardened_server):
    with open_socket(hardened_server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        elapsed = seconds_until_closed(connection)
    assert elapsed < HARDENED_LIMITS["keep_alive"] + 2.0


def test_past_the_connection_limit_new_connections_are_refused_at_once_then_served_again(hardened_server):
    limit = HARDENED_LIMITS["connections"]
    opened = time.monotonic()
    idle = [open_socket(hardened_server) for _ in range(limit)]
    refusals = 0
    try:
        time.sleep(0.1)  # let the server accept them all
        while time.monotonic() - opened < 0.7 * HARDENED_LIMITS["header"]:  # before the idle ones time out
            started = time.monotonic()
            try:
                response = httpx.get(f"{hardened_server.url}/health", timeout=5.0)
                assert response.status_code == 503 and "too many open connections" in response.text
            except httpx.TransportError:
                pass  # closed before the 503 could be read: refused all the same
            assert time.monotonic() - started < 0.5
            refusals += 1
    finally:
        for connection in idle:
            connection.close()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{hardened_server.url}/health", timeout=2.0).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    else:
        raise AssertionError("/health did not answer again once the idle connections were gone")
    assert refusals >= 2


def test_idle_connections_beyond_the_limit_are_reaped_so_health_recovers(hardened_server):
    idle = [open_socket(hardened_server) for _ in range(4 * HARDENED_LIMITS["connections"])]
    try:
        time.sleep(HARDENED_LIMITS["header"] + 1.0)  # every idle connection timed out or was refused
        assert httpx.get(f"{hardened_server.url}/health", timeout=5.0).status_code == 200
        assert all(seconds_until_closed(connection, limit_s=0.5) < 0.5 for connection in idle)
    finally:
        for connection in idle:
            connection.close()


def test_a_content_length_beyond_the_digit_limit_is_refused(hardened_server):
    with open_socket(hardened_server) as connection:
        connection.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                           b"content-length: " + b"9" * 5000 + b"\r\n\r\n{}")
        connection.settimeout(5.0)
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert hardened_server.alive()
