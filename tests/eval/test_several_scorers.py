"""``benchmark`` with several registered scorers sharing one cache, and ``eval`` with tiny ImageReward scorers."""

import json

import numpy as np
import pytest
from cli_helpers import run_subcommand
from eval.eval_helpers import BrightnessScorer, write_gray_png
from PIL import Image
from tiny_hpsv3 import load_tiny_hpsv3, write_checkpoint

from imreward import hub
from imreward.eval.cli import register
from imreward.testing import tiny_model


def run_cli(argv: list[str]) -> int:
    return run_subcommand(register, argv)


@pytest.fixture
def registered(monkeypatch):
    """``bright`` / ``dark`` (brightness, opposite signs) and two tiny ImageReward scorers."""
    scorers = {"bright": BrightnessScorer(1.0), "dark": BrightnessScorer(-1.0), "tiny-a": tiny_model(seed=0),
               "tiny-64": tiny_model(seed=2, image_size=64)}
    for name, scorer in scorers.items():
        monkeypatch.setitem(hub._SCORERS, name, hub.ScorerInfo(lambda name, scorer=scorer, **_: scorer))
    return scorers


def test_benchmark_with_each_scorer_in_one_cache_keeps_their_scores_apart(tmp_path, registered):
    prompts = [{"id": i, "prompt": f"benchmark prompt {i}"} for i in range(2)]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    for generator, level in {"g-bright": 220, "g-dark": 30}.items():
        for prompt in prompts:
            write_gray_png(tmp_path / "gens" / generator / f"{prompt['id']}_0.png", level + prompt["id"])
    rankings = {}
    for model in ("bright", "dark", "tiny-64"):
        out = tmp_path / model
        assert run_cli(["benchmark", "--prompts", str(tmp_path / "prompts.json"), "--generations",
                        str(tmp_path / "gens"), "--model", model, "--cache", str(tmp_path / "cache.sqlite"),
                        "-o", str(out), "--bootstrap", "20", "-q", "--device", "cpu"]) == 0
        result = json.loads((out / "benchmark.json").read_text())
        rankings[model] = result["rankings"][model]
        expected = [registered[model].score(f"benchmark prompt {i}", tmp_path / "gens" / "g-dark" / f"{i}_0.png")
                    for i in range(2)]
        assert result["generators"]["g-dark"][model]["value"] == pytest.approx(sum(expected) / 2, abs=1e-4)
    assert rankings["bright"] == ["g-bright", "g-dark"] and rankings["dark"] == ["g-dark", "g-bright"]


def test_eval_with_several_tiny_scorers(tmp_path, registered):
    records = []
    for index in range(3):
        paths = [f"p{index}/{k}.png" for k in range(3)]
        for k, path in enumerate(paths):
            write_gray_png(tmp_path / "images" / path, 40 + 70 * k + index)
        records.append({"id": str(index), "prompt": f"prompt {index}", "generations": paths, "ranking": [3, 2, 1]})
    (tmp_path / "test.json").write_text(json.dumps(records))
    assert run_cli(["eval", "--data", str(tmp_path / "test.json"), "--images", str(tmp_path / "images"),
                    "--scorers", "bright,tiny-a,tiny-64", "-o", str(tmp_path / "report"), "--bootstrap", "20",
                    "-q", "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "report" / "report.json").read_text())["metrics"]
    assert list(metrics) == ["bright", "tiny-a", "tiny-64"] and metrics["bright"]["accuracy"]["value"] == 1.0


def test_benchmark_with_hpsv3_on_images_of_different_shapes(tmp_path, monkeypatch):
    hpsv3 = load_tiny_hpsv3(write_checkpoint(tmp_path / "HPSv3.safetensors"))
    monkeypatch.setitem(hub._SCORERS, "hpsv3", hub.ScorerInfo(lambda name, **_: hpsv3))
    prompts = [{"id": 0, "prompt": "a red bicycle"}, {"id": 1, "prompt": "a lighthouse at dusk, très détaillé"}]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    rng = np.random.default_rng(0)
    for generator, (width, height) in {"g-wide": (64, 40), "g-tall": (40, 72)}.items():
        (tmp_path / "gens" / generator).mkdir(parents=True)
        for prompt in prompts:
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "gens" / generator / f"{prompt['id']}_0.png")
    assert run_cli(["benchmark", "--prompts", str(tmp_path / "prompts.json"), "--generations", str(tmp_path / "gens"),
                    "--model", "hpsv3", "--cache", str(tmp_path / "cache.sqlite"), "-o", str(tmp_path / "out"),
                    "--bootstrap", "20", "-q", "--device", "cpu"]) == 0
    result = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    for generator in ("g-wide", "g-tall"):
        alone = [hpsv3.score(p["prompt"], tmp_path / "gens" / generator / f"{p['id']}_0.png") for p in prompts]
        assert result["generators"][generator]["hpsv3"]["value"] == pytest.approx(sum(alone) / 2, abs=1e-5)
