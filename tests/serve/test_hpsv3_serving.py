"""HPSv3 (images of varying size, prompts of varying length) through the server's dynamic batcher and
``score-dataset``: batches go through its ``collate_images``/``collate_text`` hooks, not ``torch.stack``."""

from __future__ import annotations

import json

import msgpack
import pytest
import torch
import uvicorn
from starlette.testclient import TestClient

from imreward import hub
from imreward.cli import main as cli_main
from imreward.scoring import batch_images, batch_text
from imreward.batch.decode import preprocessing_slots, stacked_slots
from imreward.testing import tiny_model
from serve.serve_helpers import encoded_image
from tiny_hpsv3 import load_tiny_hpsv3, write_checkpoint

PROMPTS = ["a fox", "a lighthouse on a cliff at dusk, oil painting, très détaillé", "", "a fox"]
SIZES = [(64, 40), (40, 72), (56, 56), (64, 40)]  # different aspect ratios: different patch grids


@pytest.fixture(scope="module")
def hpsv3(tmp_path_factory):
    torch.set_num_threads(1)
    return load_tiny_hpsv3(write_checkpoint(tmp_path_factory.mktemp("hpsv3") / "HPSv3.safetensors"))


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return [encoded_image(seed, size) for seed, size in enumerate(SIZES)]


@pytest.fixture(scope="module")
def alone(hpsv3, images) -> list[float]:
    """Each pair scored alone, one image per forward."""
    return [hpsv3.score(prompt, image) for prompt, image in zip(PROMPTS, images)]


@pytest.fixture
def registered(hpsv3, monkeypatch):
    """``hpsv3`` and ``hpsv3-again`` (the same model), and a tiny ImageReward ``tiny-a``."""
    scorers = {"hpsv3": hpsv3, "hpsv3-again": hpsv3, "tiny-a": tiny_model(seed=0)}
    for name, scorer in scorers.items():
        monkeypatch.setitem(hub._SCORERS, name, hub.ScorerInfo(lambda name, scorer=scorer, **_: scorer))
    return scorers


def test_served_batches_of_different_sizes_equal_each_pair_alone(registered, hpsv3, images, alone, monkeypatch):
    grids = []
    score_preprocessed = hpsv3.score_preprocessed

    def recording(pixel_values, text):
        grids.append(pixel_values[1].tolist())
        return score_preprocessed(pixel_values, text)

    monkeypatch.setattr(hpsv3, "score_preprocessed", recording)
    captured = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: captured.update(app=app))
    assert cli_main(["serve", "--model", "tiny-a", "--model", "hpsv3", "--device", "cpu", "--max-wait-ms", "50"]) == 0
    with TestClient(captured["app"]) as client:
        response = client.post("/v1/score", content=msgpack.packb({"prompts": PROMPTS, "images": images,
                                                                   "model": "hpsv3"}),
                               headers={"content-type": "application/msgpack", "accept": "application/msgpack"})
        assert response.status_code == 200, response.content
        assert msgpack.unpackb(response.content)["scores"] == pytest.approx(alone, abs=1e-5)
        tiny = client.post("/v1/score", json={"prompt": "a fox", "images": [], "model": "tiny-a"})
        assert tiny.status_code == 422  # the other model is still served (and validates its requests)
    assert any(len({tuple(grid) for grid in batch}) > 1 for batch in grids), grids  # sizes shared a forward


def test_score_dataset_columns_equal_each_pair_alone(registered, hpsv3, images, alone, tmp_path):
    lines = []
    for index, (prompt, data) in enumerate([*zip(PROMPTS, images), ("a broken file", b"broken")]):
        (tmp_path / f"{index}.png").write_bytes(data)
        lines.append(json.dumps({"prompt": prompt, "image": f"{index}.png"}))
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    output = tmp_path / "scores.jsonl"
    assert cli_main(["score-dataset", str(tmp_path / "manifest.jsonl"), "--output", str(output), "--device", "cpu",
                     "-q", "--num-workers", "0", "--batch-size", "4", "--model", "hpsv3", "--model", "hpsv3-again",
                     "--model", "tiny-a"]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["score_hpsv3"] for row in rows[:4]] == pytest.approx(alone, abs=1e-5)
    assert [row["score_hpsv3-again"] for row in rows[:4]] == pytest.approx(alone, abs=1e-5)
    tiny = registered["tiny-a"].score_batch(PROMPTS, images)
    assert [row["score_tiny-a"] for row in rows[:4]] == pytest.approx(tiny, abs=1e-5)
    assert rows[4]["score_hpsv3"] is None and "4.png" in rows[4]["error"]


def test_hpsv3_models_share_one_preprocessing_batched_by_their_hook(registered):
    slots, slot_of = preprocessing_slots(registered)
    assert len(slots) == 2 and slot_of["hpsv3"] == slot_of["hpsv3-again"] != slot_of["tiny-a"]
    assert stacked_slots(registered, slot_of) == {slot_of["tiny-a"]}


def test_the_scorers_format_allow_list_applies_to_hpsv3(hpsv3, monkeypatch):
    monkeypatch.setattr(hpsv3, "image_formats", frozenset({"JPEG"}))
    with pytest.raises(ValueError, match="PNG is not accepted"):
        hpsv3.preprocess(encoded_image(0, (40, 40), "PNG"))
    patches, grid = hpsv3.preprocess(encoded_image(0, (40, 40), "JPEG"))
    assert patches.shape[0] == int(grid.prod())


def test_a_scorer_without_hooks_is_batched_by_stacking():
    class WithoutHooks:
        pass

    images = [torch.rand(3, 4, 4), torch.rand(3, 4, 4)]
    assert torch.equal(batch_images(WithoutHooks(), images), torch.stack(images))
    texts = [{"ids": torch.tensor([1, 2])}, {"ids": torch.tensor([3, 4])}]
    assert batch_text(WithoutHooks(), texts)["ids"].tolist() == [[1, 2], [3, 4]]
