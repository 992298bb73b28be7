"""Parity of the CLIP-family scorers with their original implementations.

``tests/golden/<model>/scores.json`` holds each original's token ids and fp32 CPU scores, made by
``scripts/make_golden_clip.py`` in the original's own environment (image-reward 1.5 with OpenAI's
CLIP for CLIP / BLIP / Aesthetic, transformers 4.30.2 for PickScore's published usage, hpsv2 1.2.0
for HPSv2) on reduced-size models whose every tensor is drawn from a seed of its name, saved in the
published file layout. Here the same files are rebuilt and loaded through ``imreward.load_score``,
and every (prompt, image) pair must score within 1e-4 of the original.
"""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from models.clip_fixtures import build_scorer, seeded_checkpoint

import imreward
from imreward.hub import scorer_info

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SHARED_IMAGES = next((p / "shared" / "reference-data" / "images" for p in Path(__file__).resolve().parents[3:5]
                      if (p / "shared" / "reference-data" / "images").is_dir()), None)
TOLERANCE = 1e-4


def golden(name: str, root: Path = GOLDEN) -> dict:
    return json.loads((root / name / "scores.json").read_text(encoding="utf-8"))


def image_path(label: str) -> Path | None:
    if label.startswith("reference/"):
        return SHARED_IMAGES / label.split("/", 1)[1] if SHARED_IMAGES else None
    return GOLDEN / "images" / label


def assert_scores_match(scorer, expected: dict, tolerance: float = TOLERANCE) -> float:
    """Scores every golden row (one batched call per prompt) and returns the largest difference."""
    rows = [row for row in expected["scores"] if "score" in row and image_path(row["image"]) is not None]
    assert len(rows) >= 0.7 * sum("score" in row for row in expected["scores"])
    worst = 0.0
    for prompt in dict.fromkeys(row["prompt"] for row in rows):
        mine = [row for row in rows if row["prompt"] == prompt]
        ours = scorer.score_batch(prompt, [image_path(row["image"]) for row in mine], batch_size=8)
        for row, value in zip(mine, ours):
            assert value == pytest.approx(row["score"], abs=tolerance), (row["image"], prompt[:30])
            worst = max(worst, abs(value - row["score"]))
    return worst


def assert_rank_matches(scorer, expected: dict) -> None:
    if SHARED_IMAGES is None:
        return
    reference = expected["rank"]
    ranking, rewards = scorer.inference_rank(reference["prompt"], [image_path(i) for i in reference["images"]])
    assert ranking == reference["ranking"]
    assert rewards == pytest.approx(reference["rewards"], abs=TOLERANCE)


GOLDEN_NAMES = ("clip", "aesthetic", "blip", "pickscore", "hpsv2")


@pytest.fixture(scope="module")
def goldens() -> dict[str, dict]:
    return {name: golden(name) for name in GOLDEN_NAMES}


def assert_tokens_match(scorer, expected: dict) -> None:
    for prompt, tokens in expected["tokens"].items():
        assert scorer.encode_prompts([prompt])["input_ids"][0].tolist() == tokens, prompt


def test_clip_score_equals_image_reward_load_score_clip(goldens, tmp_path, single_cpu_thread):
    scorer = build_scorer("clip", goldens, tmp_path)
    assert_tokens_match(scorer, goldens["clip"])
    assert_scores_match(scorer, goldens["clip"])
    assert_rank_matches(scorer, goldens["clip"])


def test_aesthetic_equals_image_reward_load_score_aesthetic(goldens, tmp_path, single_cpu_thread):
    scorer = build_scorer("aesthetic", goldens, tmp_path)
    assert_scores_match(scorer, goldens["aesthetic"])
    assert_rank_matches(scorer, goldens["aesthetic"])


def test_blip_score_equals_image_reward_load_score_blip(goldens, tmp_path, single_cpu_thread):
    scorer = build_scorer("blip", goldens, tmp_path)
    assert_tokens_match(scorer, goldens["blip"])
    assert_scores_match(scorer, goldens["blip"])
    assert_rank_matches(scorer, goldens["blip"])


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for this module's shared fixtures (tiny models; a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pickscore(goldens, tmp_path_factory, one_thread):
    return build_scorer("pickscore", goldens, tmp_path_factory.mktemp("pickscore"))


def test_pickscore_equals_its_published_usage(pickscore, goldens):
    assert_tokens_match(pickscore, goldens["pickscore"])
    assert_scores_match(pickscore, goldens["pickscore"])


@pytest.fixture(scope="module")
def hps(goldens, tmp_path_factory, one_thread):
    return build_scorer("hpsv2", goldens, tmp_path_factory.mktemp("hps"))


def test_hpsv2_equals_the_hpsv2_package(hps, goldens):
    expected = goldens["hpsv2"]
    assert_tokens_match(hps, expected)
    assert_scores_match(hps, expected)
    failed = {row["image"] for row in expected["scores"] if "error" in row}
    assert failed == {"rgba_500x300.png"}  # the original passes RGBA as 4 channels and fails
    assert math.isfinite(hps.score(next(iter(expected["tokens"])), GOLDEN / "images" / "rgba_500x300.png"))


def test_hpsv2_preprocessing_is_its_own_everywhere_and_obeys_the_format_allow_list(hps):
    """score-dataset, training and the server use ``pil_preprocess`` and ``preprocess``, not only ``score``."""
    from PIL import Image

    from imreward.errors import ImageLoadError
    from imreward.image_io import WEB_FORMATS

    image = Image.open(GOLDEN / "images" / "rgb_480x640.jpg")
    padded = hps.pil_preprocess(image)
    assert padded.shape == (3, hps.image_size, hps.image_size)
    assert torch.equal(padded, hps.preprocess(GOLDEN / "images" / "rgb_480x640.jpg"))
    black = -torch.tensor(hps.image_mean) / torch.tensor(hps.image_std)  # the short side is padded, not cropped
    for row, column in ((0, 0), (-1, -1)):
        torch.testing.assert_close(padded[:, row, column], black)
    hps.image_formats = WEB_FORMATS
    try:
        with pytest.raises(ImageLoadError, match="GIF"):
            hps.preprocess(GOLDEN / "images" / "p_320x256.gif")
    finally:
        del hps.image_formats


@pytest.mark.parametrize("fixture", ["hps", "pickscore"])
def test_score_tensor_is_differentiable_and_close_to_the_file_path(fixture, request):
    scorer = request.getfixturevalue(fixture)
    from PIL import Image
    import numpy as np

    image = Image.open(GOLDEN / "images" / "rgb_480x640.jpg").convert("RGB")
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].requires_grad_()
    scores = scorer.score_tensor(pixels, "a cat")
    scores.sum().backward()
    assert scores.shape == (1,) and pixels.grad is not None and pixels.grad.abs().sum() > 0
    spread = 1.0 if fixture == "pickscore" else 0.01  # PickScore scores are 100x cosines
    assert float(scores.detach()) == pytest.approx(scorer.score("a cat", image), abs=spread)


@pytest.mark.parametrize("name, dtype, tolerance", [("hpsv2", torch.bfloat16, 0.02), ("hpsv2", torch.float16, 0.005),
                                                     ("clip", torch.bfloat16, 0.02), ("pickscore", torch.bfloat16, 2.0)])
def test_low_precision_stays_close_to_float32(goldens, tmp_path, name, dtype, tolerance, single_cpu_thread):
    low = build_scorer(name, goldens, tmp_path, dtype=dtype)
    assert low.compute_dtype == dtype
    prompt = next(iter(goldens[name]["tokens"]))
    images = ("rgb_480x640.jpg", "l_300x1000.png", "p_320x256.gif")
    reference = {row["image"]: row["score"] for row in goldens[name]["scores"]
                 if row["prompt"] == prompt and "score" in row}
    ours = low.score_batch(prompt, [GOLDEN / "images" / name for name in images])
    assert ours == pytest.approx([reference[name] for name in images], abs=tolerance)


def test_scorers_are_registered_with_source_and_licence():
    for name in ("PickScore-v1", "HPSv2", "HPSv2.1", "CLIP-ViT-H-14", "CLIP", "BLIP", "Aesthetic"):
        info = scorer_info(name)
        assert info.source and info.licence and info.size and info.trained_on, name


def test_laion_clip_h_equals_open_clip_itself(goldens, tmp_path, single_cpu_thread):
    """Reference: open_clip's own model factory, evaluation transform and tokenizer on the same file."""
    import open_clip
    from open_clip.factory import _MODEL_CONFIGS
    from PIL import Image

    architecture = goldens["hpsv2"]["architecture"]
    state = seeded_checkpoint(goldens["hpsv2"]["shapes"], salt=7)
    torch.save(state, tmp_path / "open_clip_pytorch_model.bin")
    _MODEL_CONFIGS["imreward-tiny-test"] = architecture
    try:
        reference, _, transform = open_clip.create_model_and_transforms(
            "imreward-tiny-test", pretrained=str(tmp_path / "open_clip_pytorch_model.bin"))
        tokenizer = open_clip.get_tokenizer("imreward-tiny-test")
    finally:
        del _MODEL_CONFIGS["imreward-tiny-test"]
    scorer = imreward.load_score("CLIP-ViT-H-14", device="cpu", checkpoint=tmp_path / "open_clip_pytorch_model.bin",
                                 architecture=architecture)
    prompts = list(goldens["hpsv2"]["tokens"])
    images = sorted((GOLDEN / "images").iterdir())
    with torch.no_grad():
        text = F.normalize(reference.eval().encode_text(tokenizer(prompts)), dim=-1)
        pixels = torch.stack([transform(Image.open(path)) for path in images])
        expected = F.normalize(reference.encode_image(pixels), dim=-1) @ text.T  # [images, prompts]
    for column, prompt in enumerate(prompts):
        assert scorer.score_batch(prompt, images) == pytest.approx(expected[:, column].tolist(), abs=TOLERANCE)


def test_bad_checkpoints_are_refused_with_the_file_named(goldens, tmp_path):
    from safetensors.torch import load_file, save_file

    from imreward.errors import CheckpointError

    torch.save({"state_dict": {"weight": torch.zeros(2)}}, tmp_path / "not_hps.pt")
    with pytest.raises(CheckpointError, match="not_hps.pt"):
        imreward.load_score("HPSv2", device="cpu", checkpoint=tmp_path / "not_hps.pt",
                            architecture=goldens["hpsv2"]["architecture"])
    build_scorer("pickscore", goldens, tmp_path / "pick")  # writes a valid folder, then one tensor is removed
    weights = tmp_path / "pick" / "model" / "model.safetensors"
    state = load_file(str(weights))
    del state["visual_projection.weight"]
    save_file(state, str(weights), {"format": "pt"})
    with pytest.raises(CheckpointError, match="visual_projection.weight"):
        imreward.load_score("PickScore-v1", device="cpu", checkpoint=tmp_path / "pick" / "model",
                            processor=tmp_path / "pick" / "processor")


@pytest.mark.parametrize("name, tolerance", [("clip", 0.05), ("pickscore", 5.0)])
def test_int8_stays_close_to_float32_on_open_clip_and_transformers_clip(goldens, tmp_path, name, tolerance,
                                                                      single_cpu_thread):
    """int8 (imreward.precision) converts the backbone's linear layers of both CLIP implementations;
    open_clip's text tower still finds its input dtype."""
    from imreward.precision import quantize_int8

    scorer = quantize_int8(build_scorer(name, goldens, tmp_path))
    assert type(scorer.clip.visual.transformer.resblocks[0].mlp.c_fc if name == "clip"
                else scorer.clip.vision_model.encoder.layers[0].mlp.fc1) is not torch.nn.Linear
    worst = assert_scores_match(scorer, goldens[name], tolerance)
    assert worst > 0  # it did quantize
