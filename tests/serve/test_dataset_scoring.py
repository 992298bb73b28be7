"""score-dataset: input layouts, kill + restart with every row exactly once, 2-rank torchrun = 1 process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import imreward
from imreward.cli import main as cli_main
from imreward.serve.dataset_inputs import image_source, read_rows
from serve.serve_helpers import encoded_image

PROMPTS = ["a lighthouse at dusk", "two cats", "a bowl of ramen", "an astronaut riding a horse"]
KILL_ROWS = 2000


def run_score_dataset(arguments: list[str], launcher: list[str] | None = None, **popen) -> subprocess.Popen:
    command = [*(launcher or [sys.executable]), "-m", "imreward.cli", "score-dataset", "--device", "cpu", "-q",
               *arguments]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, **popen)


def finish(process: subprocess.Popen, timeout: float = 120.0) -> str:
    output = process.communicate(timeout=timeout)[0].decode()
    assert process.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """KILL_ROWS small JPEG/PNG files, one of them corrupt, in a JSON-lines manifest."""
    folder = tmp_path_factory.mktemp("dataset")
    with open(folder / "manifest.jsonl", "w") as stream:
        for index in range(KILL_ROWS):
            name = f"images/{index:05d}.{'png' if index % 5 == 0 else 'jpg'}"
            (folder / name).parent.mkdir(exist_ok=True)
            data = b"broken" if index == 7 else encoded_image(index, (40, 36), "PNG" if index % 5 == 0 else "JPEG")
            (folder / name).write_bytes(data)
            stream.write(json.dumps({"prompt": PROMPTS[index % len(PROMPTS)], "image": name}) + "\n")
    return folder / "manifest.jsonl"


def test_folder_tree_uses_sidecar_then_nearest_prompt_txt(tmp_path):
    (tmp_path / "cats" / "night").mkdir(parents=True)
    (tmp_path / "cats" / "prompt.txt").write_text("a cat\n")
    (tmp_path / "cats" / "a.png").write_bytes(b"")
    (tmp_path / "cats" / "night" / "b.jpg").write_bytes(b"")
    (tmp_path / "cats" / "night" / "c.webp").write_bytes(b"")
    (tmp_path / "cats" / "night" / "c.txt").write_text("a cat at night")
    rows = read_rows(tmp_path)
    assert [(row.key, row.prompt, Path(row.image).name) for row in rows] == [
        (0, "a cat", "a.png"), (1, "a cat", "b.jpg"), (2, "a cat at night", "c.webp")]
    (tmp_path / "lost.png").write_bytes(b"")
    with pytest.raises(ValueError, match="lost.png: no prompt"):
        read_rows(tmp_path)


def test_manifests_and_imagerewarddb_with_zip(tmp_path):
    (tmp_path / "m.csv").write_text("prompt,image\nfirst,x/1.png\nsecond,x/2.png\n")
    pq.write_table(pa.table({"prompt": ["p"], "image_path": ["y.jpg"]}), tmp_path / "m.parquet")
    assert [(r.prompt, r.image) for r in read_rows(tmp_path / "m.csv")] == [
        ("first", str(tmp_path / "x/1.png")), ("second", str(tmp_path / "x/2.png"))]
    assert read_rows(tmp_path / "m.parquet")[0].image == str(tmp_path / "y.jpg")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "p"}\n')
    with pytest.raises(ValueError, match="row 1 needs"):
        read_rows(tmp_path / "bad.jsonl")

    db = tmp_path / "db"
    (db / "images" / "train").mkdir(parents=True)
    (db / "images" / "train" / "on_disk.png").write_bytes(b"disk")
    with zipfile.ZipFile(db / "images" / "train" / "train_1.zip", "w") as archive:
        archive.writestr("train_1/zipped.png", b"zip bytes")
    pq.write_table(pa.table({"prompt": ["a", "b"], "prompt_id": ["0", "0"],
                             "image_path": ["images/train/on_disk.png", "images/train/train_1/zipped.png"]}),
                   db / "metadata-train.parquet")
    rows = read_rows(db)
    assert [row.prompt for row in rows] == ["a", "b"]
    assert image_source(rows[0].image) == str(db / "images/train/on_disk.png")
    assert image_source(rows[1].image) == b"zip bytes"


@pytest.mark.slow
def test_killed_run_restarts_and_writes_every_row_once(manifest, tmp_path, model_dirs, capsys):
    output = tmp_path / "scores.parquet"
    parts = tmp_path / "scores.parquet.parts"
    arguments = [str(manifest), "--model", str(model_dirs["tiny"]), "--output", str(output),
                 "--batch-size", "25", "--rows-per-part", "50"]
    in_process = ["score-dataset", *arguments, "--num-workers", "0", "--device", "cpu", "-q"]
    first = run_score_dataset([*arguments, "--num-workers", "1"])
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*.parquet"))) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    committed = len(list(parts.glob("part-*.parquet")))
    assert 2 <= committed < KILL_ROWS // 50 and not output.exists()  # killed mid-run

    assert cli_main(in_process) == 0  # resumed in this process: one start-up less
    assert "resuming" in capsys.readouterr().err
    table = pq.read_table(output)
    assert table.column("key").to_pylist() == list(range(KILL_ROWS))
    assert not parts.exists()
    rows = table.to_pylist()
    assert rows[7]["score"] is None and "cannot decode" in rows[7]["error"]
    sample = [row for row in rows[:60] if row["key"] != 7]
    model = imreward.load(model_dirs["tiny"], device="cpu")
    expected = model.score_batch([row["prompt"] for row in sample], [row["image"] for row in sample])
    assert [row["score"] for row in sample] == pytest.approx(expected, abs=1e-5)

    with pytest.raises(SystemExit, match="already exists"):
        cli_main(in_process)


@pytest.mark.slow
def test_two_rank_torchrun_matches_one_process(manifest, tmp_path, model_dirs):
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(manifest.read_text().splitlines(keepends=True)[:300]))
    (tmp_path / "images").symlink_to(manifest.parent / "images")
    common = ["--model", str(model_dirs["tiny"]), "--batch-size", "32", "--num-workers", "0"]
    assert cli_main(["score-dataset", str(subset), "--output", str(tmp_path / "one.jsonl"), "--device", "cpu", "-q",
                     *common]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    finish(run_score_dataset([str(subset), "--output", str(tmp_path / "two.jsonl"), *common], launcher=torchrun))
    one = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    two = [json.loads(line) for line in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert [row["key"] for row in two] == list(range(300))
    assert [row["error"] is None for row in two] == [row["error"] is None for row in one]
    scored = [(a["score"], b["score"]) for a, b in zip(one, two) if a["score"] is not None]
    assert [b for _, b in scored] == pytest.approx([a for a, _ in scored], abs=1e-5)


def test_published_datasets_by_hub_id_and_local_copy(tmp_path, monkeypatch):
    import huggingface_hub.constants  # noqa: F401  read before HF_HUB_OFFLINE is set (the library reads it once)
    from published_datasets import gray_image, hub_snapshot, write_hpdv2, write_pickapic

    cache = tmp_path / "hub"
    write_pickapic(hub_snapshot(cache, "yuvalkirstain/pickapic_v2"), split="test_unique")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = read_rows(Path("yuvalkirstain/pickapic_v2"), split="test_unique")
    assert [row.prompt for row in rows[:3]] == ["pick prompt 0", "pick prompt 0", "pick prompt 1"]
    assert len(rows) == 8 and rows[0].image.endswith(".parquet::0/jpg_0")
    assert image_source(rows[0].image) == gray_image(200, "JPEG")  # a parquet cell, read where it lies
    local = write_hpdv2(tmp_path / "hpd", prompts=2)
    rows = read_rows(local, split="test")
    assert len(rows) == 8 and rows[0].image == f"{local / 'test.tar.gz'}::test/00000_0.jpg"
    assert image_source(rows[0].image) == gray_image(60, "JPEG")
    with pytest.raises(ValueError, match="nor a known hub dataset id"):
        read_rows(Path("someone/unknown_dataset"))


def test_only_web_formats_are_scored_unless_widened(tmp_path, model_dirs):
    (tmp_path / "a.png").write_bytes(encoded_image(1, fmt="PNG"))
    (tmp_path / "b.tiff").write_bytes(encoded_image(2, fmt="TIFF"))
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"prompt": "p", "image": name}) + "\n"
                                              for name in ("a.png", "b.tiff")))
    common = ["score-dataset", str(tmp_path / "m.jsonl"), "--model", str(model_dirs["tiny"]), "--device", "cpu",
              "-q", "--num-workers", "0"]
    assert cli_main([*common, "--output", str(tmp_path / "web.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "web.jsonl").read_text().splitlines()]
    assert rows[0]["score"] is not None and rows[1]["score"] is None
    assert "b.tiff: image format TIFF is not accepted" in rows[1]["error"]
    assert cli_main([*common, "--output", str(tmp_path / "local.jsonl"), "--image-formats", "local"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert rows[1]["error"] is None and rows[1]["score"] is not None
