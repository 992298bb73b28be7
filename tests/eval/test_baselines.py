"""The baseline scorers load their published file formats (tiny stand-ins, no network) and score
as their definitions say."""

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval.eval_helpers import write_tiny_openai_clip
from PIL import Image

import imreward
from imreward.hub import CheckpointError, ModelDownloadError
from imreward.models import baselines
from imreward.models.baselines import PublishedWeights, fetch_weights
from imreward.models.blip import BLIPBackbone
from imreward.testing import seeded_state_dict, tiny_config

PROMPTS = ["a red fox in the snow", "an astronaut riding a horse"]


def gradient_image(seed: int, size=(40, 56)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def open_clip_pixels(image: Image.Image, size: int = 32) -> torch.Tensor:
    """open_clip's own evaluation transform, independent of imreward's preprocessing."""
    from open_clip.transform import image_transform

    return image_transform(size, is_train=False)(image)[None]


def test_the_baselines_are_registered_under_the_original_names():
    assert {"CLIP", "BLIP", "Aesthetic"} <= set(imreward.available_scores())


def test_clip_score_is_the_cosine_of_open_clip_features(tiny_clip_file):
    path, reference = tiny_clip_file
    scorer = imreward.load_score("CLIP", device="cpu", checkpoint=path)
    images = [gradient_image(1), gradient_image(2)]
    import open_clip

    with torch.no_grad():
        text = F.normalize(reference.encode_text(open_clip.tokenize(PROMPTS[:1])), dim=-1)
        expected = [float(F.normalize(reference.encode_image(open_clip_pixels(image)), dim=-1) @ text.T)
                    for image in images]
    assert scorer.score(PROMPTS[0], images) == pytest.approx(expected, abs=1e-5)
    ranks, rewards = scorer.inference_rank(PROMPTS[0], images)
    assert ranks == ([1, 2] if expected[0] > expected[1] else [2, 1])
    assert scorer.score(PROMPTS[1], images[0]) != pytest.approx(expected[0], abs=1e-4)  # the prompt matters


def test_clip_reads_a_plain_state_dict_too_and_rejects_other_files(tmp_path, tiny_clip_file):
    plain = tmp_path / "plain.pt"
    write_tiny_openai_clip(plain, as_torchscript=False)
    image = gradient_image(3)
    from_plain = imreward.load_score("CLIP", device="cpu", checkpoint=plain).score(PROMPTS[0], image)
    from_archive = imreward.load_score("CLIP", device="cpu", checkpoint=tiny_clip_file[0]).score(PROMPTS[0], image)
    assert from_plain == pytest.approx(from_archive, abs=1e-6)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an OpenAI CLIP"):
        imreward.load_score("CLIP", device="cpu", checkpoint=other)


def aesthetic_state_dict(width: int) -> dict[str, torch.Tensor]:
    shapes = {"layers.0": (1024, width), "layers.2": (128, 1024), "layers.4": (64, 128), "layers.6": (16, 64),
              "layers.7": (1, 16)}
    tensors = {}
    for name, shape in shapes.items():
        tensors.update(seeded_state_dict({f"{name}.weight": shape, f"{name}.bias": shape[:1]}, salt=5))
    return tensors


def test_aesthetic_is_the_mlp_on_normalised_clip_image_features(tmp_path, tiny_clip_file):
    clip_path, reference = tiny_clip_file
    state = aesthetic_state_dict(32)
    torch.save(state, tmp_path / "mlp.pth")
    scorer = imreward.load_score("Aesthetic", device="cpu", checkpoint=tmp_path / "mlp.pth",
                                 clip_checkpoint=clip_path)
    image = gradient_image(4)
    with torch.no_grad():
        features = F.normalize(reference.encode_image(open_clip_pixels(image)), dim=-1)
        for name in ("layers.0", "layers.2", "layers.4", "layers.6", "layers.7"):  # linear, no activations
            features = features @ state[f"{name}.weight"].T + state[f"{name}.bias"]
    assert scorer.score(PROMPTS[0], image) == pytest.approx(float(features), abs=1e-4)
    assert scorer.score(PROMPTS[1], image) == scorer.score(PROMPTS[0], image)  # prompt-independent


def test_aesthetic_rejects_a_head_of_the_wrong_width(tmp_path, tiny_clip_file):
    torch.save(aesthetic_state_dict(768), tmp_path / "mlp.pth")
    with pytest.raises(CheckpointError, match="layers.0.weight"):
        imreward.load_score("Aesthetic", device="cpu", checkpoint=tmp_path / "mlp.pth",
                            clip_checkpoint=tiny_clip_file[0])


def blip_pretrain_checkpoint(config, extra: dict | None = None) -> dict:
    """A tiny ``model_large.pth``: {"model": state dict} with the backbone and the parts the score ignores."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in BLIPBackbone(config.vision, config.text, config.embed_dim)
                  .state_dict().items()}
    state = seeded_state_dict(shapes, salt=9)
    state["text_encoder.embeddings.position_ids"] = torch.arange(config.text.max_position_embeddings)[None]
    state.update({"visual_encoder_m.cls_token": torch.zeros(1, 1, 32), "text_encoder_m.embeddings.x": torch.zeros(2),
                  "vision_proj_m.weight": torch.zeros(2), "image_queue": torch.zeros(16, 4),
                  "text_queue": torch.zeros(16, 4), "queue_ptr": torch.zeros(1, dtype=torch.long),
                  "temp": torch.tensor(0.07), "itm_head.weight": torch.zeros(2, 32),
                  "text_decoder.cls.predictions.bias": torch.zeros(8)})
    state.update(extra or {})
    return {"model": state}


@pytest.fixture
def tiny_blip(tmp_path):
    config = tiny_config()
    torch.save(blip_pretrain_checkpoint(config), tmp_path / "model_large.pth")
    scorer = imreward.load_score("BLIP", device="cpu", checkpoint=tmp_path / "model_large.pth", config=config)
    return scorer, config, tmp_path


def test_blip_score_is_the_cosine_of_projected_cls_features(tiny_blip):
    scorer, config, _ = tiny_blip
    image = gradient_image(5)
    pixels = scorer.preprocess(image)[None]
    text = scorer.encode_prompts(PROMPTS[:1])
    with torch.no_grad():
        image_embedding = F.normalize(scorer.blip.vision_proj(scorer.blip.visual_encoder(pixels)[:, 0]), dim=-1)
        text_cls = scorer.blip.text_encoder(text["input_ids"], text["attention_mask"])
        text_embedding = F.normalize(scorer.blip.text_proj(text_cls), dim=-1)
    assert text["input_ids"].shape[1] == config.max_length  # padded to 35 tokens like the original
    assert scorer.score(PROMPTS[0], image) == pytest.approx(float(image_embedding @ text_embedding.T), abs=1e-5)


def test_blip_text_pass_skips_cross_attention(tiny_blip):
    """With every cross-attention block made an identity, the core multimodal encoder must give
    exactly the text-only [CLS] feature: so the text-only pass is the encoder minus cross-attention."""
    scorer, config, _ = tiny_blip
    encoder = scorer.blip.text_encoder
    text = scorer.encode_prompts(PROMPTS)
    with torch.no_grad():
        text_only = encoder(text["input_ids"], text["attention_mask"])
        for layer in encoder.encoder.layer:
            for norm in (layer.attention.output.LayerNorm, layer.crossattention.output.LayerNorm):
                norm.weight.fill_(1.0)
                norm.bias.zero_()
            layer.crossattention.output.dense.weight.zero_()
            layer.crossattention.output.dense.bias.zero_()
        image_tokens = torch.randn(2, 17, config.vision.width)
        multimodal = encoder(text["input_ids"], text["attention_mask"], image_tokens)
        changed = encoder(text["input_ids"], text["attention_mask"])
    assert not torch.allclose(text_only, changed)  # the LayerNorm edit did change the encoder
    assert torch.allclose(multimodal, changed, atol=1e-4)


def test_blip_rejects_unknown_keys_and_non_blip_files(tmp_path):
    config = tiny_config()
    torch.save(blip_pretrain_checkpoint(config, {"mystery.weight": torch.zeros(1)}), tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="mystery.weight"):
        imreward.load_score("BLIP", device="cpu", checkpoint=tmp_path / "odd.pth", config=config)
    torch.save({"state_dict": {}}, tmp_path / "flat.pth")
    with pytest.raises(CheckpointError, match="'model' state dict"):
        imreward.load_score("BLIP", device="cpu", checkpoint=tmp_path / "flat.pth", config=config)


def test_fetch_weights_downloads_once_and_verifies_the_checksum(tmp_path, monkeypatch):
    payload = b"published weights"
    calls = []

    def fake_download(url, destination, hash_prefix=None, progress=True):
        calls.append(url)
        if hash_prefix and hashlib.sha256(payload).hexdigest()[: len(hash_prefix)] != hash_prefix:
            raise RuntimeError("invalid hash value")
        with open(destination, "wb") as stream:
            stream.write(payload)

    monkeypatch.setattr(baselines.torch.hub, "download_url_to_file", fake_download)
    good = PublishedWeights("https://example.invalid/w.bin", "w.bin", hashlib.sha256(payload).hexdigest())
    assert fetch_weights(good, tmp_path).read_bytes() == payload
    assert fetch_weights(good, tmp_path) == tmp_path / "w.bin"
    assert len(calls) == 1  # the second call used the cache
    (tmp_path / "w.bin").write_bytes(b"corrupted")
    fetch_weights(good, tmp_path)
    assert len(calls) == 2 and (tmp_path / "w.bin").read_bytes() == payload
    bad = PublishedWeights("https://example.invalid/x.bin", "x.bin", "0" * 64)
    with pytest.raises(ModelDownloadError, match="invalid hash"):
        fetch_weights(bad, tmp_path)
