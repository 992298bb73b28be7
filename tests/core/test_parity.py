"""Parity with the original ImageReward implementation (PyPI image-reward 1.5).

``tests/golden/scores.json`` holds the original's token ids and fp32 CPU scores for a full-size
checkpoint in the published layout whose every tensor is drawn from a seed of its name
(``imreward/_seeded_weights.py``); ``scripts/make_golden.py`` produced it in a separate environment.
Here the same checkpoint is rebuilt and loaded through the same strict loader as ``ImageReward.pt``.
"""

import json
from pathlib import Path

import pytest

from imreward.config import ImageRewardConfig
from imreward.hub import POSITION_IDS_KEY, build_model
from imreward.testing import model_shapes, seeded_state_dict
from imreward.tokenizer import PromptTokenizer, packaged_vocab_file

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SHARED_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "reference-data" / "images"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def golden():
    return json.loads((GOLDEN / "scores.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def published_shapes():
    return {key: tuple(shape) for key, shape in json.loads((GOLDEN / "published_keys.json").read_text()).items()}


@pytest.fixture(scope="module")
def config():
    return ImageRewardConfig.from_med_config(GOLDEN / "med_config.json")


def test_parameter_layout_equals_the_published_checkpoint(published_shapes, config):
    ours = model_shapes(config)
    published = {k: v for k, v in published_shapes.items() if k != POSITION_IDS_KEY}
    assert ours == published
    assert config == ImageRewardConfig()  # the published med_config gives our default architecture


def test_tokens_equal_the_original_tokenizer(golden):
    tokenizer = PromptTokenizer.from_vocab(packaged_vocab_file())
    for prompt, expected in golden["tokens"].items():
        assert tokenizer([prompt], 35)["input_ids"][0].tolist() == expected, prompt


@pytest.fixture(scope="module")
def full_model(golden, published_shapes, config):
    state = seeded_state_dict(published_shapes, salt=golden["salt"])
    tokenizer = PromptTokenizer.from_vocab(packaged_vocab_file())
    return build_model(config, state, tokenizer, "seeded published-layout checkpoint").eval()


def _image_path(label: str) -> Path:
    if label.startswith("reference/"):
        return SHARED_IMAGES / label.split("/", 1)[1]
    return GOLDEN / "images" / label


@pytest.mark.slow
def test_fp32_scores_equal_the_original(full_model, golden):
    rows = [row for row in golden["scores"] if _image_path(row["image"]).is_file()]
    assert len(rows) >= 44  # the generated images are in the repo; the reference ones sit in ../shared
    scores = full_model.score_batch([r["prompt"] for r in rows], [_image_path(r["image"]) for r in rows],
                                    batch_size=16)
    differences = {f"{r['image']} / {r['prompt'][:20]!r}": abs(s - r["score"]) for r, s in zip(rows, scores)}
    worst = max(differences, key=differences.get)
    assert differences[worst] <= TOLERANCE, f"{worst}: |difference| {differences[worst]:.2e}"


@pytest.mark.slow
def test_inference_rank_equals_the_original(full_model, golden):
    expected = golden["reference_rank"]
    paths = [_image_path(label) for label in expected["images"]]
    if not all(path.is_file() for path in paths):
        pytest.skip("the reference images of ../shared/reference-data are not beside this checkout")
    ranking, rewards = full_model.inference_rank(expected["prompt"], paths)
    assert ranking == expected["ranking"]
    assert rewards == pytest.approx(expected["rewards"], abs=TOLERANCE)
