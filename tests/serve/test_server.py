"""The real server on a loopback port: scores equal to the offline API, every refusal is its 4xx."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time

import httpx
import msgpack
import pytest
from PIL import Image

import imreward
from serve.serve_helpers import GRACEFUL_EXIT, MAX_QUEUED_IMAGES, TOKEN, ServerProcess, encoded_image, metric_sums

PROMPTS = ["a red bicycle", "a cat sleeping on a sofa", "a red bicycle"]


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return [encoded_image(1), encoded_image(2, (64, 30), "JPEG"), encoded_image(3, (20, 50), "WEBP")]


@pytest.fixture(scope="module")
def offline_scores(model_dirs, images) -> dict[str, list[float]]:
    return {name: imreward.load(folder, device="cpu").score_batch(PROMPTS, images)
            for name, folder in model_dirs.items()}


def post_json(server: ServerProcess, body: object, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/score", content=json.dumps(body), timeout=30.0,
                      headers={"content-type": "application/json", **kwargs.pop("headers", {})}, **kwargs)


def as_base64(images: list[bytes]) -> list[str]:
    return [base64.b64encode(image).decode() for image in images]


def test_json_scores_equal_the_offline_api(server, images, offline_scores):
    response = post_json(server, {"prompts": PROMPTS, "images": as_base64(images)})
    assert response.status_code == 200, response.text
    assert response.json()["errors"] == []
    assert response.json()["scores"] == pytest.approx(offline_scores["tiny"], abs=1e-5)


def test_msgpack_request_and_response_for_a_named_model(server, images, offline_scores):
    body = msgpack.packb({"prompts": PROMPTS, "images": images, "model": "other"})
    response = httpx.post(f"{server.url}/v1/score", content=body, timeout=30.0,
                          headers={"content-type": "application/msgpack", "accept": "application/msgpack"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/msgpack"
    scores = msgpack.unpackb(response.content)["scores"]
    assert scores == pytest.approx(offline_scores["other"], abs=1e-5)
    assert scores != pytest.approx(offline_scores["tiny"], abs=1e-5)


def test_multipart_with_one_prompt_for_all_images(server, images, model_dirs):
    files = [("images", (f"{i}.img", image)) for i, image in enumerate(images)]
    response = httpx.post(f"{server.url}/v1/score", data={"prompt": "a dog"}, files=files, timeout=30.0)
    assert response.status_code == 200, response.text
    expected = imreward.load(model_dirs["tiny"], device="cpu").score_batch("a dog", images)
    assert response.json()["scores"] == pytest.approx(expected, abs=1e-5)


def test_one_bad_image_fails_only_its_item(server, images, offline_scores):
    fields = as_base64(images)
    fields[1] = base64.b64encode(b"not an image at all").decode()
    response = post_json(server, {"prompts": PROMPTS, "images": fields})
    assert response.status_code == 200
    scores, errors = response.json()["scores"], response.json()["errors"]
    assert scores[1] is None
    assert [scores[0], scores[2]] == pytest.approx([offline_scores["tiny"][0], offline_scores["tiny"][2]], abs=1e-5)
    assert [error["index"] for error in errors] == [1]
    assert "images[1]" in errors[0]["message"] and "cannot decode" in errors[0]["message"]


@pytest.mark.parametrize("body, status, message", [
    ({"prompts": ["a"], "images": [base64.b64encode(b"garbage").decode()]}, 422, "images[0]"),
    ({"prompts": ["a"], "images": ["!!!not base64!!!"]}, 422, "invalid base64"),
    ({"prompts": ["a", "b", "c"], "images": ["AAAA", "AAAA"]}, 422, "3 prompts for 2 images"),
    ({"prompts": ["a"], "images": []}, 422, "empty request"),
    ({"prompts": [], "images": ["AAAA"]}, 422, "'prompts'"),
    ({"prompts": [1], "images": ["AAAA"]}, 422, "prompts[0]"),
    ({"prompts": ["a"], "images": ["AAAA"], "model": "missing"}, 404, "unknown model 'missing'"),
    ({"prompts": ["a"], "images": ["AAAA"] * 9}, 413, "9 images exceeds the limit of 8"),
    ({"prompts": ["a"], "images": ["AAAA"], "extra": 1}, 422, "unknown fields"),
    ([1, 2], 422, "must be an object"),
])
def test_invalid_requests_get_their_4xx(server, body, status, message):
    response = post_json(server, body)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_too_many_pixels_names_the_item(server):
    buffer = io.BytesIO()
    Image.new("RGB", (1100, 1000), "gray").save(buffer, format="PNG")  # 1.1 Mpixel > the 1 Mpixel limit
    huge = buffer.getvalue()
    response = post_json(server, {"prompts": ["a"], "images": as_base64([huge])})
    assert response.status_code == 422
    assert "images[0]" in response.json()["detail"] and "exceeds the limit of 1000000" in response.json()["detail"]


def test_oversize_body_malformed_json_and_wrong_content_type(server):
    too_big = httpx.post(f"{server.url}/v1/score", content=b"x" * (2**20 + 1), timeout=30.0,
                         headers={"content-type": "application/json"})
    assert too_big.status_code == 413 and "exceeds the limit" in too_big.json()["detail"]
    malformed = httpx.post(f"{server.url}/v1/score", content=b'{"prompts": [', timeout=30.0,
                           headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["detail"]
    plain = httpx.post(f"{server.url}/v1/score", content=b"hello", timeout=30.0, headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and "text/plain" in plain.json()["detail"]


def test_models_health_and_metrics(server, images):
    models = httpx.get(f"{server.url}/v1/models").json()
    assert models["default"] == "tiny"
    assert [model["name"] for model in models["models"]] == ["tiny", "other"]
    assert models["models"][0]["image_size"] == 32
    post_json(server, {"prompts": ["a"], "images": as_base64(images[:2])})
    metrics = httpx.get(f"{server.url}/metrics").text
    for name in ("imreward_requests_total", "imreward_images_total", "imreward_batch_size_bucket",
                 "imreward_request_latency_seconds_bucket", "imreward_errors_total"):
        assert name in metrics
    assert 'imreward_errors_total{reason="unknown_model"}' in metrics
    assert server.alive()


AUTHORIZED = {"authorization": f"Bearer {TOKEN}"}


def test_token_is_required_but_health_is_open(slow_batching_server, images):
    url = slow_batching_server.url
    body = {"prompts": ["a"], "images": as_base64(images[:1])}
    assert httpx.post(f"{url}/v1/score", json=body, timeout=30).status_code == 401
    wrong = httpx.post(f"{url}/v1/score", json=body, headers={"authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    assert httpx.get(f"{url}/v1/models").status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200
    right = httpx.post(f"{url}/v1/score", json=body, headers=AUTHORIZED, timeout=30)
    assert right.status_code == 200 and right.json()["scores"][0] is not None


async def send_together(server: ServerProcess, bodies: list[dict]) -> tuple[dict, list[httpx.Response], dict]:
    """Server metrics before, the responses to ``bodies`` sent at once, and the metrics after."""
    names = ("imreward_batch_size_count", "imreward_batch_size_sum", "imreward_errors_total")
    async with httpx.AsyncClient(base_url=server.url, headers=AUTHORIZED, timeout=30) as client:
        before = metric_sums((await client.get("/metrics")).text, names)
        responses = await asyncio.gather(*(client.post("/v1/score", json=body) for body in bodies))
        return before, responses, metric_sums((await client.get("/metrics")).text, names)


def test_concurrent_requests_share_batches(slow_batching_server, images):
    bodies = [{"prompts": ["a"], "images": as_base64([image])} for image in images * 2]
    before, responses, after = asyncio.run(send_together(slow_batching_server, bodies))
    assert all(response.status_code == 200 for response in responses)
    assert after["imreward_batch_size_sum"] - before["imreward_batch_size_sum"] == 6  # six images were scored...
    assert after["imreward_batch_size_count"] - before["imreward_batch_size_count"] < 6  # ...in fewer forwards


def test_images_in_flight_over_the_limit_get_503_with_retry_after(slow_batching_server, images):
    bodies = [{"prompts": ["a"], "images": as_base64(images[:1])}] * (MAX_QUEUED_IMAGES + 2)
    before, responses, after = asyncio.run(send_together(slow_batching_server, bodies))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * MAX_QUEUED_IMAGES + [503, 503]  # all arrive within the 1.5 s batching window
    refused = [response for response in responses if response.status_code == 503]
    assert all(response.headers["retry-after"] == "1" for response in refused)
    assert "server busy" in refused[0].json()["detail"]
    assert after["imreward_errors_total"] - before["imreward_errors_total"] == 2
    alone = httpx.post(f"{slow_batching_server.url}/v1/score", headers=AUTHORIZED, timeout=30,
                       json={"prompts": ["a"], "images": as_base64(images[:1]) * (MAX_QUEUED_IMAGES + 1)})
    assert alone.status_code == 200  # the count went back to 0, and a request alone passes even over the limit


def test_graceful_shutdown_finishes_requests_in_flight(slow_batching_server, images):
    result = {}

    def request() -> None:
        result["response"] = httpx.post(f"{slow_batching_server.url}/v1/score", timeout=30, headers=AUTHORIZED,
                                        json={"prompts": ["a"], "images": as_base64(images[:1])})

    thread = threading.Thread(target=request)
    thread.start()
    time.sleep(0.5)  # the request now waits in the 1.5 s batching window
    assert slow_batching_server.stop() in GRACEFUL_EXIT
    thread.join(30)
    assert result["response"].status_code == 200
    assert result["response"].json()["scores"][0] is not None
