"""Each benchmark as its own dataset card, loading script and evaluation code define it, checked on
fixtures in the published layouts: ImageRewardDB's archive-defined subsets, Pick-a-Pic's
``has_label`` and PickScore's tie-threshold protocol, HPSv2's all-tied prompts, a valid FID
interval, and local weights for every registered scorer name."""

import json
import math

import huggingface_hub.constants  # noqa: F401  read before any test sets HF_HUB_OFFLINE (the library reads it once)
import numpy as np
import pytest
from published_datasets import write_hpdv2, write_imagerewarddb, write_pickapic

import imreward
from imreward.data import load_preference_data, read_imagerewarddb, read_pickapic
from imreward.errors import UnknownScorerError
from imreward.eval.benchmarks import TIE_THRESHOLDS, pair_credits, tune_tie_threshold
from imreward.eval.fid import FidAgainstReference, ReferenceStatistics
from imreward.hub import check_scorer

from .test_benchmark_table import brightness_scorers  # noqa: F401  (fixture)
from .test_cli import run_cli


def test_imagerewarddb_subsets_are_the_loading_scripts_archives(tmp_path):
    # train_1 ... train_5 hold 3, 2, 3, 2, 3 prompts; the script's 1K subset is train_1 ... train_4.
    root = write_imagerewarddb(tmp_path / "db", split="train", archive_sizes=(3, 2, 3, 2, 3))
    records, stats = read_imagerewarddb(root, "train", subset="1k")
    assert (stats.prompts, stats.images, stats.pairs) == (10, 30, 2 + 9 * 3)
    archives = {source.path.rsplit("/", 1)[1] for record in records for source in record.images}
    assert archives == {"train_1.zip", "train_2.zip", "train_3.zip", "train_4.zip"}
    every, _ = read_imagerewarddb(root, "train", subset="8k")
    assert len(every) == 13
    validation = write_imagerewarddb(tmp_path / "db", split="validation", prompts=2)
    assert len(read_imagerewarddb(validation, "validation", subset="1k")[0]) == 2  # subsets only cut train


def test_pickapic_rows_without_a_label_are_dropped_and_counted(tmp_path, brightness_scorers):  # noqa: F811
    root = write_pickapic(tmp_path / "pick", split="test_unique",
                          labels=((1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (1.0, 0.0)), unlabelled=(1,))
    records, stats = read_pickapic(root, "test_unique")
    assert [record.ranks for record in records] == [(1, 2), (1, 1), (1, 2)] and stats.unlabelled == 1
    out = tmp_path / "table"
    assert run_cli(["eval", "--benchmarks", "pickapic-test-unique", "--benchmark-data",
                    f"pickapic-test-unique={root}", "--scorers", "test-dark", "--tie-rule", "paper",
                    "-o", str(out), "--bootstrap", "20", "-q"]) == 0
    entry = json.loads((out / "table.json").read_text())["benchmarks"]["pickapic-test-unique"]
    assert (entry["prompts"], entry["unlabelled_rows"]) == (3, 1)
    assert entry["accuracy"]["test-dark"]["value"] == pytest.approx(1 / 3)  # the kept tie: both tie
    assert "1 unlabelled rows dropped" in (out / "table.md").read_text()
    assert run_cli(["eval", "--data", str(root), "--split", "test_unique", "--scorers", "test-dark", "-o",
                    str(tmp_path / "plain"), "--bootstrap", "20", "-q"]) == 0
    report = json.loads((tmp_path / "plain" / "report.json").read_text())["prompts"]
    assert (report["total"], report["unlabelled_rows"]) == (3, 1)


def test_hpdv2_keeps_prompts_whose_ranks_all_tie_under_the_paper_rule(tmp_path, brightness_scorers):  # noqa: F811
    root = write_hpdv2(tmp_path / "hpd", prompts=4, tied=(3,))
    records, _ = load_preference_data(root, "test", policy="eval")
    assert [record.ranks for record in records][3] == (0, 0, 0, 0)
    out = tmp_path / "table"
    common = ["eval", "--benchmarks", "hpdv2-test", "--benchmark-data", f"hpdv2-test={root}", "--scorers",
              "test-dark", "-o", str(out), "--bootstrap", "20", "-q"]
    assert run_cli(common + ["--tie-rule", "paper"]) == 0
    entry = json.loads((out / "table.json").read_text())["benchmarks"]["hpdv2-test"]
    # HPSv2's evaluate_rank: 1 - discordant / all pairs per prompt, averaged: the tied prompt scores 1.0.
    assert entry["prompts"] == 4 and entry["accuracy"]["test-dark"]["value"] == pytest.approx(0.25)
    assert run_cli(common) == 0  # the default rule compares ranked pairs only
    entry = json.loads((out / "table.json").read_text())["benchmarks"]["hpdv2-test"]
    assert (entry["prompts"], entry["accuracy"]["test-dark"]["value"]) == (3, 0.0)
    assert run_cli(["eval", "--data", str(root), "--scorers", "test-dark", "-o", str(tmp_path / "plain"),
                    "--bootstrap", "20", "-q"]) == 0  # R@k would reward the tied prompt for nothing
    report = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert report["prompts"]["evaluated"] == 3 and report["skipped"][0]["reason"] == "every image tied (no pair)"


def _pickscore_script_accuracy(labels, probabilities, threshold):
    """PickScore's ``eval_preference_predictor.py`` rules (get_label, get_pred, calc_score, calc_acc)."""
    credits = []
    for (label_0, _), (prob_0, prob_1) in zip(labels, probabilities):
        label = "tie" if label_0 == 0.5 else "0" if label_0 == 1 else "1"
        pred = "tie" if abs(prob_1 - prob_0) <= threshold else "0" if prob_0 > prob_1 else "1"
        credits.append(1 if label == pred else 0.5 if "tie" in (label, pred) else 0)
    return sum(credits) / len(credits)


def test_the_pickapic_rule_with_a_threshold_is_pickscores_script():
    rng = np.random.default_rng(0)
    labels = [((1.0, 0.0), (0.0, 1.0), (0.5, 0.5))[k] for k in rng.integers(0, 3, 200)]
    scores = rng.normal(0, 1.5, (200, 2))
    probabilities = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    ranks = [(1, 2) if a > b else (2, 1) if b > a else (1, 1) for a, b in labels]
    for threshold in TIE_THRESHOLDS:
        ours = sum(pair_credits(r, s, "half-credit", threshold)[0] for r, s in zip(ranks, scores)) / len(ranks)
        assert ours == pytest.approx(_pickscore_script_accuracy(labels, probabilities, threshold))
    best, accuracies = tune_tie_threshold(ranks, scores)
    script = [_pickscore_script_accuracy(labels, probabilities, t) for t in TIE_THRESHOLDS]
    assert best == TIE_THRESHOLDS[int(np.argmax(script))] and list(accuracies.values()) == pytest.approx(script)


def test_pickapic_tie_threshold_is_tuned_on_validation_unique_or_given(tmp_path, brightness_scorers):  # noqa: F811
    # Human ties are near-equal images (levels 128 and 132): the bright scorer ties them from t = 0.1,
    # and gives up its clear choices (200 vs 60) from t = 0.3; so 0.1 is the first best on validation.
    root = tmp_path / "pick"
    write_pickapic(root, split="validation_unique", labels=((1.0, 0.0), (0.5, 0.5), (0.0, 1.0), (0.5, 0.5)),
                   tie_levels=(128, 132))
    write_pickapic(root, split="test_unique", labels=((1.0, 0.0), (0.5, 0.5), (0.0, 1.0), (0.5, 0.5), (1.0, 0.0)),
                   tie_levels=(132, 128))
    out = tmp_path / "table"
    common = ["eval", "--benchmarks", "pickapic-test-unique", "--benchmark-data", f"pickapic-test-unique={root}",
              "--scorers", "test-bright", "--tie-rule", "paper", "-o", str(out), "--bootstrap", "20", "-q"]
    assert run_cli(common + ["--tie-threshold", "auto"]) == 0
    cell = json.loads((out / "table.json").read_text())["benchmarks"]["pickapic-test-unique"]["accuracy"]["test-bright"]
    assert cell["tie_threshold"]["value"] == 0.1 and cell["tie_threshold"]["source"] == "tuned on validation_unique"
    assert cell["tie_threshold"]["validation_accuracy"]["0"] == 0.75 and cell["value"] == 1.0
    assert "[t=0.1, tuned]" in (out / "table.md").read_text()
    assert run_cli(common) == 0  # default: only equal scores tie, so each human tie earns half
    cell = json.loads((out / "table.json").read_text())["benchmarks"]["pickapic-test-unique"]["accuracy"]["test-bright"]
    assert (cell["value"], cell["tie_threshold"]["value"]) == (0.8, 0.0)
    assert run_cli(common + ["--tie-threshold", "0.5"]) == 0  # given: the choices tie too
    cell = json.loads((out / "table.json").read_text())["benchmarks"]["pickapic-test-unique"]["accuracy"]["test-bright"]
    assert (cell["value"], cell["tie_threshold"]["source"]) == (pytest.approx(0.7), "given")
    with pytest.raises(SystemExit, match="add --tie-rule paper"):
        run_cli([item for item in common if item not in ("--tie-rule", "paper")] + ["--tie-threshold", "auto"])


def test_the_fid_interval_holds_the_fid_and_follows_the_jackknife():
    rng = np.random.default_rng(0)
    reference = ReferenceStatistics.from_features(rng.normal(0, 1, (200, 6)))
    metric = FidAgainstReference(reference)
    for seed in range(12):  # small image sets, where resampling with replacement biased every resample upwards
        features = rng.normal(0.3, 1.0, (10, 6))
        value = metric.fid(features)
        low, high = metric.interval(features, n_resamples=200, seed=seed)
        assert low <= value <= high
        assert high - value == pytest.approx(value - low) or low == 0.0  # centred on the FID, cut at 0
    # The delete-d jackknife over every half of 8 images, against the sampled halves.
    import itertools

    features = rng.normal(0.5, 1.0, (8, 6))
    halves = [metric.fid(features[list(half)]) for half in itertools.combinations(range(8), 4)]
    exact = 1.959964 * math.sqrt(np.var(halves))  # r / d = 1 for halves
    low, high = metric.interval(features, n_resamples=3000, seed=1)
    assert (high - low) / 2 == pytest.approx(exact, rel=0.1)
    assert metric.interval(features[:2]) == (pytest.approx(math.nan, nan_ok=True),) * 2


def test_every_scorer_name_takes_local_weights_as_name_equals_path(tmp_path, tiny_clip_file):
    path, _ = tiny_clip_file
    image = tmp_path / "gray.png"
    from eval.eval_helpers import write_gray_png

    write_gray_png(image, 90)
    by_spec = imreward.load_scorer(f"CLIP={path}", device="cpu").score("a cat", str(image))
    by_option = imreward.load_score("CLIP", device="cpu", checkpoint=path).score("a cat", str(image))
    assert by_spec == pytest.approx(by_option)
    with pytest.raises(UnknownScorerError, match="does not exist"):
        check_scorer(f"CLIP={tmp_path / 'missing.pt'}")
    with pytest.raises(UnknownScorerError, match="not a registered scorer"):
        check_scorer(f"Nope={path}")
    # An ImageReward checkpoint for the registered name, as save_pretrained writes it.
    from imreward.testing import tiny_model

    folder = tmp_path / "tiny-ir"
    tiny_model().save_pretrained(folder)
    assert isinstance(imreward.load_scorer(f"ImageReward-v1.0={folder}", device="cpu"), imreward.ImageReward)
    out = tmp_path / "eval"
    data = write_pickapic(tmp_path / "pick", split="test_unique")
    assert run_cli(["eval", "--data", str(data), "--split", "test_unique", "--scorers", f"CLIP={path}",
                    "--device", "cpu", "-o", str(out), "--bootstrap", "20", "-q"]) == 0
    assert f"CLIP={path}" in json.loads((out / "report.json").read_text())["metrics"]
