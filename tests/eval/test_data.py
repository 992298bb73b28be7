"""Evaluation reads the shared readers under the evaluation policy."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imreward.data.json_layout import read_json_layout
from imreward.eval.data import read_evaluation_data, read_ranked_prompts

TEST_JSON = Path("/work/shared/reference-data/test.json")

DB_ROWS = [
    {"image_path": "a/1.webp", "prompt_id": "p1", "prompt": "a cat", "rank": 2, "overall_rating": 5},
    {"image_path": "b/1.webp", "prompt_id": "p2", "prompt": "a dog", "rank": 1, "overall_rating": 6},
    {"image_path": "a/2.webp", "prompt_id": "p1", "prompt": "a cat", "rank": 1, "overall_rating": 7},
    {"image_path": "b/2.webp", "prompt_id": "p2", "prompt": "a dog", "rank": 2, "overall_rating": 6},
    {"image_path": "b/3.webp", "prompt_id": "p2", "prompt": "a dog", "rank": 3, "overall_rating": 2},
]


def write_images(root: Path, names) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"image bytes")


def test_test_layout_resolves_images_under_the_root(tmp_path):
    data = tmp_path / "test.json"
    data.write_text(json.dumps([{"id": 7, "prompt": "x", "generations": ["g/1.png", "g/2.png"], "ranking": [2, 1]}]))
    write_images(tmp_path / "images", ["g/1.png", "g/2.png"])
    [prompt] = read_ranked_prompts(data, tmp_path / "images")
    assert prompt.prompt_id == "7" and prompt.prompt == "x"
    assert [image.path for image in prompt.images] == [str(tmp_path / "images/g/1.png"), str(tmp_path / "images/g/2.png")]
    assert prompt.ranks == (2, 1)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_imagerewarddb_rows_are_grouped_and_a_prompt_with_a_missing_image_is_skipped(tmp_path, suffix):
    path = tmp_path / f"metadata{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(DB_ROWS))
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(row) for row in DB_ROWS) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist(DB_ROWS), path)
    write_images(tmp_path / "root", ["a/1.webp", "a/2.webp", "b/1.webp", "b/2.webp"])  # b/3.webp is missing
    prompts, skipped = read_evaluation_data(path, tmp_path / "root")
    assert [p.prompt_id for p in prompts] == ["p1"]
    assert [image.path for image in prompts[0].images] == [str(tmp_path / "root/a/1.webp"), str(tmp_path / "root/a/2.webp")]
    assert prompts[0].ranks == (2, 1)
    assert skipped == [{"id": "p2", "prompt": "a dog", "reason": "missing image", "images": [str(tmp_path / "root/b/3.webp")]}]


def test_malformed_records_are_reported(tmp_path):
    data = tmp_path / "bad.json"
    data.write_text(json.dumps([{"id": 1, "prompt": "x", "generations": ["a.png", "b.png"], "ranking": [1]}]))
    with pytest.raises(ValueError, match="entry 0: 2 generations but 1 ranks"):
        read_ranked_prompts(data, tmp_path)
    data.write_text(json.dumps([{"id": 1, "prompt": "x", "generations": ["a.png"], "ranking": [0]}]))
    with pytest.raises(ValueError, match="integers >= 1"):
        read_ranked_prompts(data, tmp_path)
    data.write_text(json.dumps([{"prompt_id": 1, "prompt": "x", "image_path": "a.png"}]))
    with pytest.raises(ValueError, match="no 'rank' column"):
        read_ranked_prompts(data, tmp_path)
    data.write_text(json.dumps([{"text": "x"}]))
    with pytest.raises(ValueError, match="entry 0 lacks id, prompt, generations, ranking"):
        read_ranked_prompts(data, tmp_path)


@pytest.mark.skipif(not TEST_JSON.is_file(), reason="reference test.json not available")
def test_reads_the_reference_test_set():
    records, stats = read_json_layout(TEST_JSON, "/nonexistent-images", policy="eval")
    assert records == [] and len(stats.skipped) == 466  # no image is there: every prompt is skipped whole
    assert all(4 <= len(item["images"]) <= 9 for item in stats.skipped)
