import pytest
import torch

import imreward
from imreward.hub import CheckpointError, build_model, load_weights
from imreward.testing import model_shapes, seeded_state_dict, tiny_config, tiny_model
from imreward.tokenizer import PromptTokenizer, packaged_vocab_file

from conftest import make_image


def test_forward_shapes_and_state_dict_layout(model):
    keys = model.state_dict().keys()
    prefixes = {key.split(".")[0] + "." + key.split(".")[1] for key in keys}
    assert prefixes == {"blip.visual_encoder", "blip.text_encoder", "blip.vision_proj", "blip.text_proj",
                        "mlp.layers"}
    assert sorted({key.split(".")[2] for key in keys if key.startswith("mlp.")}) == ["0", "2", "3"]  # Linear, Dropout(0.2), Linear, Linear
    text = model.encode_prompts(["a cat", "a dog on a mat"])
    assert text["input_ids"].shape == (2, 35)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        rewards = model(pixels, **text)
    assert rewards.shape == (2,) and rewards.dtype == torch.float32 and torch.isfinite(rewards).all()


def test_batched_scores_equal_single_scores(model):
    images = [make_image(40 + i, 50 - i, seed=i) for i in range(5)]
    prompts = ["a red square", "a cat", "a red square", "", "a dog"]
    batched = model.score_batch(prompts, images, batch_size=3)
    single = [model.score(prompt, image) for prompt, image in zip(prompts, images)]
    assert batched == pytest.approx(single, abs=1e-5)
    assert len(set(round(s, 4) for s in batched)) == 5  # the inputs really change the score


def test_score_list_and_inference_rank(model):
    images = [make_image(40, 40, seed=i) for i in range(4)]
    rewards = model.score("a cat", images)
    ranking, rank_rewards = model.inference_rank("a cat", images)
    assert rank_rewards == pytest.approx(rewards, abs=1e-6)
    order = sorted(range(4), key=lambda i: -rewards[i])
    assert [ranking[i] for i in order] == [1, 2, 3, 4]


def test_prompt_changes_the_score_and_long_prompts_truncate(model, recwarn):
    image = make_image(40, 40)
    long_prompt = " ".join(["word"] * 100)
    assert model.score("a cat", image) != pytest.approx(model.score("a spaceship", image), abs=1e-6)
    assert model.encode_prompts([long_prompt])["attention_mask"].sum() == 35
    truncated = model.score(long_prompt, image)
    assert truncated == pytest.approx(model.score(" ".join(["word"] * 33), image), abs=1e-6)
    other = tiny_model(seed=0)
    with pytest.warns(UserWarning, match="exceeds the 35 tokens"):
        other.max_length = 60
    assert other.encode_prompts([long_prompt])["attention_mask"].sum() == 60
    assert other.score(long_prompt, image) != pytest.approx(truncated, abs=1e-6)


def test_empty_prompt_scores(model):
    assert isinstance(model.score("", make_image(30, 30)), float)


def test_bad_image_raises_or_reports(model, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = make_image(30, 30)
    with pytest.raises(imreward.ImageLoadError, match="bad.png"):
        model.score_batch("x", [good, bad])
    errors = []
    scores = model.score_batch("x", [good, bad, good], on_error=lambda i, e: errors.append((i, str(e))))
    assert scores[1] is None and scores[0] == pytest.approx(scores[2])
    assert errors[0][0] == 1 and "bad.png" in errors[0][1]
    with pytest.raises(TypeError, match="int"):
        model.score("x", 42)
    with pytest.raises(ValueError, match="2 prompts for 3 images"):
        model.score_batch(["a", "b"], [good, good, good])


def test_score_tensor_is_differentiable_and_close_to_the_pil_path(model):
    images = [make_image(48, 64, seed=i) for i in range(3)]
    pixels = torch.stack([torch.from_numpy(__import__("numpy").array(im)).permute(2, 0, 1) for im in images]).float() / 255
    pixels.requires_grad_()
    scores = model.score_tensor(pixels, "a cat")
    assert scores.shape == (3,)
    scores.sum().backward()
    assert pixels.grad.abs().sum() > 0
    reference = torch.tensor(model.score("a cat", images))
    assert (scores.detach() - reference).abs().max() < 0.05 * reference.std() + 1e-3


@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 0.1), (torch.float16, 0.02)])
def test_half_precision_is_close_to_float32(model, dtype, tolerance):
    images = [make_image(40, 40, seed=i) for i in range(4)]
    reference = model.score("a cat", images)
    low = tiny_model(seed=0)
    low.blip.to(dtype)
    assert low.compute_dtype == dtype and low.mlp.layers[0].weight.dtype == torch.float32
    scores = low.score("a cat", images)
    assert scores == pytest.approx(reference, abs=tolerance)


def test_save_pretrained_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "saved")
    assert {p.name for p in (tmp_path / "saved").iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                                                  "vocab.txt"}
    loaded = imreward.load(tmp_path / "saved", device="cpu")
    assert loaded.config == model.config
    image = make_image(30, 40)
    assert loaded.score("a cat", image) == model.score("a cat", image)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_strict_loading_names_missing_unexpected_and_misshapen_keys():
    config = tiny_config()
    state = seeded_state_dict(model_shapes(config))
    tokenizer = PromptTokenizer.from_vocab(packaged_vocab_file())
    missing = dict(state)
    del missing["blip.text_encoder.encoder.layer.1.crossattention.self.key.weight"]
    with pytest.raises(CheckpointError, match="missing keys.*layer.1.crossattention.self.key.weight"):
        build_model(config, missing, tokenizer)
    unexpected = dict(state, **{"blip.itm_head.weight": torch.zeros(2, 32)})
    with pytest.raises(CheckpointError, match="unexpected keys.*blip.itm_head.weight"):
        build_model(config, unexpected, tokenizer)
    misshapen = dict(state, **{"mlp.layers.0.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match=r"mlp.layers.0.weight: checkpoint \(3, 3\)"):
        build_model(config, misshapen, tokenizer)
    wrong_positions = dict(state, **{"blip.text_encoder.embeddings.position_ids": torch.zeros(1, 64, dtype=torch.long)})
    with pytest.raises(CheckpointError, match="position_ids"):
        build_model(config, wrong_positions, tokenizer)
    with_positions = dict(state, **{"blip.text_encoder.embeddings.position_ids": torch.arange(64)[None]})
    assert build_model(config, with_positions, tokenizer) is not None


def test_published_checkpoint_file_loads_by_path(tmp_path):
    config = tiny_config()
    state = seeded_state_dict(model_shapes(config), salt=5)
    torch.save(state, tmp_path / "ImageReward.pt")
    with pytest.raises(CheckpointError, match="missing keys"):
        imreward.load(tmp_path / "ImageReward.pt", device="cpu")  # no med_config: the full-size architecture
    expected = build_model(config, state, PromptTokenizer.from_vocab(packaged_vocab_file())).eval()
    image = make_image(30, 30)
    # A saved folder carries its own config; the published .pt + med_config describes only the text side.
    expected.save_pretrained(tmp_path / "folder")
    assert imreward.load(tmp_path / "folder").score("a", image) == pytest.approx(expected.score("a", image), abs=1e-6)


def test_gradients_reach_every_trainable_parameter():
    model = tiny_model(seed=1).train()
    text = model.encode_prompts(["a cat", "a dog"])
    rewards = model(torch.randn(2, 3, 32, 32), **text)
    rewards.sum().backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None and "proj" not in name]
    assert no_grad == []


def test_gradient_checkpointing_gives_the_same_gradients():
    plain, checkpointed = tiny_model(seed=2).train(), tiny_model(seed=2).train()
    checkpointed.blip.set_grad_checkpointing(True)
    text = plain.encode_prompts(["a cat", "a dog"])
    pixels = torch.randn(2, 3, 32, 32)
    for m in (plain, checkpointed):
        torch.manual_seed(0)
        m(pixels, **text).sum().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_load_weights_assigns_onto_meta_modules():
    config = tiny_config()
    with torch.device("meta"):
        model = imreward.ImageReward(config)
    load_weights(model, seeded_state_dict(model_shapes(config)))
    assert all(not p.is_meta for p in model.parameters())


def test_config_round_trips_through_json_and_med_config(tmp_path):
    config = tiny_config()
    config.save(tmp_path / "config.json")
    assert imreward.ImageRewardConfig.load(tmp_path / "config.json") == config
    med = config.text.to_med_config()
    assert imreward.TextConfig.from_med_config(med, encoder_width=config.text.encoder_width) == config.text
    with pytest.raises(ValueError, match="hidden_act"):
        imreward.TextConfig.from_med_config(dict(med, hidden_act="relu"), encoder_width=32)


def test_threaded_decoding_gives_the_same_scores(model):
    images = [make_image(40 + i, 50, seed=i) for i in range(7)]
    in_thread = model.score_batch("a cat", images, batch_size=3, num_workers=0)
    assert model.score_batch("a cat", images, batch_size=3, num_workers=2) == in_thread
