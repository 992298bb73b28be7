"""Attacks on the real server (loopback): refused image formats, invalid text, huge numbers,
idle and slow connections, connection floods. Each test reproduces a defect the server once had."""

from __future__ import annotations

import base64
import io
import json

import httpx
import msgpack
from PIL import Image

from serve.serve_helpers import encoded_image

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
