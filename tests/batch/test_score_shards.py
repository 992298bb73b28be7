"""score_shards with the local engine: per-shard files, bad members as row errors, resume after a
crash or a damaged file with every row exactly once, other models refused, merging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import imreward
from batch.results import READING, SHARDS, assert_same_rows, shard_rows
from batch.shard_files import NO_CAPTION, NO_IMAGE, NOT_AN_IMAGE, TRUNCATED_JPEG, image_bytes, samples
from imreward.batch.outputs import RunMismatch
from imreward.cli import main as cli_main
from imreward.data.shards import ShardOptions
from imreward.testing import tiny_model


def test_webdataset_rows_scored_with_errors_naming_shard_and_member(local_results, tiny_dir):
    results = shard_rows(local_results)
    expected = samples(3, 80)
    for name, rows, wanted in zip(SHARDS, results.values(), expected):
        assert [row["key"] for row in rows] == [sample["key"] for sample in wanted]
        assert [row["url"] for row in rows] == [sample["url"] for sample in wanted]
    bad = {TRUNCATED_JPEG: "00000.tar:000000003.jpg: ", NOT_AN_IMAGE: "00001.tar:000010005.png: ",
           NO_CAPTION: "00001.tar: sample 000010008: no prompt", NO_IMAGE: "00002.tar: sample 000020002: no image"}
    for (shard, row), message in bad.items():
        found = results[SHARDS[shard]][row]
        assert found["score"] is None and message in found["error"], found
    assert "cannot decode" in results["00000"][3]["error"]
    assert sum(row["error"] is not None for rows in results.values() for row in rows) == len(bad)
    good = [(row, sample) for row, sample in zip(results["00002"], expected[2]) if row["error"] is None][:20]
    model = imreward.load(tiny_dir, device="cpu")
    reference = model.score_batch([sample["prompt"] for _, sample in good], [sample["image"] for _, sample in good])
    assert [row["score"] for row, _ in good] == pytest.approx(reference, abs=1e-5)
    summary = json.loads((local_results / "_summary.json").read_text())
    assert summary["rows"] == 240 and summary["shards_done"] == 3 and summary["complete"]
    assert summary["failed_by_reason"] == {"no_image": 1, "no_prompt": 1, "undecodable": 2}
    manifest = json.loads((local_results / "_manifest.json").read_text())
    assert manifest["models"][0]["weights_sha256"] and manifest["models"][0]["dtype"] == "torch.float32"


def test_parquet_shards_score_like_the_same_webdataset(local_results, parquet_shards, tiny_dir, tmp_path):
    output = imreward.score_shards([str(path) for path in parquet_shards], tmp_path / "out", [str(tiny_dir)],
                                   reading=ShardOptions(keep_columns=("prompt", "url")), batch_size=16,
                                   num_workers=0, progress=False)
    assert_same_rows(shard_rows(output), shard_rows(local_results), same_errors=False)


def test_resume_sets_a_truncated_file_aside_and_rescores_only_its_shard(local_results, webdataset_shards, tiny_dir,
                                                                         tmp_path, capfd):
    output = tmp_path / "out"
    output.mkdir()
    for name in ("_manifest.json", *[f"{shard}.parquet" for shard in SHARDS]):
        (output / name).write_bytes((local_results / name).read_bytes())
    damaged = output / "00001.parquet"
    damaged.write_bytes(damaged.read_bytes()[:300])
    kept = os.stat(output / "00000.parquet").st_mtime_ns
    imreward.score_shards(webdataset_shards[0].parent, output, [str(tiny_dir)], reading=READING, num_workers=0,
                          progress=False)
    error = capfd.readouterr().err
    assert f"{damaged}: unreadable result" in error and "its shard is scored again" in error
    assert [path.name.split(".parquet.")[0] for path in (output / "_set_aside").iterdir()] == ["00001"]
    assert_same_rows(shard_rows(output), shard_rows(local_results))
    assert os.stat(output / "00000.parquet").st_mtime_ns == kept
    summary = json.loads((output / "_summary.json").read_text())
    assert (summary["shards_skipped"], summary["shards_done"], summary["rows"]) == (2, 1, 80)
    other = tmp_path / "other"
    tiny_model(seed=1).save_pretrained(other)
    with pytest.raises(RunMismatch, match="other models"):
        imreward.score_shards(webdataset_shards[0].parent, output, [f"{tiny_dir.name}={other}"], reading=READING,
                              num_workers=0, progress=False)
    with pytest.raises(RunMismatch, match="other models or columns"):
        imreward.score_shards(webdataset_shards[0].parent, output, [str(tiny_dir)], num_workers=0, progress=False)


def test_killed_run_resumes_with_every_row_once(tiny_dir, tmp_path):
    """A folder tree of 240 images in 12 shards; the first run is killed after two shards."""
    data = tmp_path / "images"
    for index in range(240):
        folder = data / f"{index // 40:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:04d}.jpg").write_bytes(image_bytes(index))
    (data / "prompt.txt").write_text("a generated image")
    output = tmp_path / "scores.jsonl"
    shards = tmp_path / "scores.jsonl.shards"
    arguments = ["score-dataset", str(data), "--model", str(tiny_dir), "--output", str(output), "--device", "cpu",
                 "-q", "--batch-size", "8", "--rows-per-shard", "20"]
    first = subprocess.Popen([sys.executable, "-m", "imreward.cli", *arguments, "--num-workers", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while len(list(shards.glob("*.parquet"))) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    written = len(list(shards.glob("*.parquet")))
    assert 2 <= written < 12 and not output.exists()  # killed mid-run
    assert cli_main([*arguments, "--num-workers", "0"]) == 0  # resumed in this process: one start-up less
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["key"] for row in rows] == [f"{index // 40:02d}/{index:04d}.jpg" for index in range(240)]
    assert all(row["score"] is not None for row in rows)
