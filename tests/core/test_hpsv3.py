"""HPSv3 against the original (PyPI hpsv3 1.0.0, transformers 4.45.2).

``tests/golden/hpsv3/`` holds a reduced Qwen2-VL base (config, tokenizer, preprocessor files as the
hub publishes them), the original model's state-dict layout and its fp32 CPU outputs for every
(prompt, image) pair; ``scripts/make_golden_hpsv3.py`` produced them in the oracle environment.
The checkpoint is rebuilt here from the same name-seeded tensors and loaded through ``load_score``.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import imreward
from fake_hub import FakeHub
from imreward.errors import CheckpointError
from imreward.models.hpsv3 import BASE_FILES, BASE_MODEL, HPSV3_FILE, HPSV3_REPO, from_published_layout
from tiny_hpsv3 import BASE, GOLDEN, golden_values, load_tiny_hpsv3, published_layout_shapes, write_checkpoint

IMAGES = sorted((GOLDEN / "images").iterdir())
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def golden():
    return golden_values()


@pytest.fixture(scope="module")
def published_shapes():
    return published_layout_shapes()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("hpsv3") / "HPSv3.safetensors")


@pytest.fixture(scope="module")
def scorer(checkpoint):
    torch.set_num_threads(1)
    return load_tiny_hpsv3(checkpoint)


def test_published_layout_maps_onto_transformers_modules(scorer, published_shapes):
    converted = from_published_layout({k: torch.empty(shape, device="meta") for k, shape in published_shapes.items()})
    ours = {k: tuple(v.shape) for k, v in scorer.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == ours
    assert set(published_shapes) - {"lm_head.weight"} == {k for k in published_shapes if k.split(".")[0] in
                                                          ("model", "visual", "rm_head")}


def test_tokens_and_patches_equal_the_original(scorer, golden):
    assert scorer.reward_token_id == golden["reward_token_id"]
    for prompt, tokens in golden["tokens"].items():
        text = scorer.encode_prompts([prompt])
        _, grid = scorer.preprocess(IMAGES[0])
        input_ids, _, _ = scorer._sequences(grid[None], text["suffix_ids"], text["suffix_lengths"])
        assert input_ids[0].tolist() == tokens, prompt
    for image in IMAGES:
        patches, grid = scorer.preprocess(image)
        reference = golden["pixels"][image.name]
        assert grid.tolist() == reference["grid_thw"], image.name
        assert float(patches.double().sum()) == pytest.approx(reference["sum"], abs=1e-6), image.name
        assert float((patches.double() ** 2).sum()) == pytest.approx(reference["sum_sq"], abs=1e-6), image.name
        assert patches[-1, -8:].tolist() == pytest.approx(reference["last"], abs=1e-7), image.name


def test_scores_equal_the_original_on_every_image_mode_and_prompt(scorer, golden):
    first, *others = golden["scores"]
    pairs = [(first, image) for image in IMAGES] + [(p, image) for p in others for image in IMAGES[-2:]]
    scores = scorer.score_batch([p for p, _ in pairs], [i for _, i in pairs], batch_size=7)
    expected = [golden["scores"][p][i.name][0] for p, i in pairs]
    assert np.abs(np.array(scores) - np.array(expected)).max() < TOLERANCE


def test_uncertainty_is_exp_of_the_second_output(scorer, golden):
    prompt = next(iter(golden["scores"]))
    results = scorer.score_with_uncertainty(prompt, IMAGES[:3], batch_size=2)
    for (mu, sigma), image in zip(results, IMAGES[:3]):
        ref_mu, ref_log_sigma = golden["scores"][prompt][image.name]
        assert mu == pytest.approx(ref_mu, abs=TOLERANCE)
        assert sigma == pytest.approx(float(np.exp(ref_log_sigma)), abs=TOLERANCE)
    ranks, rewards = scorer.inference_rank(prompt, IMAGES[:3])
    assert sorted(ranks) == [1, 2, 3] and rewards[ranks.index(1)] == max(rewards)


def test_score_tensor_matches_the_pil_path_and_has_gradients(scorer):
    rng = np.random.RandomState(0)
    array = rng.randint(0, 256, (448, 448, 3), dtype=np.uint8)  # already at HPSv3's size: no resize
    pixels = torch.from_numpy(array).permute(2, 0, 1)[None].float().div(255).requires_grad_(True)
    tensor_score = scorer.score_tensor(pixels, "a fox")
    assert tensor_score.item() == pytest.approx(scorer.score("a fox", Image.fromarray(array)), abs=1e-5)
    tensor_score.sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    resized = scorer.score_tensor(torch.rand(2, 3, 100, 150), ["a", "b"])
    assert resized.shape == (2,) and torch.isfinite(resized).all()


def test_bfloat16_keeps_the_head_in_float32(checkpoint, scorer):
    half = imreward.load_score("HPSv3", device="cpu", dtype=torch.bfloat16, checkpoint=checkpoint, base_model=BASE)
    assert half.language_model.embed_tokens.weight.dtype == torch.bfloat16
    assert half.rm_head[0].weight.dtype == torch.float32
    reference = scorer.score("a fox", IMAGES[:2])
    assert half.score("a fox", IMAGES[:2]) == pytest.approx(reference, abs=0.1)


def test_per_item_preprocessing_and_text_collate_like_the_server(scorer, golden):
    prompts = list(golden["scores"])[:2]
    items = [scorer.pil_preprocess(Image.open(image)) for image in IMAGES[:2]]
    texts = [{k: v[0] for k, v in scorer.encode_prompts([p]).items()} for p in prompts]
    scores = scorer.score_preprocessed(scorer.collate_images(items), scorer.collate_text(texts))
    expected = [golden["scores"][p][i.name][0] for p, i in zip(prompts, IMAGES[:2])]
    assert scores.tolist() == pytest.approx(expected, abs=TOLERANCE)


def test_bad_inputs_raise_clear_errors(tmp_path, checkpoint):
    bad = tmp_path / "bad.safetensors"
    save_file({"transformer.wte.weight": torch.zeros(2, 2)}, str(bad))
    with pytest.raises(CheckpointError, match="not an HPSv3 checkpoint"):
        imreward.load_score("HPSv3", device="cpu", checkpoint=bad, base_model=BASE)
    with pytest.raises(FileNotFoundError, match="config.json"):
        imreward.load_score("HPSv3", device="cpu", checkpoint=checkpoint, base_model=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        imreward.load_score("HPSv3", device="cpu", checkpoint=tmp_path / "missing.safetensors", base_model=BASE)


def test_loads_the_published_files_from_the_hub(checkpoint, golden, tmp_path, monkeypatch):
    files = {(BASE_MODEL, name): BASE / name for name in BASE_FILES} | {(HPSV3_REPO, HPSV3_FILE): checkpoint}
    with FakeHub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        model = imreward.load_score("HPSv3", device="cpu", download_root=tmp_path / "cache")
    prompt = next(iter(golden["scores"]))
    assert model.score(prompt, IMAGES[0]) == pytest.approx(golden["scores"][prompt][IMAGES[0].name][0], abs=TOLERANCE)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 5e-3), (torch.bfloat16, 0.1)])
def test_cuda_scores_and_gradients(checkpoint, golden, dtype, tolerance):
    model = imreward.load_score("HPSv3", device="cuda", dtype=dtype, checkpoint=checkpoint, base_model=BASE)
    prompt = next(iter(golden["scores"]))
    expected = [golden["scores"][prompt][image.name][0] for image in IMAGES]
    assert model.score_batch(prompt, IMAGES, batch_size=4) == pytest.approx(expected, abs=tolerance)
    pixels = torch.rand(2, 3, 300, 200, device="cuda", requires_grad=True)
    model.score_tensor(pixels, prompt).sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
