"""score-dataset with several models: one decode per image, each column equal to that model run alone."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import imreward.batch.decode as decode
from imreward import hub
from imreward.cli import main as cli_main
from imreward.testing import tiny_model
from serve.serve_helpers import encoded_image

PROMPTS = ["a lighthouse at dusk", "two cats", "a bowl of ramen"]
ROWS = 10


class ScoreBatchOnly:
    """A scorer with only the ``Scorer`` protocol's methods (no ``pil_preprocess``), wrapping a tiny model."""

    def __init__(self, seed: int) -> None:
        self.inner = tiny_model(seed=seed)

    def score(self, prompt, image):
        return self.inner.score(prompt, image)

    def inference_rank(self, prompt, images):
        return self.inner.inference_rank(prompt, images)

    def score_batch(self, prompts, images, batch_size=32, progress=False, on_error=None):
        return self.inner.score_batch(prompts, images, batch_size=batch_size, on_error=on_error)

    def score_tensor(self, pixels, prompts):
        return self.inner.score_tensor(pixels, prompts)


@pytest.fixture
def test_scorers(monkeypatch):
    """Registered tiny scorers: ``tiny-a`` and ``tiny-b`` share a preprocessing, ``tiny-64`` has its own
    (64-pixel input), ``tiny-protocol`` has only the Scorer protocol."""
    factories = {"tiny-a": lambda name, **_: tiny_model(seed=0), "tiny-b": lambda name, **_: tiny_model(seed=1),
                 "tiny-64": lambda name, **_: tiny_model(seed=2, image_size=64),
                 "tiny-protocol": lambda name, **_: ScoreBatchOnly(seed=3)}
    for name, factory in factories.items():
        monkeypatch.setitem(hub._SCORERS, name, hub.ScorerInfo(factory))
    return list(factories)


@pytest.fixture
def manifest(tmp_path) -> Path:
    """ROWS images of several sizes and formats, row 4 corrupt."""
    lines = []
    for index in range(ROWS):
        name = f"{index}.{'png' if index % 2 else 'jpg'}"
        size = (40 + 7 * index, 36 + 3 * (index % 4))
        data = b"broken" if index == 4 else encoded_image(index, size, "PNG" if index % 2 else "JPEG")
        (tmp_path / name).write_bytes(data)
        lines.append(json.dumps({"prompt": PROMPTS[index % len(PROMPTS)], "image": name}))
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "manifest.jsonl"


def run(manifest: Path, output: Path, models: list[str], *extra: str) -> int:
    arguments = ["score-dataset", str(manifest), "--output", str(output), "--device", "cpu", "-q",
                 "--num-workers", "0", "--batch-size", "4", *extra]
    for model in models:
        arguments += ["--model", model]
    return cli_main(arguments)


def score_dataset(manifest: Path, output: Path, models: list[str]) -> list[dict]:
    assert run(manifest, output, models) == 0
    return [json.loads(line) for line in output.read_text().splitlines()]


def test_each_image_is_decoded_once_and_each_column_equals_its_model_alone(test_scorers, manifest, tmp_path,
                                                                           monkeypatch):
    decodes = []
    real_load_image = decode.load_image

    def counting_load_image(source, max_pixels, formats):
        decodes.append(source)
        return real_load_image(source, max_pixels, formats)

    monkeypatch.setattr(decode, "load_image", counting_load_image)
    together = score_dataset(manifest, tmp_path / "all.jsonl", test_scorers)
    assert len(decodes) == ROWS and len(set(decodes)) == ROWS
    assert list(together[0]) == ["key", "prompt", *[f"score_{name}" for name in test_scorers], "error"]
    assert [row["key"] for row in together] == [f"{index}.{'png' if index % 2 else 'jpg'}" for index in range(ROWS)]
    assert "cannot decode" in together[4]["error"]
    assert all(together[4][f"score_{name}"] is None for name in test_scorers)

    for name in test_scorers:
        alone = score_dataset(manifest, tmp_path / f"{name}.jsonl", [name])
        assert list(alone[0]) == ["key", "prompt", "score", "error"]
        assert [row[f"score_{name}"] for row in together] == [row["score"] for row in alone]
    assert len(decodes) == ROWS * (1 + len(test_scorers))
    columns = [[row[f"score_{name}"] for row in together if row["error"] is None] for name in test_scorers]
    assert all(a != b for a, b in zip(columns, columns[1:]))  # different models, different scores


def test_named_models_and_offline_scores(test_scorers, manifest, tmp_path):
    rows = score_dataset(manifest, tmp_path / "named.jsonl", ["first=tiny-a", "wide=tiny-64"])
    assert [name for name in rows[0] if name.startswith("score")] == ["score_first", "score_wide"]
    valid = [{**row, "image": str(manifest.parent / row["key"])} for row in rows if row["error"] is None]
    for column, model in (("score_first", tiny_model(seed=0)), ("score_wide", tiny_model(seed=2, image_size=64))):
        expected = model.score_batch([row["prompt"] for row in valid], [row["image"] for row in valid])
        assert [row[column] for row in valid] == pytest.approx(expected, abs=1e-5)


def test_resuming_with_other_models_is_refused(test_scorers, manifest, tmp_path):
    output = tmp_path / "scores"
    assert run(manifest, output, ["tiny-a", "tiny-b"], "--rows-per-shard", "4") == 0
    assert sorted(path.name for path in output.glob("*.parquet")) == [f"manifest-0000{n}.parquet" for n in range(3)]
    with pytest.raises(SystemExit, match=r"holds the results of a run with other models.*score=tiny-a"):
        run(manifest, output, ["tiny-a"])
    with pytest.raises(SystemExit, match=r"holds the results of a run with other models"):
        run(manifest, output, ["tiny-a", "tiny-c=tiny-b"])
    with pytest.raises(SystemExit, match="two models are named 'tiny-a'"):
        run(manifest, output, ["tiny-a", "tiny-a"])
    assert run(manifest, output, ["tiny-a", "tiny-b"], "--rows-per-shard", "4", "--merge",
               str(tmp_path / "all.parquet")) == 0  # the same models resume (nothing left) and merge
    assert pq.read_table(tmp_path / "all.parquet").column_names == ["key", "prompt", "score_tiny-a", "score_tiny-b",
                                                                     "error"]
