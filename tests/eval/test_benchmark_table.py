"""``imreward eval --benchmarks``: the accuracy table over the public benchmarks, tie rules, the
score cache across scorers and benchmarks, and --dtype reaching the scorer."""

import json

import huggingface_hub.constants  # noqa: F401  read before any test sets HF_HUB_OFFLINE (the library reads it once)
import pytest
from eval.eval_helpers import BrightnessScorer
from published_datasets import hub_snapshot, write_hpdv2, write_imagerewarddb, write_pickapic

import imreward
from imreward.eval.benchmarks import BENCHMARKS, benchmark_accuracy, pair_credits

from .test_cli import run_cli


@pytest.mark.parametrize("rule, ranks, scores, expected", [
    ("drop", [1, 1, 2], [3.0, 2.0, 1.0], (2.0, 2)),          # the human tie is left out
    ("drop", [1, 2], [1.0, 1.0], (0.0, 1)),                  # a model tie is wrong
    ("concordance", [1, 1, 2], [3.0, 2.0, 1.0], (3.0, 3)),   # a tie on either side is not discordant
    ("concordance", [1, 2, 3], [1.0, 2.0, 2.0], (1.0, 3)),
    ("half-credit", [1, 1], [2.0, 1.0], (0.5, 1)),           # human tie, model prefers one
    ("half-credit", [1, 1], [1.0, 1.0], (1.0, 1)),           # both tie
    ("half-credit", [1, 2], [1.0, 1.0], (0.5, 1)),           # model tie only
    ("half-credit", [2, 1], [2.0, 1.0], (0.0, 1)),           # opposite choice
])
def test_pair_credits_follow_each_rule(rule, ranks, scores, expected):
    assert pair_credits(ranks, scores, rule) == expected


def test_prompt_average_differs_from_the_pooled_one():
    rankings, scores = [[1, 2, 3], [1, 2]], [[3.0, 2.0, 1.0], [1.0, 2.0]]
    pooled = benchmark_accuracy(rankings, scores, "drop", "pairs", n_resamples=50)
    per_prompt = benchmark_accuracy(rankings, scores, "drop", "prompts", n_resamples=50)
    assert (pooled.value, per_prompt.value, pooled.pairs) == (0.75, 0.5, 4)
    assert pooled.low <= pooled.value <= pooled.high


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """The three benchmarks' test splits in an offline hub cache, their ranks following brightness."""
    cache = tmp_path / "hub"
    write_imagerewarddb(hub_snapshot(cache, "THUDM/ImageRewardDB"), split="test", prompts=4)
    write_hpdv2(hub_snapshot(cache, "ymhao/HPDv2"), prompts=3)
    write_pickapic(hub_snapshot(cache, "yuvalkirstain/pickapic_v2"), split="test_unique")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def brightness_scorers():
    """``test-bright`` agrees with every fixture's humans, ``test-dark`` disagrees; records loads and dtypes."""
    loads = []
    instances = {"test-bright": BrightnessScorer(1.0), "test-dark": BrightnessScorer(-1.0)}

    def factory(name, device=None, download_root=None, dtype=None):
        loads.append((name, dtype))
        return instances[name]

    for name in instances:
        imreward.register_scorer(name, factory, overwrite=True)
    return loads, instances


def test_one_table_over_three_benchmarks_with_cache_and_tie_rules(tmp_path, hub_cache, brightness_scorers):
    loads, instances = brightness_scorers
    out = tmp_path / "table"
    common = ["eval", "-o", str(out), "--bootstrap", "100", "-q"]
    assert run_cli(common + ["--benchmarks", "imagereward-test,pickapic-test-unique", "--scorers", "test-bright",
                             "--dtype", "bfloat16"]) == 0
    assert loads == [("test-bright", "bfloat16")]
    table = json.loads((out / "table.json").read_text())
    image = table["benchmarks"]["imagereward-test"]
    assert (image["pairs"], image["rule"], image["split"]) == (2 + 3 * 3, "drop", "test")
    assert image["accuracy"]["test-bright"]["value"] == 1.0
    pick = table["benchmarks"]["pickapic-test-unique"]
    assert pick["pairs"] == 3 and pick["split"] == "test_unique"  # the tie is dropped
    assert (out / "table.png").stat().st_size > 5_000
    markdown = (out / "table.md").read_text()
    assert "imagereward-test<br>test, 11 pairs" in markdown and "| test-bright | 100.00 (" in markdown
    assert "Tie rule: **drop**" in markdown

    # Adding a scorer and a benchmark computes only the new scores (at the same dtype: part of the key).
    scored_before = instances["test-bright"].images_scored
    assert run_cli(common + ["--benchmarks", "imagereward-test,hpdv2-test,pickapic-test-unique",
                             "--scorers", "test-bright,test-dark", "--dtype", "bfloat16"]) == 0
    table = json.loads((out / "table.json").read_text())
    assert instances["test-bright"].images_scored - scored_before == 3 * 4  # only HPD v2's images
    assert table["benchmarks"]["imagereward-test"]["cache"]["test-bright"] == {"hits": 12, "computed": 0}
    assert table["benchmarks"]["hpdv2-test"]["accuracy"]["test-dark"]["value"] == 0.0

    # The papers' rules: Pick-a-Pic keeps the tie (half credit for a one-sided tie).
    assert run_cli(common + ["--benchmarks", "pickapic-test-unique,hpdv2-test", "--scorers", "test-bright",
                             "--tie-rule", "paper"]) == 0
    table = json.loads((out / "table.json").read_text())
    pick = table["benchmarks"]["pickapic-test-unique"]
    assert (pick["pairs"], pick["rule"]) == (4, "half-credit")
    assert pick["accuracy"]["test-bright"]["value"] == 1.0  # equal images: the model ties too
    assert table["benchmarks"]["hpdv2-test"]["rule"] == "concordance"
    assert "Pick-a-Pic (Kirstain et al. 2023)" in (out / "table.md").read_text()


def test_a_benchmark_reads_a_local_copy_and_unknown_names_are_refused(tmp_path, brightness_scorers):
    local = write_pickapic(tmp_path / "pick-local", split="test")
    out = tmp_path / "table"
    assert run_cli(["eval", "--benchmarks", "pickapic-test", "--benchmark-data", f"pickapic-test={local}",
                    "--scorers", "test-dark", "-o", str(out), "--bootstrap", "50", "-q"]) == 0
    table = json.loads((out / "table.json").read_text())
    assert table["benchmarks"]["pickapic-test"]["accuracy"]["test-dark"]["value"] == 0.0
    assert table["benchmarks"]["pickapic-test"]["dataset"] == str(local)
    with pytest.raises(SystemExit, match="unknown benchmarks nope"):
        run_cli(["eval", "--benchmarks", "nope", "--scorers", "test-dark", "-o", str(out)])
    assert set(BENCHMARKS) >= {"imagereward-test", "hpdv2-test", "pickapic-test-unique"}


def test_missing_and_undecodable_images_skip_their_prompts_in_the_table(tmp_path, brightness_scorers):
    import zipfile

    local = write_imagerewarddb(tmp_path / "db", split="test", prompts=4, per_zip=4)
    archive = local / "images/test/test_1.zip"
    with zipfile.ZipFile(archive) as opened:
        members = {name: opened.read(name) for name in opened.namelist()}
    names = sorted(members)
    members[names[4]] = b"not an image"  # prompt 1
    del members[names[9]]  # prompt 3
    with zipfile.ZipFile(archive, "w") as opened:
        for name, data in members.items():
            opened.writestr(name, data)
    out = tmp_path / "table"
    assert run_cli(["eval", "--benchmarks", "imagereward-test", "--benchmark-data", f"imagereward-test={local}",
                    "--scorers", "test-bright,test-dark", "-o", str(out), "--bootstrap", "50", "-q"]) == 0
    entry = json.loads((out / "table.json").read_text())["benchmarks"]["imagereward-test"]
    assert [(item["id"], item["reason"]) for item in entry["skipped"]] == [
        ("test-000003", "missing image"), ("test-000001", "unreadable image")]
    assert (entry["prompts"], entry["pairs"]) == (2, 2 + 3)  # prompts 0 (with its tie) and 2, for both scorers
    assert entry["accuracy"]["test-bright"]["value"] == 1.0 and entry["accuracy"]["test-dark"]["value"] == 0.0


def test_eval_data_dtype_reaches_the_scorer(tmp_path, brightness_scorers):
    loads, _ = brightness_scorers
    local = write_imagerewarddb(tmp_path / "db", split="test", prompts=2)
    assert run_cli(["eval", "--data", str(local), "--scorers", "test-bright", "--dtype", "float16",
                    "-o", str(tmp_path / "out"), "--bootstrap", "50", "-q"]) == 0
    assert loads == [("test-bright", "float16")]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["metrics"]["test-bright"]["accuracy"]["value"] == 1.0


def test_benchmark_dtype_reaches_the_scorer(tmp_path, brightness_scorers):
    from eval.eval_helpers import write_gray_png

    loads, _ = brightness_scorers
    (tmp_path / "prompts.json").write_text(json.dumps([{"id": 0, "prompt": "p"}]))
    for generator, level in (("g-a", 200), ("g-b", 40)):
        write_gray_png(tmp_path / "gens" / generator / "0_0.png", level)
    assert run_cli(["benchmark", "--prompts", str(tmp_path / "prompts.json"), "--generations", str(tmp_path / "gens"),
                    "--model", "test-bright", "--dtype", "bfloat16", "-o", str(tmp_path / "bench"),
                    "--bootstrap", "20", "-q"]) == 0
    assert loads == [("test-bright", "bfloat16")]
