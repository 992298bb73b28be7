"""Malformed requests never get a 5xx and never bring the server down."""

from __future__ import annotations

import base64
import json
import random
import struct
import zlib

import httpx
import msgpack

from serve.serve_helpers import encoded_image

FUZZ_SEED = 1234
MUTATED_BODIES = 390


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with an empty image stream."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def valid_bodies() -> list[tuple[str, bytes]]:
    images = [encoded_image(7), encoded_image(8, (30, 30), "JPEG")]
    fields = {"prompts": ["a", "b"], "images": [base64.b64encode(image).decode() for image in images]}
    multipart = httpx.Request("POST", "http://x", data={"prompt": "a"}, files=[("images", ("a.png", images[0]))])
    raw = {"shape": [6, 5, 3], "dtype": "uint8", "data": bytes(range(90))}  # raw pixels (imreward.rl's transport)
    return [("application/json", json.dumps(fields).encode()),
            ("application/msgpack", msgpack.packb({"prompts": ["a"], "images": images})),
            ("application/msgpack", msgpack.packb({"prompts": ["a"], "images": [raw]})),
            (multipart.headers["content-type"], multipart.read())]


def malformed_requests(rng: random.Random) -> list[tuple[str | None, bytes]]:
    cases: list[tuple[str | None, bytes]] = []
    for content_type, body in valid_bodies():
        cases += [(content_type, body[:cut]) for cut in sorted(rng.sample(range(len(body)), 20))]  # truncated
        for _ in range(MUTATED_BODIES // 3):  # random bytes flipped, inserted or deleted
            mutated = bytearray(body)
            for _ in range(rng.randint(1, 8)):
                position = rng.randrange(len(mutated))
                choice = rng.random()
                if choice < 0.5:
                    mutated[position] = rng.randrange(256)
                elif choice < 0.75:
                    mutated.insert(position, rng.randrange(256))
                else:
                    del mutated[position]
            cases.append((content_type, bytes(mutated)))
        cases += [(kind, body) for kind in ("text/plain", "application/xml", "image/png", None,
                                           "multipart/form-data", "application/json; charset=latin-1")]
    garbage = ["", "=", "====", "A", "AAA", "@@@@", "\u00e9\u00e9", "AAAA" * 3, base64.b64encode(b"\x00" * 64).decode()]
    cases += [("application/json", json.dumps({"prompts": ["p"], "images": [text]}).encode()) for text in garbage]
    for width, height in ((100_000, 100_000), (2**31 - 1, 1), (1, 2**31 - 1), (0, 0), (5000, 5000)):
        huge = png_header_only(width, height)
        cases.append(("application/msgpack", msgpack.packb({"prompts": ["p"], "images": [huge]})))
    odd_fields = [None, 1, "x", [], {}, [None], {"images": None}, {"prompts": "p", "images": "AAAA"},
                  {"prompts": [["nested"]], "images": ["AAAA"]}, {"prompts": ["p"], "images": [1.5]},
                  {"prompts": ["p"], "images": ["AAAA"], "model": 3}, {"prompt": "p", "prompts": ["q"], "images": []},
                  {"prompts": ["p" * 20_000], "images": ["AAAA"]}, {"prompts": ["p"], "images": [{"b": 1}]}]
    cases += [("application/json", json.dumps(fields).encode()) for fields in odd_fields]
    cases += [("application/msgpack", msgpack.packb(fields)) for fields in odd_fields]
    cases += [("application/json", b"[" * 100_000), ("application/msgpack", b"\x91" * 100_000),
              ("application/msgpack", b"\xc7\x05\x01abc"), ("application/json", b"\xff\xfe\x00")]
    cases += [("application/json", bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))) for _ in range(20)]
    return cases + hostile_values_in_every_field()


def hostile_values_in_every_field() -> list[tuple[str, bytes]]:
    """Each JSON field (and a field name) in turn holds a lone surrogate or an integer over 4,300 digits."""
    image = json.dumps(base64.b64encode(encoded_image(9)).decode())
    template = '{"prompts": [%s], "images": [%s], "model": %s}'
    cases = []
    for value in ('"\\ud800"', '"x\\udfff"', "9" * 4301, "-" + "1" * 5000, "1" * 5000 + ".5e1"):
        for fields in ((value, image, '"tiny"'), ('"p"', value, '"tiny"'), ('"p"', image, value),
                       ('"p", ' + value, image + ", " + image, "null")):
            cases.append(("application/json", (template % fields).encode()))
        cases.append(("application/json", ('{"prompt": %s, "images": [%s]}' % (value, image)).encode()))
        cases.append(("application/json", ('{%s: 1, "prompt": "p", "images": [%s]}' % (value, image)).encode()))
    return cases


def test_malformed_requests_get_4xx_and_the_server_stays_up(server):
    cases = malformed_requests(random.Random(FUZZ_SEED))
    statuses = []
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for content_type, body in cases:
            headers = {"content-type": content_type} if content_type else {}
            response = client.post("/v1/score", content=body, headers=headers)
            assert response.status_code < 500, (content_type, body[:200], response.text)
            statuses.append(response.status_code)
    assert len(cases) > 500
    assert sum(status >= 400 for status in statuses) > 0.9 * len(cases)
    assert server.alive()
    print(f"{len(cases)} malformed requests: statuses {sorted(set(statuses))}")
