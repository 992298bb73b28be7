"""The ``eval`` and ``benchmark`` commands end to end on generated stand-in data with tiny scorers."""

import json

import numpy as np
import pytest
from cli_helpers import run_subcommand
from eval.eval_helpers import BrightnessScorer, write_gray_png

import imreward
from imreward.eval.cli import register
from imreward.testing import tiny_model


def run_cli(argv: list[str]) -> int:
    return run_subcommand(register, argv)


@pytest.fixture
def counting_scorers():
    """Registers test scorers; ``loads[name]`` counts how often each was loaded."""
    loads = {"test-bright": 0, "test-dark": 0}
    instances = {"test-bright": BrightnessScorer(1.0), "test-dark": BrightnessScorer(-1.0)}

    def factory(name, device=None, download_root=None):
        loads[name] += 1
        return instances[name]

    for name in loads:
        imreward.register_scorer(name, factory, overwrite=True)
    return loads, instances


def make_test_set(tmp_path, prompts: int = 8, seed: int = 0):
    """A test.json-layout file whose human ranks follow brightness (brighter = better, equal = tie);
    the last prompt names an image that does not exist."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(prompts):
        levels = rng.choice(np.arange(10, 250, 20), size=rng.integers(3, 6), replace=False)
        if index == 0:
            levels[1] = levels[0]  # a human tie
        paths = [f"p{index}/{k}.png" for k in range(len(levels))]
        for path, level in zip(paths, levels):
            write_gray_png(tmp_path / "images" / path, int(level))
        ranking = [int((levels > level).sum()) + 1 for level in levels]
        records.append({"id": str(index), "prompt": f"prompt number {index}", "generations": paths,
                        "ranking": ranking})
    records[-1]["generations"][0] = "p_missing/none.png"
    (tmp_path / "test.json").write_text(json.dumps(records))
    evaluated_images = sum(len(record["generations"]) for record in records[:-1])
    return tmp_path / "test.json", tmp_path / "images", evaluated_images


def test_eval_writes_reports_skips_missing_images_and_reuses_the_cache(tmp_path, counting_scorers):
    loads, instances = counting_scorers
    checkpoint = tmp_path / "my-checkpoint"
    tiny_model(seed=3).save_pretrained(checkpoint)
    imreward.register("test-my-checkpoint", checkpoint, overwrite=True)
    data, images, image_count = make_test_set(tmp_path)
    out = tmp_path / "report"
    common = ["eval", "--data", str(data), "--images", str(images), "-o", str(out), "--bootstrap", "200", "-q"]

    assert run_cli(common + ["--scorers", "test-bright,test-my-checkpoint"]) == 0
    report = json.loads((out / "report.json").read_text())
    markdown = (out / "report.md").read_text()
    assert (out / "report.png").stat().st_size > 10_000
    assert report["prompts"] == {"total": 8, "evaluated": 7, "skipped": 1, "unlabelled_rows": 0}
    assert report["skipped"][0]["id"] == "7" and "none.png" in report["skipped"][0]["images"][0]
    assert "**1 skipped**" in markdown
    assert "| model | pref. acc. | R@1 | R@2 | R@4 | F@1 | F@2 | F@4 |" in markdown
    assert "| test-bright | 100.00 | 100.00 |" in markdown
    assert report["metrics"]["test-bright"]["accuracy"]["value"] == 1.0
    assert 0.0 <= report["metrics"]["test-my-checkpoint"]["accuracy"]["value"] <= 1.0
    assert report["cache"]["test-bright"] == {"hits": 0, "misses": image_count}
    assert instances["test-bright"].images_scored == image_count

    # Re-run: every score comes from the cache, so no scorer is even loaded.
    assert run_cli(common + ["--scorers", "test-bright,test-my-checkpoint"]) == 0
    rerun = json.loads((out / "report.json").read_text())
    assert loads["test-bright"] == 1 and instances["test-bright"].images_scored == image_count
    assert rerun["cache"] == {name: {"hits": image_count, "misses": 0} for name in report["cache"]}
    assert rerun["metrics"] == report["metrics"]

    # An added scorer computes only its own scores.
    assert run_cli(common + ["--scorers", "test-bright,test-my-checkpoint,test-dark"]) == 0
    added = json.loads((out / "report.json").read_text())
    assert added["cache"]["test-dark"] == {"hits": 0, "misses": image_count}
    assert added["cache"]["test-bright"]["misses"] == 0 and loads == {"test-bright": 1, "test-dark": 1}
    assert added["metrics"]["test-dark"]["accuracy"]["value"] == 0.0


def test_the_cache_knows_a_checkpoint_retrained_in_place_and_another_dtype(tmp_path):
    checkpoint = tmp_path / "run" / "best"
    tiny_model(seed=3).save_pretrained(checkpoint)
    data, images, image_count = make_test_set(tmp_path, prompts=3)
    out = tmp_path / "report"
    common = ["eval", "--data", str(data), "--images", str(images), "-o", str(out), "--bootstrap", "50", "-q",
              "--scorers", str(checkpoint), "--device", "cpu"]

    def cache_use(*extra: str) -> dict:
        assert run_cli([*common, *extra]) == 0
        return json.loads((out / "report.json").read_text())["cache"][str(checkpoint)]

    assert cache_use() == {"hits": 0, "misses": image_count} and cache_use()["misses"] == 0
    tiny_model(seed=4).save_pretrained(checkpoint)  # retrained, saved in place over the old weights
    assert cache_use() == {"hits": 0, "misses": image_count}
    assert cache_use("--dtype", "bfloat16") == {"hits": 0, "misses": image_count}
    assert cache_use() == {"hits": image_count, "misses": 0}


def test_an_unreadable_image_skips_its_prompt_for_every_scorer(tmp_path):
    from imreward.eval.data import read_evaluation_data
    from imreward.eval.runner import run_evaluation

    data, images, _ = make_test_set(tmp_path, prompts=4)
    records = json.loads(data.read_text())
    (images / records[1]["generations"][2]).write_bytes(b"not an image")
    scorers = {"bright": BrightnessScorer(1.0), "dark": BrightnessScorer(-1.0)}
    prompts, skipped = read_evaluation_data(data, images)
    run = run_evaluation(prompts, list(scorers), tmp_path / "cache.sqlite", n_resamples=50, scorers=scorers,
                         skipped=skipped)
    assert [(item["id"], item["reason"]) for item in run.skipped] == [("3", "missing image"), ("1", "unreadable image")]
    assert [prompt.prompt_id for prompt in run.prompts] == ["0", "2"]
    assert [len(group) for group in run.scores["dark"]] == [len(records[0]["ranking"]), len(records[2]["ranking"])]
    assert run.metrics["bright"]["accuracy"]["value"] == 1.0


def test_eval_rejects_unknown_scorers(tmp_path):
    data, images, _ = make_test_set(tmp_path, prompts=2)
    with pytest.raises(SystemExit, match="unknown scorers no-such-scorer"):
        run_cli(["eval", "--data", str(data), "--images", str(images), "--scorers", "no-such-scorer",
                 "-o", str(tmp_path / "out"), "-q"])


def test_benchmark_ranks_generators_and_correlates_with_human_ranks(tmp_path, counting_scorers):
    loads, _ = counting_scorers
    prompts = [{"id": i, "prompt": f"benchmark prompt {i}"} for i in range(3)]
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    levels = {"g-bright": 200, "g-mid": 120, "g-dark": 40}
    for generator, level in levels.items():
        for prompt in prompts:
            if generator == "g-mid" and prompt["id"] == 2:
                continue  # this generator made no image for prompt 2
            for k in range(2):
                write_gray_png(tmp_path / "gens" / generator / f"{prompt['id']}_{k}.png", level + 5 * k + prompt["id"])
    (tmp_path / "human.json").write_text(json.dumps({"g-bright": 1, "g-dark": 2, "g-mid": 3}))
    out = tmp_path / "bench"
    argv = ["benchmark", "--prompts", str(tmp_path / "prompts.json"), "--generations", str(tmp_path / "gens"),
            "--model", "test-bright", "--human-ranks", str(tmp_path / "human.json"), "-o", str(out),
            "--bootstrap", "100", "-q"]
    assert run_cli(argv) == 0
    result = json.loads((out / "benchmark.json").read_text())
    assert result["metrics"] == ["test-bright"] and result["rankings"]["test-bright"] == ["g-bright", "g-mid", "g-dark"]
    assert result["generators"]["g-mid"]["prompts_without_images"] == 1
    bright = result["generators"]["g-bright"]
    assert bright["images"] == 6 and bright["test-bright"]["rank"] == 1
    expected_mean = np.mean([200 + 5 * k + i for i in range(3) for k in range(2)]) / 255
    assert bright["test-bright"]["value"] == pytest.approx(expected_mean, abs=2e-3)
    win_rate = result["win_rate"]["test-bright"]
    assert win_rate["g-bright"]["g-dark"] == 1.0 and win_rate["g-dark"]["g-mid"] == 0.0
    assert win_rate["g-bright"]["g-bright"] is None
    # model ranks (1, 2, 3) vs human ranks (1, 3, 2): rho = 1 - 6 * 2 / (3 * 8) = 0.5
    assert result["human_spearman"]["test-bright"] == pytest.approx(0.5)
    assert (out / "benchmark.md").read_text().count("| g-") >= 6 and (out / "benchmark.png").is_file()
    assert run_cli(argv) == 0 and loads["test-bright"] == 1  # the re-run is served by the cache
