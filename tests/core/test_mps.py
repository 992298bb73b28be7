"""MPS (overall) against its original code (MPS's trainer modules + eval script, transformers 4.45.2).

``tests/golden/mps/`` holds a reduced CLIP config, the original's state-dict layout and its fp32 CPU
token ids, pixel statistics and scores; ``scripts/make_golden_mps.py`` produced them. Here the same
name-seeded checkpoint is rebuilt, pickled as a whole model the way MPS publishes it (classes from
modules that do not exist here) and loaded through ``load_score``.
"""

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from transformers import AutoTokenizer

import imreward
from fake_hub import FakeHub
from imreward._clip_vocab import write_clip_tokenizer
from imreward.errors import CheckpointError
from imreward.models.mps import BASE_FILES, BASE_MODEL, build_mps, from_published_layout, main
from imreward.testing import seeded_state_dict

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
IMAGES = sorted((GOLDEN / "images").iterdir())
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def golden():
    return json.loads((GOLDEN / "mps" / "scores.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def published_state(golden):
    shapes = json.loads((GOLDEN / "mps" / "published_keys.json").read_text())
    return seeded_state_dict(shapes, salt=golden["salt"])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mps-base")
    for name in (GOLDEN / "mps" / "base").iterdir():
        shutil.copy(name, folder / name.name)
    return write_clip_tokenizer(Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz", folder)


def _pickle_like_the_release(model, path: Path) -> None:
    """torch.save of a whole model whose classes live in MPS's modules (absent here), in its layout."""
    names = {"trainer": None, "trainer.models": None, "trainer.models.clip_model": "CLIPModel",
             "trainer.models.cross_modeling": "Residual"}
    fakes = {}
    for module_name, class_name in names.items():
        fakes[module_name] = types.ModuleType(module_name)
        if class_name:
            setattr(fakes[module_name], class_name, type(class_name, (nn.Module,), {"__module__": module_name}))
    root = fakes["trainer.models.clip_model"].CLIPModel()
    residual = fakes["trainer.models.cross_modeling"].Residual
    root.model = model.model
    root.cross_model = nn.Module()
    root.cross_model.layers = nn.ModuleList()
    for layer in model.cross_model.layers:
        pair = [residual(), residual()]
        pair[0].fn, pair[1].fn = layer.cross_attention, layer.self_attention
        root.cross_model.layers.append(nn.ModuleList(pair))
    sys.modules.update(fakes)
    try:
        torch.save(root, path)
    finally:
        for module_name in fakes:
            del sys.modules[module_name]


@pytest.fixture(scope="module")
def published_checkpoint(tmp_path_factory, base, published_state):
    path = tmp_path_factory.mktemp("mps") / "MPS_overall_checkpoint.pth"
    _pickle_like_the_release(build_mps(base, from_published_layout(published_state)), path)
    return path


@pytest.fixture(scope="module")
def scorer(published_checkpoint, base):
    torch.set_num_threads(1)
    return imreward.load_score("MPS", device="cpu", checkpoint=published_checkpoint, base_model=base)


def test_published_layout_maps_onto_the_model(scorer, published_state):
    converted = from_published_layout(published_state)
    assert {k: tuple(v.shape) for k, v in converted.items()} == \
        {k: tuple(v.shape) for k, v in scorer.state_dict().items()}
    assert scorer.cross_model.layers[1].self_attention.heads == 4


def test_tokens_and_pixels_equal_the_original(scorer, golden):
    for prompt, tokens in golden["tokens"].items():
        assert scorer.encode_prompts([prompt])["input_ids"][0].tolist() == tokens, prompt
    for image in IMAGES:
        pixels = scorer.preprocess(image).double()
        reference = golden["pixels"][image.name]
        assert float(pixels.sum()) == pytest.approx(reference["sum"], abs=1e-6), image.name
        assert float((pixels ** 2).sum()) == pytest.approx(reference["sum_sq"], abs=1e-6), image.name
        assert pixels[:, :2, :2].flatten().tolist() == pytest.approx(reference["corner"], abs=1e-7), image.name


def test_scores_equal_the_original_on_every_image_mode_and_prompt(scorer, golden):
    pairs = [(prompt, image) for prompt in golden["scores"] for image in IMAGES]
    scores = scorer.score_batch([p for p, _ in pairs], [i for _, i in pairs], batch_size=6)
    expected = [golden["scores"][p][i.name] for p, i in pairs]
    assert np.abs(np.array(scores) - np.array(expected)).max() < TOLERANCE


def test_converted_safetensors_scores_the_same(tmp_path, published_checkpoint, base, golden, capsys):
    converted = tmp_path / "mps.safetensors"
    assert main([str(published_checkpoint), str(converted)]) == 0
    assert main([str(tmp_path / "missing.pth"), str(tmp_path / "out.safetensors")]) == 1
    assert "missing.pth" in capsys.readouterr().err
    again = imreward.load_score("MPS", device="cpu", checkpoint=converted, base_model=base)
    prompt = next(iter(golden["scores"]))
    assert again.score(prompt, IMAGES[:2]) == pytest.approx([golden["scores"][prompt][i.name] for i in IMAGES[:2]],
                                                           abs=TOLERANCE)
    ranks, rewards = again.inference_rank(prompt, IMAGES[:3])
    assert sorted(ranks) == [1, 2, 3] and rewards[ranks.index(1)] == max(rewards)


def test_score_tensor_matches_the_pil_path_and_has_gradients(scorer):
    array = np.random.RandomState(0).randint(0, 256, (224, 224, 3), dtype=np.uint8)  # no resize, no crop
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None].float().div(255).requires_grad_(True)
    score = scorer.score_tensor(pixels, "a fox")
    assert score.item() == pytest.approx(scorer.score("a fox", Image.fromarray(array)), abs=1e-5)
    score.sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0


def test_bfloat16(published_checkpoint, base, scorer):
    half = imreward.load_score("MPS", device="cpu", dtype="bfloat16", checkpoint=published_checkpoint, base_model=base)
    assert half.model.logit_scale.dtype == torch.bfloat16
    assert half.score("a fox", IMAGES[:2]) == pytest.approx(scorer.score("a fox", IMAGES[:2]), abs=0.05)


def test_bad_inputs_raise_clear_errors(tmp_path, base):
    with pytest.raises(FileNotFoundError, match="drive.google.com"):
        imreward.load_score("MPS", device="cpu", base_model=base)
    bad = tmp_path / "bad.safetensors"
    save_file({"visual.proj": torch.zeros(2)}, str(bad))
    with pytest.raises(CheckpointError, match="not an MPS checkpoint"):
        imreward.load_score("MPS", device="cpu", checkpoint=bad, base_model=base)
    with pytest.raises(FileNotFoundError, match="config.json"):
        imreward.load_score("MPS", device="cpu", checkpoint=bad, base_model=tmp_path)


def test_base_model_files_come_from_the_hub(published_checkpoint, base, golden, tmp_path, monkeypatch):
    published = tmp_path / "laion"
    AutoTokenizer.from_pretrained(base).save_pretrained(published)  # the repo ships tokenizer.json
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(base / name, published / name)
    with FakeHub({(BASE_MODEL, name): published / name for name in BASE_FILES}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        model = imreward.load_score("MPS", device="cpu", checkpoint=published_checkpoint,
                                    download_root=tmp_path / "cache")
    prompt = next(iter(golden["scores"]))
    assert model.score(prompt, IMAGES[0]) == pytest.approx(golden["scores"][prompt][IMAGES[0].name], abs=TOLERANCE)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 5e-3), (torch.bfloat16, 0.05)])
def test_cuda_scores_and_gradients(published_checkpoint, base, golden, dtype, tolerance):
    model = imreward.load_score("MPS", device="cuda", dtype=dtype, checkpoint=published_checkpoint, base_model=base)
    prompt = next(iter(golden["scores"]))
    expected = [golden["scores"][prompt][image.name] for image in IMAGES]
    assert model.score_batch(prompt, IMAGES, batch_size=4) == pytest.approx(expected, abs=tolerance)
    pixels = torch.rand(2, 3, 300, 200, device="cuda", requires_grad=True)
    model.score_tensor(pixels, prompt).sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
