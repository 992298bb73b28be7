"""One server, several registered scorers: the request names one, optional per-prompt z-scores.

Runs the app in-process (``imreward serve`` with uvicorn.run captured, then starlette's TestClient).
"""

from __future__ import annotations

import base64
import math

import msgpack
import pytest
import uvicorn
from starlette.testclient import TestClient

from imreward import hub
from imreward.cli import main as cli_main
from imreward.testing import tiny_model
from serve.serve_helpers import encoded_image

PROMPTS = ["a red bicycle", "a cat", "a red bicycle", "a red bicycle", "a dog"]


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return [encoded_image(seed, (40 + 9 * seed, 36)) for seed in range(len(PROMPTS))]


@pytest.fixture(scope="module")
def scorers() -> dict:
    """Two tiny scorers with different weights and input sizes (32 and 64 pixels)."""
    return {"tiny-a": tiny_model(seed=0), "tiny-64": tiny_model(seed=2, image_size=64)}


@pytest.fixture
def client(scorers, monkeypatch):
    """``imreward serve --model tiny-a --model wide=tiny-64`` on registered test scorers, in-process."""
    for name, scorer in scorers.items():
        monkeypatch.setitem(hub._SCORERS, name, hub.ScorerInfo(lambda name, scorer=scorer, **_: scorer))
    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: captured.update(app=app))
    assert cli_main(["serve", "--model", "tiny-a", "--model", "wide=tiny-64", "--device", "cpu",
                     "--max-wait-ms", "1"]) == 0
    with TestClient(captured["app"]) as test_client:
        yield test_client


def post(client: TestClient, **fields):
    return client.post("/v1/score", content=msgpack.packb(fields),
                       headers={"content-type": "application/msgpack", "accept": "application/msgpack"})


def test_each_named_model_answers_with_its_own_scores(client, scorers, images):
    assert [model["name"] for model in client.get("/v1/models").json()["models"]] == ["tiny-a", "wide"]
    by_default = msgpack.unpackb(post(client, prompts=PROMPTS, images=images).content)
    wide = msgpack.unpackb(post(client, prompts=PROMPTS, images=images, model="wide").content)
    assert by_default["scores"] == pytest.approx(scorers["tiny-a"].score_batch(PROMPTS, images), abs=1e-5)
    assert wide["scores"] == pytest.approx(scorers["tiny-64"].score_batch(PROMPTS, images), abs=1e-5)
    assert "normalized" not in wide


def test_unknown_or_malformed_model_names_are_refused(client, images):
    unknown = post(client, prompts=["a"], images=images[:1], model="tiny-b")
    assert unknown.status_code == 404 and "loaded: tiny-a, wide" in unknown.json()["detail"]
    assert post(client, prompts=["a"], images=images[:1], model=3).status_code == 422


def test_prompt_normalisation_in_the_response(client, scorers, images):
    broken = [*images[:3], b"not an image", images[4]]
    response = msgpack.unpackb(post(client, prompts=PROMPTS, images=broken, model="wide",
                                    normalize="prompt-zscore").content)
    raw = scorers["tiny-64"].score_batch(PROMPTS[:3], images[:3])
    bicycle = [raw[0], raw[2]]  # the third "a red bicycle" image is broken: its group has two scores
    mean, std = sum(bicycle) / 2, abs(bicycle[0] - bicycle[1]) / 2
    expected = [(raw[0] - mean) / std, 0.0, (raw[2] - mean) / std, None, 0.0]  # "a cat", "a dog": one image each
    assert response["normalized"][3] is None and response["scores"][3] is None
    assert [value for value in response["normalized"] if value is not None] == pytest.approx(
        [value for value in expected if value is not None], abs=1e-5)
    pair = [base64.b64encode(image).decode() for image in images[:2]]
    json_response = client.post("/v1/score", json={"prompt": "one prompt", "images": pair, "normalize": "prompt"})
    scores = json_response.json()["scores"]
    assert json_response.json()["normalized"] == pytest.approx([math.copysign(1.0, scores[0] - scores[1]),
                                                                math.copysign(1.0, scores[1] - scores[0])])
    refused = post(client, prompts=PROMPTS, images=images, normalize="minmax")
    assert refused.status_code == 422 and "'normalize' must be one of" in refused.json()["detail"]


def test_a_scorer_the_server_cannot_batch_is_refused_clearly(monkeypatch):
    class ScoreBatchOnly:
        def score_batch(self, prompts, images, batch_size=32, progress=False, on_error=None):
            return [0.0] * len(images)

    monkeypatch.setitem(hub._SCORERS, "protocol-only", hub.ScorerInfo(lambda name, **_: ScoreBatchOnly()))
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: pytest.fail("must not start"))
    with pytest.raises(SystemExit, match="'protocol-only' .* cannot be served"):
        cli_main(["serve", "--model", "protocol-only", "--device", "cpu"])
