"""The Ray engine on the session's local Ray cluster: the local engine's results row for row, a
scoring worker killed mid-run and a driver killed and rerun with every row exactly once, and
``ImRewardScorer`` in a user's own Ray Data pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import imreward
from batch.results import READING, assert_same_rows, shard_rows
from batch.shard_files import image_bytes, write_webdataset
from imreward.ray import ImRewardScorer, RayOptions

SCORING_WORKER = "MapBatches(ImRewardScorer)"


def scoring_workers() -> set[int]:
    """Process ids of this machine's Ray workers that hold an ``ImRewardScorer`` (from their titles)."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                title = stream.read().decode(errors="replace")
        except OSError:
            continue
        if entry.isdigit() and title.startswith("ray::") and SCORING_WORKER in title:
            found.add(int(entry))
    return found


def test_ray_engine_equals_the_local_engine_with_a_worker_killed(ray_cluster, local_results, webdataset_shards,
                                                                   tiny_dir, tmp_path):
    output = tmp_path / "out"
    run = threading.Thread(target=imreward.score_shards, args=(webdataset_shards[0].parent, output, [str(tiny_dir)]),
                           kwargs={"engine": "ray", "reading": READING, "batch_size": 8,
                                   "ray": RayOptions(actors=2), "progress": False})
    run.start()
    deadline, seen, killed = time.monotonic() + 300, set(), None
    while run.is_alive() and time.monotonic() < deadline and killed is None:
        seen |= scoring_workers()
        if len(seen) >= 2 and any(output.glob("*.parquet")):
            killed = min(seen)
            os.kill(killed, signal.SIGKILL)  # Ray restarts the actor and retries its batches
        time.sleep(0.02)
    run.join(timeout=300)
    assert not run.is_alive() and len(seen) >= 2
    assert_same_rows(shard_rows(output), shard_rows(local_results))
    summary = json.loads((output / "_summary.json").read_text())
    assert summary["rows"] >= 240 and summary["complete"] and summary["engine"] == "ray"


def test_driver_killed_and_rerun_writes_every_row_once(ray_cluster, tiny_dir, tmp_path):
    shards = write_webdataset(tmp_path / "wds", shards=8, rows=12)
    output = tmp_path / "out"
    arguments = ["score-dataset", str(shards[0].parent), "--model", str(tiny_dir), "-o", str(output), "--device",
                 "cpu", "-q", "--engine", "ray", "--actors", "2", "--batch-size", "4"]
    driver = subprocess.Popen([sys.executable, "-m", "imreward.cli", *arguments, "--ray-address",
                               ray_cluster.address_info["address"]], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not any(output.glob("*.parquet")) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    written = len(list(output.glob("*.parquet")))
    assert 1 <= written < 8  # killed mid-run
    from imreward.cli import main as cli_main

    assert cli_main([*arguments, "--merge", str(tmp_path / "all.jsonl")]) == 0  # joins the running Ray
    rows = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert [row["key"] for row in rows] == [f"{shard:05d}{row:04d}" for shard in range(8) for row in range(12)]
    summary = json.loads((output / "_summary.json").read_text())
    assert summary["shards_skipped"] == written and summary["shards_done"] == 8 - written


def test_imrewardscorer_in_a_users_ray_data_pipeline(ray_cluster, tiny_dir):
    import ray

    prompts = ["a red door", "two dogs", "a mountain lake"] * 4
    images = [image_bytes(seed, "PNG" if seed % 2 else "JPEG") for seed in range(len(prompts))]
    images[5] = b"not an image"
    dataset = ray.data.from_items([{"image": {"bytes": data, "path": f"{index}.img"}, "prompt": prompt, "id": index}
                                   for index, (prompt, data) in enumerate(zip(prompts, images))])
    scored = dataset.map_batches(ImRewardScorer, fn_constructor_kwargs={"models": [str(tiny_dir)], "device": "cpu"},
                                 concurrency=2, batch_size=4).take_all()
    scored.sort(key=lambda row: row["id"])
    model = imreward.load(tiny_dir, device="cpu")
    good = [index for index in range(len(prompts)) if index != 5]
    expected = model.score_batch([prompts[i] for i in good], [images[i] for i in good])
    assert [scored[i]["score"] for i in good] == pytest.approx(expected, abs=1e-5)
    assert scored[5]["error"] is not None and "cannot decode" in scored[5]["error"]
    assert all(scored[i]["error"] is None for i in good)
