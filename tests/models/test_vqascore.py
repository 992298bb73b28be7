"""VQAScore against t2v_metrics' own Qwen2.5-VL model code (``Qwen2VLModel.forward``, transformers 4.52.4,
qwen-vl-utils 0.0.14), on a reduced Qwen2.5-VL in the published layout with name-seeded weights:
``scripts/make_golden_vqascore.py`` produced ``tests/golden/vqascore/`` in that environment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import imreward
from tiny_qwen_vl import GOLDEN, golden_values, write_model_folder

IMAGES = GOLDEN / "images"


@pytest.fixture(scope="module")
def golden():
    return golden_values("vqascore")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.set_num_threads(1)
    return imreward.load_score("VQAScore-Qwen2.5-VL-7B", device="cpu",
                               checkpoint=write_model_folder("vqascore", tmp_path_factory.mktemp("vqascore")))


def test_p_yes_equals_t2v_metrics_on_every_image_mode_and_prompt(model, golden):
    pairs = [(prompt, name) for prompt, per_image in golden["scores"].items() for name in per_image]
    scores = model.score_batch([p for p, _ in pairs], [IMAGES / n for _, n in pairs], batch_size=5)
    expected = [golden["scores"][p][n] for p, n in pairs]
    assert np.abs(np.array(scores) - np.array(expected)).max() < 1e-4
    assert max(abs(math.log(s) - math.log(e)) for s, e in zip(scores, expected)) < 1e-4  # relative, for small P
    assert np.ptp(np.log(expected)) > 5  # the reduced model's P(Yes) varies with the input (over decades)


def test_score_tensor_matches_the_pil_path_and_has_gradients(model):
    array = np.random.RandomState(0).randint(0, 256, (84, 56, 3), dtype=np.uint8)  # already at Qwen's size
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None].float().div(255).requires_grad_(True)
    value = model.score_tensor(pixels, "a fox")
    assert value.item() == pytest.approx(model.score("a fox", Image.fromarray(array)), rel=1e-4, abs=1e-7)
    value.sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    resized = model.score_tensor(torch.rand(2, 3, 40, 70), ["a", "b"])
    assert resized.shape == (2,) and ((resized > 0) & (resized < 1)).all()


def test_an_answer_of_several_tokens_is_refused(tmp_path):
    folder = write_model_folder("vqascore", tmp_path / "model")
    with pytest.raises(ValueError, match=r"is \d+ tokens"):
        imreward.load_score("VQAScore-Qwen2.5-VL-7B", device="cpu", checkpoint=folder, answer="Absolutely yes")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype, log_tolerance", [(torch.float32, 1e-3), (torch.bfloat16, 0.5)])
def test_cuda_p_yes_and_gradients(tmp_path, golden, dtype, log_tolerance):
    model = imreward.load_score("VQAScore-Qwen2.5-VL-7B", device="cuda", dtype=dtype,
                                checkpoint=write_model_folder("vqascore", tmp_path / "model"))
    prompt, per_image = next(iter(golden["scores"].items()))
    scores = model.score_batch(prompt, [IMAGES / name for name in per_image])
    assert max(abs(math.log(s) - math.log(e)) for s, e in zip(scores, per_image.values())) < log_tolerance
    pixels = torch.rand(2, 3, 60, 90, device="cuda", requires_grad=True)
    model.score_tensor(pixels, prompt).sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
