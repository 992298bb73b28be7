"""RewardClient / AsyncRewardClient against the real server, and their retry policy."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import imreward
from imreward.client import AsyncRewardClient, RewardClient, RewardServerError, _retry_delay
from serve.serve_helpers import encoded_image


def test_client_scores_equal_the_offline_api(server, model_dirs, tmp_path):
    from PIL import Image

    path = tmp_path / "image.png"
    path.write_bytes(encoded_image(11))
    images = [encoded_image(12), str(path), Image.new("RGB", (40, 40), "teal")]
    expected = imreward.load(model_dirs["other"], device="cpu").score_batch("a teal square", images)
    with RewardClient(server.url, model="other") as client:
        assert client.score("a teal square", images) == pytest.approx(expected, abs=1e-5)
        assert client.health()["status"] == "ok"
        with pytest.raises(RewardServerError, match="unknown model 'nope'") as refused:
            client.score("a", [encoded_image(1)], model="nope")
        assert refused.value.status == 404
        detailed = client.score_detailed(["a", "b"], [encoded_image(1), b"broken"])
        assert detailed.scores[1] is None and detailed.errors[0]["index"] == 1 and detailed.normalized is None
        normalized = client.score_detailed("a teal square", images, normalize="prompt-zscore").normalized
        mean = sum(expected) / 3
        std = (sum((value - mean) ** 2 for value in expected) / 3) ** 0.5
        assert normalized == pytest.approx([(value - mean) / std for value in expected], abs=1e-4)


def test_async_client_concurrent_requests(server, model_dirs):
    images = [encoded_image(seed) for seed in range(6)]
    expected = imreward.load(model_dirs["tiny"], device="cpu").score_batch("a photo", images)

    async def score_each() -> list:
        async with AsyncRewardClient(server.url) as client:
            results = await asyncio.gather(*(client.score("a photo", [image]) for image in images))
            return [result[0] for result in results]

    assert asyncio.run(score_each()) == pytest.approx(expected, abs=1e-5)


def test_retries_after_unavailable_then_succeeds():
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, json={"detail": "busy"})
        return httpx.Response(200, json={"scores": [0.5], "errors": []})

    client = RewardClient("http://server", retries=3, backoff=0.001, transport=httpx.MockTransport(answer))
    assert client.score("a", [b"image"]) == [0.5]
    assert len(calls) == 3


def test_gives_up_after_the_retries_and_never_retries_a_4xx():
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503 if request.url.path == "/v1/score" else 422, json={"detail": "no"})

    client = RewardClient("http://server", retries=2, backoff=0.001, transport=httpx.MockTransport(answer))
    with pytest.raises(RewardServerError, match="HTTP 503"):
        client.score("a", [b"image"])
    assert len(calls) == 3
    with pytest.raises(RewardServerError, match="HTTP 422"):
        client.models()
    assert len(calls) == 4


def test_connection_errors_are_retried_then_raised():
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    client = RewardClient("http://server", retries=2, backoff=0.001, transport=httpx.MockTransport(refuse))
    with pytest.raises(httpx.ConnectError):
        client.health()
    assert len(calls) == 3


def test_backoff_doubles_within_jitter():
    assert _retry_delay(0, 3, 1.0, None) == pytest.approx(1.125, abs=0.125)
    assert _retry_delay(2, 3, 1.0, None) == pytest.approx(4.5, abs=0.5)
    assert _retry_delay(3, 3, 1.0, None) is None
    assert _retry_delay(0, 3, 1.0, httpx.Response(400)) is None


def test_retry_after_of_a_busy_server_wins_over_the_backoff():
    assert _retry_delay(0, 3, 0.001, httpx.Response(503, headers={"retry-after": "7"})) == 7.0
    assert _retry_delay(0, 3, 0.001, httpx.Response(429, headers={"retry-after": "3600"})) == 60.0
    assert _retry_delay(0, 3, 1.0, httpx.Response(503, headers={"retry-after": "soon"})) == pytest.approx(1.125,
                                                                                                         abs=0.125)
    assert _retry_delay(3, 3, 0.001, httpx.Response(503, headers={"retry-after": "7"})) is None


def test_unsupported_image_type_is_refused_before_sending():
    client = RewardClient("http://server", transport=httpx.MockTransport(lambda request: httpx.Response(500)))
    with pytest.raises(TypeError, match="not int"):
        client.score("a", [3])
