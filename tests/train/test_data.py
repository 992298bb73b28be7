"""Readers for the ImageRewardDB parquet+zip layout and the original JSON layout."""

import io
import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from imreward.data import PreferenceDataset, load_preference_data, read_imagerewarddb, read_json_layout
from imreward.preprocess import PilPreprocessor

PREPROCESS = PilPreprocessor(8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _rows(paths_and_ranks, prompt_id="p1", prompt="a red square"):
    return [{"image_path": path, "prompt_id": prompt_id, "prompt": prompt, "rank": rank,
             "image_amount_in_total": len(paths_and_ranks)} for path, rank in paths_and_ranks]


def test_synthetic_split_reads_from_zips_and_skips_broken_images(synthetic_data):
    records, stats = read_imagerewarddb(synthetic_data, "train")
    # 16 prompts x 3 images; the first image of prompts 0 and 2 is empty (skipped at indexing),
    # that of prompt 1 is not an image (skipped at decoding)
    assert stats.empty_images == 2 and stats.missing_images == 0
    assert stats.images == 16 * 3 - 2 and stats.prompts == len(records) == 16
    assert [len(r.images) for r in records[:4]] == [2, 3, 2, 3]
    assert records[0].images[0].path.endswith("images/train/train_1.zip")
    dataset = PreferenceDataset(records, PREPROCESS)
    item = dataset[1]
    assert len(item.failed_images) == 1 and "train-000001-0.png" in item.failed_images[0]
    assert item.pixel_values.shape == (2, 3, 8, 8) and item.ranks == records[1].ranks[1:]
    assert dataset[3].failed_images == [] and dataset[3].pixel_values.shape == (3, 3, 8, 8)


def test_zip_members_are_found_by_the_published_image_path(tmp_path):
    (tmp_path / "images" / "test").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "images" / "test" / "test_1.zip", "w") as archive:
        archive.writestr("a.webp", _png("red"))  # member without folder
        archive.writestr("test_1/b.webp", _png("blue"))  # member with the folder prefix
    pq.write_table(pa.Table.from_pylist(_rows([("images/test/test_1/a.webp", 1), ("images/test/test_1/b.webp", 2),
                                                ("images/test/test_1/gone.webp", 3)])),
                   tmp_path / "metadata-test.parquet")
    records, stats = read_imagerewarddb(tmp_path, "test")
    assert stats.missing_images == 1 and stats.pairs == 1
    assert [source.member for source in records[0].images] == ["a.webp", "test_1/b.webp"]
    pixels = PreferenceDataset(records, PREPROCESS)[0].pixel_values
    assert pixels[0, 0, 0, 0] == pytest.approx(1.0) and pixels[1, 2, 0, 0] == pytest.approx(1.0)


def test_plain_files_and_inline_image_bytes(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "x.png").write_bytes(_png("green"))
    (tmp_path / "images" / "y.png").write_bytes(_png("white"))
    pq.write_table(pa.Table.from_pylist(_rows([("images/x.png", 2), ("images/y.png", 1)])),
                   tmp_path / "metadata-train.parquet")
    records, _ = load_preference_data(tmp_path, "train")
    assert records[0].pairs == [(1, 0)]
    inline = [{"image": {"bytes": _png("red"), "path": None}, "prompt_id": 7, "prompt": "p", "rank": 1},
              {"image": {"bytes": _png("blue"), "path": None}, "prompt_id": 7, "prompt": "p", "rank": 2}]
    pq.write_table(pa.Table.from_pylist(inline), tmp_path / "inline.parquet")
    records, _ = load_preference_data(tmp_path / "inline.parquet")
    assert records[0].prompt_id == "7"
    assert PreferenceDataset(records, PREPROCESS)[0].pixel_values.shape == (2, 3, 8, 8)


def test_json_layout_with_image_root_and_ties(tmp_path):
    (tmp_path / "imgs").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "imgs" / f"{name}.png").write_bytes(_png("red"))
    (tmp_path / "imgs" / "empty.png").write_bytes(b"")
    entries = [{"id": "1", "prompt": "cat", "generations": ["a.png", "b.png", "c.png", "empty.png"],
                "ranking": [2, 1, 2, 3]},
               {"id": "2", "prompt": "dog", "generations": ["a.png", "b.png"], "ranking": [1, 1]}]
    data = tmp_path / "meta" / "train.json"
    data.parent.mkdir()
    data.write_text(json.dumps(entries))
    records, stats = read_json_layout(data, image_root=tmp_path / "imgs")
    assert [r.prompt_id for r in records] == ["1"] and records[0].pairs == [(1, 0), (1, 2)]
    assert stats.empty_images == 1 and stats.prompts_without_pairs == 1
    _, stats = read_json_layout(data)  # relative to the JSON's folder: nothing there
    assert stats.missing_images == 6 and stats.prompts == 0


@pytest.mark.parametrize("entries, message", [
    ([{"id": "1", "prompt": "x", "generations": ["a.png"]}], "lacks ranking"),
    ([{"id": "1", "prompt": "x", "generations": ["a.png"], "ranking": [1, 2]}], "1 generations but 2 ranks"),
    ({"id": "1"}, "JSON list"),
])
def test_malformed_json_is_rejected(tmp_path, entries, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match=message):
        read_json_layout(path)


def test_missing_split_and_unusable_data_raise(tmp_path, synthetic_data):
    with pytest.raises(FileNotFoundError, match="metadata-nope.parquet"):
        load_preference_data(synthetic_data, "nope")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(ValueError, match="no prompt with two differently ranked"):
        load_preference_data(tmp_path / "empty.json")


def test_zip_handles_are_reopened_after_fork(synthetic_data):
    records, _ = read_imagerewarddb(synthetic_data, "validation")
    dataset = PreferenceDataset(records, PREPROCESS)
    expected = dataset[1].pixel_values
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=1, sampler=[1])
    assert torch.equal(next(iter(loader)).pixel_values, expected)
