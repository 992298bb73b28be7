"""Raw uint8 pixels in requests: the same scores as PNG bytes of the same pixels, and hostile maps refused."""

from __future__ import annotations

import base64
import io
import json

import httpx
import msgpack
import numpy as np
import pytest
from PIL import Image

from imreward.client import RewardClient, raw_pixels
from imreward.serve.payload import RawImage, RequestError, raw_image


def pixel_arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((40, 48, 3), (33, 20, 3), (24, 24, 4))]


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def post_msgpack(server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/score", content=msgpack.packb(body), timeout=30.0,
                      headers={"content-type": "application/msgpack"})


def test_raw_pixels_score_exactly_as_their_png(server):
    arrays = pixel_arrays()
    prompts = ["a red bicycle", "a cat", "a red bicycle"]
    with RewardClient(server.url, model="other") as client:
        raw = client.score(prompts, arrays)  # numpy arrays travel as raw pixels
        encoded = client.score(prompts, [png(array) for array in arrays])
    assert raw == encoded and None not in raw
    as_json = httpx.post(f"{server.url}/v1/score", timeout=30.0, json={
        "prompts": prompts, "model": "other",
        "images": [{**raw_pixels(array), "data": base64.b64encode(array.tobytes()).decode()} for array in arrays]})
    assert as_json.status_code == 200 and as_json.json()["scores"] == raw


def test_raw_pixels_over_the_pixel_limit_fail_their_item(server):
    """The main test server allows 1,000,000 pixels per image."""
    wide = {"shape": [1001, 1000], "dtype": "uint8", "data": bytes(1001 * 1000)}
    response = post_msgpack(server, {"prompt": "a", "images": [wide, raw_pixels(pixel_arrays()[0])]})
    assert response.status_code == 200, response.text
    content = response.json()
    assert content["scores"][0] is None and content["scores"][1] is not None
    assert "1000x1001 raw pixels exceeds the limit of 1000000" in content["errors"][0]["message"]


@pytest.mark.parametrize("field, message", [
    ({"shape": [2, 2, 3], "dtype": "uint8"}, "expected exactly the keys"),
    ({"shape": [2, 2, 3], "dtype": "uint8", "data": bytes(12), "extra": 1}, "expected exactly the keys"),
    ({"shape": [2, 2, 3], "dtype": "float32", "data": bytes(48)}, "dtype must be 'uint8'"),
    ({"shape": [2, 2, 3], "dtype": "uint8", "data": bytes(11)}, "needs 12 bytes, got 11"),
    ({"shape": [2**40, 2**40, 3], "dtype": "uint8", "data": bytes(12)}, "needs 3626777458843887524118528 bytes"),
    ({"shape": [-2, -2, 3], "dtype": "uint8", "data": bytes(12)}, "positive integers"),
    ({"shape": [True, 2, 3], "dtype": "uint8", "data": bytes(6)}, "positive integers"),
    ({"shape": [2.0, 2, 3], "dtype": "uint8", "data": bytes(12)}, "positive integers"),
    ({"shape": [2, 2, 3, 1], "dtype": "uint8", "data": bytes(12)}, "positive integers"),
    ({"shape": "2,2,3", "dtype": "uint8", "data": bytes(12)}, "positive integers"),
    ({"shape": [2, 2, 2], "dtype": "uint8", "data": bytes(8)}, "channels must be one of"),
    ({"shape": [2, 2, 3], "dtype": "uint8", "data": 12}, "data must be bytes"),
    ({"shape": [2, 2, 3], "dtype": "uint8", "data": "not base64!"}, "invalid base64"),
])
def test_malformed_raw_pixels_are_refused_before_any_allocation(field, message):
    with pytest.raises(RequestError, match=message) as refused:
        raw_image(field, 4)
    assert refused.value.status == 422 and "images[4]: raw pixels" in refused.value.message


def test_a_malformed_raw_map_is_a_422_from_the_server(server):
    response = post_msgpack(server, {"prompt": "a", "images": [{"shape": [4, 4, 3], "dtype": "uint8",
                                                                "data": bytes(47)}]})
    assert response.status_code == 422 and "needs 48 bytes, got 47" in response.json()["detail"]
    response = httpx.post(f"{server.url}/v1/score", timeout=30.0, content=json.dumps(
        {"prompt": "a", "images": [{"shape": [1, 1, 3], "dtype": "uint8", "data": [1, 2, 3]}]}),
        headers={"content-type": "application/json"})
    assert response.status_code == 422 and "data must be bytes" in response.json()["detail"]


def test_raw_image_view_has_the_shape_and_bytes_given():
    array = pixel_arrays()[1]
    checked = raw_image(raw_pixels(array), 0)
    assert checked == RawImage((33, 20, 3), array.tobytes())
    assert np.array_equal(checked.pixels(max_pixels=33 * 20), array)
    with pytest.raises(ValueError, match="exceeds the limit of 659"):
        checked.pixels(max_pixels=33 * 20 - 1)
