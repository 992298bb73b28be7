"""--dtype auto follows the CPU's flags; int8 quantizes the backbone's linear layers; every command takes both."""

import pytest
import torch
from torch import nn

import imreward
import imreward.cli
from imreward import precision
from imreward.cli import build_parser
from imreward.precision import auto_cpu_dtype, choose_dtype, quantize_int8, quantized_linear_names
from imreward.testing import tiny_model

SAPPHIRE_RAPIDS = {"avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"}
ICE_LAKE = {"avx512f", "avx512_vnni"}
COOPER_LAKE = {"avx512f", "avx512_vnni", "avx512_bf16"}
GRANITE_RAPIDS = SAPPHIRE_RAPIDS | {"amx_fp16"}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("model") / "tiny"
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("flags, expected", [(SAPPHIRE_RAPIDS, "bfloat16"), (GRANITE_RAPIDS, "float16"),
                                             (ICE_LAKE, "float32"), (COOPER_LAKE, "float32"), (set(), "float32")])
def test_auto_picks_per_the_cpu_flags(flags, expected, monkeypatch):
    assert auto_cpu_dtype(flags)[0] == expected
    monkeypatch.setenv("IMREWARD_CPU_FLAGS", ",".join(sorted(flags)) or "none")
    name, reason = choose_dtype("auto", "cpu")
    assert name == expected and reason.startswith("auto: ")


def test_detected_flags_are_used_unless_replaced_and_onednn_isa_caps_amx(monkeypatch):
    monkeypatch.delenv("IMREWARD_CPU_FLAGS", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(precision, "_proc_cpu_flags", lambda: frozenset(SAPPHIRE_RAPIDS))
    assert choose_dtype("auto", "cpu")[0] == "bfloat16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")  # oneDNN kept off AMX: bf16 would not pay
    assert "amx_bf16" not in precision.cpu_flags()
    assert choose_dtype("auto", "cpu")[0] == "float32"


def test_auto_keeps_the_scorer_default_on_a_gpu_and_int8_is_cpu_only(monkeypatch):
    monkeypatch.setenv("IMREWARD_CPU_FLAGS", ",".join(SAPPHIRE_RAPIDS))
    assert choose_dtype("auto", "cuda")[0] is None
    assert choose_dtype(None, "cpu")[0] is None
    assert choose_dtype(torch.bfloat16, "cpu")[0] == "bfloat16"
    with pytest.raises(ValueError, match="CPU option"):
        choose_dtype("int8", "cuda")
    with pytest.raises(ValueError, match="one of"):
        choose_dtype("float8", "cpu")


def test_load_scorer_applies_auto_and_says_why(saved_model, monkeypatch):
    monkeypatch.setenv("IMREWARD_CPU_FLAGS", ",".join(SAPPHIRE_RAPIDS))
    scorer = imreward.load_scorer(str(saved_model), device="cpu", dtype="auto")
    assert scorer.blip.visual_encoder.cls_token.dtype == torch.bfloat16
    assert scorer.mlp.layers[0].weight.dtype == torch.float32  # the head stays float32
    assert scorer.precision.startswith("bfloat16 (auto: AMX-BF16")
    monkeypatch.setenv("IMREWARD_CPU_FLAGS", ",".join(ICE_LAKE))
    assert imreward.load_scorer(str(saved_model), device="cpu", dtype="auto").compute_dtype == torch.float32


def test_int8_quantizes_the_backbone_linears_only_and_stays_close_to_float32(saved_model, image_files):
    reference = imreward.load_scorer(str(saved_model), device="cpu")
    quantized = imreward.load_scorer(str(saved_model), device="cpu", dtype="int8")
    names = set(quantized_linear_names(reference))
    assert names and not any(name.startswith(("mlp", "blip.vision_proj", "blip.text_proj", "blip.text_encoder"))
                             for name in names)
    modules = dict(quantized.named_modules())
    assert all(type(modules[name]) is not nn.Linear for name in names)  # every one converted
    assert type(quantized.mlp.layers[0]) is nn.Linear and quantized.precision.startswith("int8")
    assert isinstance(quantized.blip.visual_encoder.patch_embed.proj, nn.Conv2d)  # convolutions stay float
    prompts = ["a cat", "a red house by the sea"]
    images = image_files * 2
    expected = torch.tensor(reference.score_batch(prompts * 3, images))
    scores = torch.tensor(quantized.score_batch(prompts * 3, images))
    # Tolerance: the tiny model's scores spread with a std of about 0.5; int8 moves them by < 0.1.
    assert (scores - expected).abs().max() < 0.1
    assert not torch.equal(scores, expected)  # it did quantize


def test_int8_refuses_weights_not_in_float32_on_the_cpu(model):
    half = tiny_model().to(torch.bfloat16)
    with pytest.raises(ValueError, match="float32"):
        quantize_int8(half)


@pytest.mark.parametrize("command, option", [
    (["score", "a.png"], "--dtype"), (["rank", "a.png"], "--dtype"), (["eval", "--data", "d"], "--dtype"),
    (["benchmark", "--prompts", "p", "--generations", "g"], "--dtype"), (["serve"], "--dtype"),
    (["score-dataset", "in", "-o", "x"], "--dtype"),
    (["refl", "--prompts", "p", "--output-dir", "o"], "--reward-dtype")])
def test_every_scoring_command_takes_auto_and_int8(command, option):
    destination = option.removeprefix("--").replace("-", "_")
    assert getattr(build_parser().parse_args(command), destination) == "auto"
    for value in ("int8", "bfloat16", "float32"):
        assert getattr(build_parser().parse_args(command + [option, value]), destination) == value
    with pytest.raises(SystemExit):
        build_parser().parse_args(command + [option, "float8"])


def test_refl_refuses_an_int8_reward(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n")
    with pytest.raises(SystemExit, match="int8 layers pass no gradients"):
        imreward.cli.main(["refl", "--prompts", str(prompts), "--output-dir", str(tmp_path / "o"),
                           "--random-pipeline", "tiny", "--reward", "brightness", "--reward-dtype", "int8"])


def test_the_score_cache_keys_auto_by_what_it_picks_on_this_cpu(tmp_path, monkeypatch):
    from imreward.eval.cache import ScoreCache

    dtypes = []
    for flags in (SAPPHIRE_RAPIDS, ICE_LAKE):
        monkeypatch.setenv("IMREWARD_CPU_FLAGS", ",".join(flags))
        cache = ScoreCache(tmp_path / "scores.sqlite", "auto")
        dtypes.append(cache.dtype)
        cache.close()
    assert "bfloat16" in dtypes[0] and "float32" in dtypes[1]
