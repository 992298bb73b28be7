"""``imreward benchmark`` with several scorers, FID and human labels on generated stand-in images."""

import json
import shutil

import numpy as np
import pytest
from eval.eval_helpers import write_gray_png
from eval.fid_helpers import write_pattern_image
from eval.test_cli import counting_scorers, run_cli  # noqa: F401  (fixture)

from imreward.eval.benchmark import generator_images
from imreward.eval.distinguishability import read_human_labels

SUFFIXES = {"g-bright": "png", "g-mid": "jpg", "g-dark": "webp"}


def make_generations(tmp_path):
    levels = {"g-bright": 220, "g-mid": 130, "g-dark": 40}
    for generator, level in levels.items():
        for prompt_id in range(2):
            path = tmp_path / "gens" / generator / f"{prompt_id}_0.{SUFFIXES[generator]}"
            write_pattern_image(path, prompt_id + 3 * list(levels).index(generator))
            from PIL import Image  # brightness drives the test scorers; pattern keeps Inception features apart

            pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
            Image.fromarray(np.clip(pixels // 4 + level, 0, 255).astype(np.uint8)).save(path, quality=100)
    (tmp_path / "prompts.json").write_text(json.dumps([{"id": i, "prompt": f"prompt {i}"} for i in range(2)]))
    (tmp_path / "human.json").write_text(json.dumps({"g-bright": 1, "g-mid": 2, "g-dark": 3}))
    labels = [{"id": str(i), "ranking": {f"{g}/{i}_0.{SUFFIXES[g]}": rank for rank, g in enumerate(levels, 1)}}
              for i in range(2)]
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(record) for record in labels))
    shutil.copytree(tmp_path / "gens" / "g-bright", tmp_path / "reference")


def test_benchmark_tabulates_scorers_and_fid_against_human_ranks(tmp_path, counting_scorers, seeded_fid_weights):  # noqa: F811
    loads, _ = counting_scorers
    make_generations(tmp_path)
    out = tmp_path / "bench"
    argv = ["benchmark", "--prompts", str(tmp_path / "prompts.json"), "--generations", str(tmp_path / "gens"),
            "--scorers", "test-bright,test-dark", "--fid-reference", str(tmp_path / "reference"),
            "--fid-weights", str(seeded_fid_weights), "--fid-bootstrap", "20", "--human-ranks",
            str(tmp_path / "human.json"), "--human-labels", str(tmp_path / "labels.jsonl"), "-o", str(out),
            "--bootstrap", "100", "-q"]
    assert run_cli(argv) == 0
    result = json.loads((out / "benchmark.json").read_text())
    assert result["metrics"] == ["test-bright", "test-dark", "FID"]
    assert result["rankings"]["test-bright"] == ["g-bright", "g-mid", "g-dark"]
    assert result["rankings"]["test-dark"] == ["g-dark", "g-mid", "g-bright"]
    assert result["human_spearman"] == pytest.approx({"test-bright": 1.0, "test-dark": -1.0,
                                                      "FID": result["human_spearman"]["FID"]})
    # The reference folder holds g-bright's own images, so its FID is zero and it ranks first.
    fid = {g: result["generators"][g]["FID"] for g in SUFFIXES}
    assert abs(fid["g-bright"]["value"]) < 1e-6 * fid["g-dark"]["value"] and fid["g-bright"]["rank"] == 1
    assert min(fid["g-mid"]["value"], fid["g-dark"]["value"]) > 1
    assert np.isnan([fid["g-dark"]["low"], fid["g-dark"]["high"]]).all()  # 2 images: no smaller set to resample
    assert result["fid"]["reference_images"] == 2 and "jackknife" in result["fid"]["interval"]
    assert result["generators"]["g-mid"]["images"] == 2  # .jpg and .webp images are found
    bright, dark = result["distinguishability"]["test-bright"], result["distinguishability"]["test-dark"]
    assert (bright["value"], bright["pairs"], bright["prompts"]) == (1.0, 6, 2) and dark["value"] == 0.0
    markdown = (out / "benchmark.md").read_text()
    assert "| generator | human rank | test-bright ↑ | test-dark ↑ | FID ↓ |" in markdown
    assert "| **Spearman ρ to human ranks** |  | **1.000** | **-1.000** |" in markdown
    assert (out / "benchmark.png").stat().st_size > 10_000

    # A re-run reads every score and every feature set from the caches.
    features = sorted((out / "fid-features").iterdir())
    mtimes = [path.stat().st_mtime_ns for path in features]
    assert run_cli(argv) == 0 and loads == {"test-bright": 1, "test-dark": 1}
    assert [path.stat().st_mtime_ns for path in sorted((out / "fid-features").iterdir())] == mtimes
    assert json.loads((out / "benchmark.json").read_text())["generators"] == result["generators"]


def test_image_names_and_human_label_errors(tmp_path):
    for name in ["1_0.PNG", "1_2.jpeg", "1_1.webp", "2_0.gif", "notes.txt", "10_0.jpg"]:
        write_gray_png(tmp_path / name, 10) if not name.endswith(".txt") else (tmp_path / name).write_text("x")
    assert {p: [path.name for path in paths] for p, paths in generator_images(tmp_path, ["1", "2"]).items()} == {
        "1": ["1_0.PNG", "1_1.webp", "1_2.jpeg"]}
    (tmp_path / "labels.json").write_text(json.dumps([{"id": 1, "ranking": {"1_0.png": 1}}]))
    with pytest.raises(ValueError, match="not named <generator>/<file name>"):
        read_human_labels(tmp_path / "labels.json")
    (tmp_path / "labels.json").write_text(json.dumps([{"id": 1}]))
    with pytest.raises(ValueError, match="expected records"):
        read_human_labels(tmp_path / "labels.json")
    command = ["benchmark", "--prompts", str(tmp_path / "p.json"), "--generations", str(tmp_path / "none"),
               "--scorers", "CLIP", "-o", str(tmp_path / "out"), "-q"]
    with pytest.raises(SystemExit, match="imreward benchmark: .*p.json"):
        run_cli(command)
    (tmp_path / "p.json").write_text(json.dumps([{"id": 1, "prompt": "a cat"}]))
    with pytest.raises(SystemExit, match="generations folder .*none does not exist"):
        run_cli(command)


def test_distinguishability_counts_only_cross_generator_pairs_with_a_human_order():
    from imreward.eval.distinguishability import distinguishability

    labels = {"p": {"a/1.png": 1, "a/2.png": 2, "b/1.png": 2, "c/1.png": 3},
              "q": {"a/1.png": 1, "b/1.png": 1, "c/1.png": 2}}
    scores = {"d/9.png": 9.0, "a/1.png": 3.0, "a/2.png": 0.0, "b/1.png": 2.0, "c/1.png": 2.0}
    result = distinguishability(labels, scores, n_resamples=50)
    # d/9.png has no human label: ignored. p: pairs a1>b1 (right), a1>c1 (right), a2>c1 (wrong), b1>c1 (tie in scores: wrong); a1-a2 is one
    # generator and a2-b1 a human tie, so neither counts. q: a1=b1 is a human tie; a1>c1 right, b1>c1 tied.
    assert result["per_prompt"] == {"p": 0.5, "q": 0.5} and (result["pairs"], result["prompts"]) == (6, 2)
    assert result["value"] == pytest.approx(3 / 6)
