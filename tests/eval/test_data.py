import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imreward.eval.data import read_ranked_prompts

TEST_JSON = Path("/work/shared/reference-data/test.json")

DB_ROWS = [
    {"image_path": "a/1.webp", "prompt_id": "p1", "prompt": "a cat", "rank": 2, "overall_rating": 5},
    {"image_path": "b/1.webp", "prompt_id": "p2", "prompt": "a dog", "rank": 1, "overall_rating": 6},
    {"image_path": "a/2.webp", "prompt_id": "p1", "prompt": "a cat", "rank": 1, "overall_rating": 7},
    {"image_path": "b/2.webp", "prompt_id": "p2", "prompt": "a dog", "rank": 1, "overall_rating": 6},
]


def test_test_layout_resolves_images_under_the_root(tmp_path):
    data = tmp_path / "test.json"
    data.write_text(json.dumps([{"id": 7, "prompt": "x", "generations": ["g/1.png", "g/2.png"], "ranking": [2, 1]}]))
    [prompt] = read_ranked_prompts(data, tmp_path / "images")
    assert prompt.id == "7" and prompt.prompt == "x"
    assert prompt.images == (tmp_path / "images/g/1.png", tmp_path / "images/g/2.png")
    assert prompt.ranking == (2, 1)


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_imagerewarddb_rows_are_grouped_by_prompt_in_first_seen_order(tmp_path, suffix):
    path = tmp_path / f"metadata{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(DB_ROWS))
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(row) for row in DB_ROWS) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist(DB_ROWS), path)
    prompts = read_ranked_prompts(path, "/root")
    assert [p.id for p in prompts] == ["p1", "p2"]
    assert prompts[0].images == (Path("/root/a/1.webp"), Path("/root/a/2.webp"))
    assert prompts[0].ranking == (2, 1)
    assert prompts[1].ranking == (1, 1)


def test_malformed_records_are_reported(tmp_path):
    data = tmp_path / "bad.json"
    data.write_text(json.dumps([{"id": 1, "prompt": "x", "generations": ["a.png", "b.png"], "ranking": [1]}]))
    with pytest.raises(ValueError, match="entry 0: 2 images but 1 ranks"):
        read_ranked_prompts(data, tmp_path)
    data.write_text(json.dumps([{"id": 1, "prompt": "x", "generations": ["a.png"], "ranking": [0]}]))
    with pytest.raises(ValueError, match="integers >= 1"):
        read_ranked_prompts(data, tmp_path)
    data.write_text(json.dumps([{"prompt_id": 1, "prompt": "x", "image_path": "a.png"}]))
    with pytest.raises(ValueError, match="row 0"):
        read_ranked_prompts(data, tmp_path)
    data.write_text(json.dumps([{"text": "x"}]))
    with pytest.raises(ValueError, match="unknown data layout"):
        read_ranked_prompts(data, tmp_path)


@pytest.mark.skipif(not TEST_JSON.is_file(), reason="reference test.json not available")
def test_reads_the_reference_test_set():
    prompts = read_ranked_prompts(TEST_JSON, "/images")
    assert len(prompts) == 466
    assert all(4 <= len(p.images) <= 9 and len(p.images) == len(p.ranking) for p in prompts)
