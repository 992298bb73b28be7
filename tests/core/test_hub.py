"""Loading through the real huggingface_hub code against a loopback stand-in of the hub."""

import json

import pytest
import torch

import imreward
from imreward.hub import ModelDownloadError, ModelSpec
from imreward.testing import model_shapes, seeded_state_dict, tiny_config
from imreward.tokenizer import packaged_vocab_file

from conftest import make_image
from fake_hub import FakeHub

TINY_MED_CONFIG = {"hidden_act": "gelu", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                   "intermediate_size": 64, "max_position_embeddings": 64, "layer_norm_eps": 1e-12,
                   "vocab_size": 30524, "pad_token_id": 0, "encoder_width": 768, "add_cross_attention": True}


@pytest.fixture
def published_files(tmp_path):
    """A tiny checkpoint in the published layout: ImageReward.pt + med_config.json (+ position_ids buffer)."""
    state = seeded_state_dict(model_shapes(tiny_config()), salt=3)
    state["blip.text_encoder.embeddings.position_ids"] = torch.arange(64)[None]
    torch.save(state, tmp_path / "ImageReward.pt")
    (tmp_path / "med_config.json").write_text(json.dumps(TINY_MED_CONFIG))
    return tmp_path


@pytest.fixture
def tiny_registry(monkeypatch):
    """Register a hub model whose architecture is the tiny config (the published one is full size)."""
    import imreward.config as config_module
    from imreward import hub

    tiny = tiny_config()
    monkeypatch.setattr(config_module.ImageRewardConfig, "from_med_config",
                        classmethod(lambda cls, med, **kw: tiny))
    monkeypatch.setitem(hub._MODELS, "Tiny-v1", ModelSpec(repo_id="test/TinyReward"))
    monkeypatch.setattr(hub, "packaged_vocab_file", lambda: None)  # force the tokenizer download too
    return tiny


def test_registry_name_downloads_with_huggingface_hub(published_files, tiny_registry, tmp_path, monkeypatch):
    files = {("test/TinyReward", "ImageReward.pt"): published_files / "ImageReward.pt",
             ("test/TinyReward", "med_config.json"): published_files / "med_config.json",
             ("bert-base-uncased", "vocab.txt"): packaged_vocab_file()}
    cache = tmp_path / "cache"
    with FakeHub(files) as hub_server:
        monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
        model = imreward.load("Tiny-v1", device="cpu", download_root=cache)
        assert any("/test/TinyReward/resolve/main/ImageReward.pt" in r for r in hub_server.requests)
        assert any("/bert-base-uncased/resolve/main/vocab.txt" in r for r in hub_server.requests)
    score = model.score("a cat", make_image(30, 30))
    # The cache now serves the files: offline loading works and gives the same model.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = imreward.load("Tiny-v1", device="cpu", download_root=cache)
    assert again.score("a cat", make_image(30, 30)) == score


def test_without_network_or_cache_the_error_says_what_was_tried(tiny_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    with pytest.raises(ModelDownloadError) as error:
        imreward.load("Tiny-v1", device="cpu", download_root=tmp_path / "empty")
    message = str(error.value)
    assert "ImageReward.pt" in message and "test/TinyReward" in message and "127.0.0.1:9" in message
    assert "imreward.load('/path/to/ImageReward.pt'" in message
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelDownloadError, match="cache only"):
        imreward.load("Tiny-v1", device="cpu", download_root=tmp_path / "empty")


def test_local_checkpoint_loads_without_network(published_files, tiny_registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from imreward import hub

    monkeypatch.setattr(hub, "packaged_vocab_file", packaged_vocab_file)
    model = imreward.load(published_files / "ImageReward.pt", device="cpu")
    assert isinstance(model.score("a dog", make_image(20, 20)), float)


def test_unknown_name_lists_the_registry():
    with pytest.raises(FileNotFoundError, match="ImageReward-v1.0"):
        imreward.load("No-Such-Model")


def test_register_a_trained_folder_by_name(model, tmp_path):
    model.save_pretrained(tmp_path / "mine")
    imreward.register("my-reward", tmp_path / "mine")
    try:
        assert "my-reward" in imreward.available_models()
        with pytest.raises(ValueError, match="already registered"):
            imreward.register("my-reward", tmp_path / "mine")
        image = make_image(30, 30)
        assert imreward.load("my-reward").score("x", image) == model.score("x", image)
        assert imreward.load_score("my-reward").score("x", image) == model.score("x", image)
    finally:
        from imreward import hub

        hub._MODELS.pop("my-reward")
        hub._SCORERS.pop("my-reward")
