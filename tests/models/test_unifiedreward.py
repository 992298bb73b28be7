"""UnifiedReward against its own inference path (UnifiedReward's Qwen scripts, transformers 4.52.4,
qwen-vl-utils 0.0.8), on a reduced Qwen2.5-VL in the published layout with name-seeded weights:
``scripts/make_golden_unifiedreward.py`` produced ``tests/golden/unifiedreward/`` in that environment.
Generated text must be identical token for token (greedy), and so must the parsed score."""

from __future__ import annotations

import base64

import pytest
import torch

import imreward
from imreward.errors import JudgeAnswerError
from imreward.judges.templates import fill_template
from imreward.models.qwen_vl_chat import from_published_layout
from tiny_qwen_vl import GOLDEN, golden_values, published_layout_shapes, write_model_folder

IMAGES = GOLDEN / "images"
# Image modes and sizes covered: 1-bit, CMYK JPEG, 16-bit grey, palette GIF, tall grey, tiny WebP.
POINTWISE = [("a red fox in the snow", name) for name in
             ("1bit_300x300.png", "cmyk_260x240.jpg", "p_320x256.gif", "rgb_53x97.webp", "rgb_222x333.tiff")] + \
            [("Un café crème naïve — 一只可爱的猫 🐱", "cmyk_260x240.jpg"), ("", "i16_240x180.png")]


@pytest.fixture(scope="module")
def golden():
    return golden_values("unifiedreward")


@pytest.fixture(scope="module")
def model(tmp_path_factory, golden):
    torch.set_num_threads(1)
    folder = write_model_folder("unifiedreward", tmp_path_factory.mktemp("unifiedreward"))
    return imreward.load_score("UnifiedReward-qwen-7b", device="cpu", checkpoint=folder,
                               max_new_tokens=golden["max_new_tokens"])


def test_the_published_layout_maps_onto_transformers_modules(model):
    shapes = published_layout_shapes("unifiedreward")
    converted = from_published_layout({k: torch.empty(v, device="meta") for k, v in shapes.items()})
    assert {k: tuple(v.shape) for k, v in converted.items()} == \
           {k: tuple(v.shape) for k, v in model.chat.model.state_dict().items()}
    assert any(k.startswith("visual.") for k in shapes) and any(k.startswith("model.layers.") for k in shapes)
    assert from_published_layout(converted) == converted  # the newer layout loads as it is


def test_inputs_answers_and_scores_equal_the_original(model, golden):
    texts = {}
    for prompt, name in POINTWISE:
        reference = golden["pointwise"][prompt][name]
        patches, grid = model.chat.image_patches(imreward.load_image(IMAGES / name))
        assert model.chat.input_ids(fill_template("unifiedreward", prompt), [grid]) == reference["input_ids"]
        assert [grid.tolist()] == reference["grid_thw"]
        assert float(patches.double().sum()) == pytest.approx(reference["pixel_sum"], abs=1e-6)
        judgement = model.judge(prompt, IMAGES / name)
        texts[name] = judgement.text
        assert judgement.text == reference["text"], (prompt, name)
        assert judgement.score == reference["parsed"]  # the original's parse found digits in every answer
    batch = POINTWISE[-3:]
    assert model.score_batch([p for p, _ in batch], [IMAGES / n for _, n in batch]) == \
           [golden["pointwise"][p][n]["parsed"] for p, n in batch]


def test_pairwise_answers_equal_the_original_and_an_answer_without_verdict_fails(model, golden):
    key, reference = next(iter(golden["pairwise"].items()))
    first, second = key.split("|")
    with pytest.raises(JudgeAnswerError) as raised:
        model.compare("a red fox in the snow", IMAGES / first, IMAGES / second)
    assert raised.value.raw == reference["text"]  # the reduced model names no image: the raw answer is in the error


def test_an_answer_without_a_score_fails_its_item(model, monkeypatch):
    answers = iter(["Final Score: 4", "I would rather not say.", "Final Score: 2.5"])
    monkeypatch.setattr(model.chat, "answer", lambda *args: next(answers))
    errors = {}
    scores = model.score_batch("a fox", [IMAGES / "rgb_53x97.webp"] * 3,
                               on_error=lambda index, error: errors.update({index: error}))
    assert scores == [4.0, None, 2.0]  # 2.5 reads 2, as UnifiedReward's parse reads it
    assert isinstance(errors[1], JudgeAnswerError) and errors[1].raw == "I would rather not say."


def test_alignment_coherence_style_answers(model, monkeypatch):
    monkeypatch.setattr(model.chat, "answer", lambda *args: "Alignment Score (1-5): 2.5\nCoherence Score (1-5): 4\n"
                                                           "Style Score (1-5): 3.5")
    monkeypatch.setattr(model, "score_key", "mean")
    judgement = model.judge("a fox", IMAGES / "rgb_53x97.webp")
    assert judgement.score == pytest.approx(10 / 3) and judgement.details["coherence"] == 4.0
    monkeypatch.setattr(model.chat, "answer", lambda *args: "Alignment Score (1-5): 2.5")
    with pytest.raises(JudgeAnswerError, match="no coherence, style score"):
        model.judge("a fox", IMAGES / "rgb_53x97.webp")


def test_a_qwen3_vl_checkpoint_loads_and_answers_through_the_same_path(tmp_path):
    """UnifiedReward-2.0-qwen3vl: transformers' Qwen3-VL class, 16-pixel patches (no original compared)."""
    import json
    import shutil

    from safetensors.torch import save_file
    from transformers import AutoTokenizer, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from imreward.testing import seeded_state_dict

    for name in (GOLDEN / "unifiedreward" / "base").iterdir():
        shutil.copy(name, tmp_path / name.name)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    token = tokenizer.convert_tokens_to_ids
    config = Qwen3VLConfig(
        text_config={"vocab_size": 640, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "tie_word_embeddings": False,
                     "rope_scaling": {"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True}},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                       "patch_size": 16, "num_position_embeddings": 64, "deepstack_visual_indexes": [0]},
        image_token_id=token("<|image_pad|>"), video_token_id=token("<|video_pad|>"),
        vision_start_token_id=token("<|vision_start|>"), vision_end_token_id=token("<|vision_end|>"),
        tie_word_embeddings=False)
    config.save_pretrained(tmp_path)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Qwen3VLForConditionalGeneration._from_config(config).state_dict().items()}
    save_file(seeded_state_dict(shapes, salt=5), str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    processor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    processor.update(patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor))
    model = imreward.load_score("UnifiedReward-2.0-qwen3vl-8b", device="cpu", checkpoint=tmp_path, max_new_tokens=6)
    assert type(model.chat.model).__name__ == "Qwen3VLForConditionalGeneration" and model.score_key == "mean"
    patches, grid = model.chat.image_patches(imreward.load_image(IMAGES / "rgb_222x333.tiff"))
    assert patches.shape[1] == 3 * 2 * 16 * 16 and (grid[1:] % 2 == 0).all()
    with pytest.raises(JudgeAnswerError, match="no alignment, coherence, style score"):
        model.judge("a fox", IMAGES / "rgb_53x97.webp")  # six random tokens: no sub-scores, raw answer in the error


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_answers_equal_the_original(tmp_path, golden):
    model = imreward.load_score("UnifiedReward-qwen-7b", device="cuda", dtype=torch.float32,
                                checkpoint=write_model_folder("unifiedreward", tmp_path / "model"),
                                max_new_tokens=golden["max_new_tokens"])
    for prompt, name in POINTWISE[:3]:
        assert model.judge(prompt, IMAGES / name).text == golden["pointwise"][prompt][name]["text"], name


def test_served_scores_equal_the_original(model, golden):
    from starlette.testclient import TestClient

    from imreward.serve.app import create_app

    pairs = POINTWISE[:2]
    with TestClient(create_app({"unifiedreward": model})) as client:
        images = [base64.b64encode((IMAGES / name).read_bytes()).decode() for _, name in pairs]
        response = client.post("/v1/score", json={"prompts": [p for p, _ in pairs], "images": images})
    assert response.status_code == 200, response.text
    assert response.json()["scores"] == [golden["pointwise"][p][n]["parsed"] for p, n in pairs]
