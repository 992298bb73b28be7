"""Shard readers: WebDataset and Parquet shards, folders, manifests, ImageRewardDB and published
datasets as shards of keyed rows; bad members become row errors naming shard and member."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.shard_files import NO_CAPTION, NO_IMAGE, samples, write_parquet
from imreward.data.records import ImageReader
from imreward.data.shards import ShardOptions, ShardReadError, open_shards


def all_rows(shards) -> list:
    return [row for shard in shards for row in shard.rows()]


def test_webdataset_by_folder_glob_and_braces(webdataset_shards):
    folder = webdataset_shards[0].parent
    for source in (folder, f"{folder}/*.tar", f"{folder}/{{00000..00002}}.tar",
                   [str(path) for path in webdataset_shards]):
        shards = open_shards(source)
        assert [shard.name for shard in shards] == ["00000", "00001", "00002"]
    assert [shard.name for shard in open_shards(f"{folder}/{{00001,00002}}.tar")] == ["00001", "00002"]
    with pytest.raises(ShardReadError, match="no file matches"):
        open_shards(f"{folder}/*.parquet")


def test_webdataset_rows_keys_prompts_and_bad_samples(webdataset_shards):
    expected = samples(3, 80)
    rows = all_rows(open_shards(webdataset_shards, options=ShardOptions(keep_columns=("url",))))
    assert [row.key for row in rows] == [sample["key"] for shard in expected for sample in shard]
    flat = [sample for shard in expected for sample in shard]
    good = [(row, sample) for row, sample in zip(rows, flat) if row.error is None]
    assert len(good) == 238
    assert all(row.prompt == sample["prompt"] and row.image.data == sample["image"] for row, sample in good)
    assert rows[0].columns == {"url": flat[0]["url"]}
    no_caption = rows[NO_CAPTION[0] * 80 + NO_CAPTION[1]]
    assert no_caption.reason == "no_prompt" and "00001.tar: sample 000010008: no prompt (txt)" in no_caption.error
    no_image = rows[NO_IMAGE[0] * 80 + NO_IMAGE[1]]
    assert no_image.reason == "no_image" and "sample 000020002: no image member" in no_image.error
    by_json = all_rows(open_shards(webdataset_shards[0], options=ShardOptions(prompt_field="json:url")))
    assert by_json[1].prompt == flat[1]["url"]


def test_truncated_tar_gives_its_rows_and_an_error_naming_the_last_member(webdataset_shards, tmp_path):
    data = webdataset_shards[0].read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2 + 100])
    rows = list(open_shards(cut)[0].rows())
    assert 30 < len(rows) < 60 and rows[-1].reason == "unreadable_shard"
    assert "cut.tar: unreadable after member 0000000" in rows[-1].error
    assert [row.key for row in rows[:-2]] == [f"00000{n:04d}" for n in range(len(rows) - 2)]


@pytest.mark.parametrize("struct", [False, True])
def test_parquet_image_bytes_and_datasets_struct(tmp_path, struct):
    paths = write_parquet(tmp_path, shards=2, rows=40, struct=struct)
    shards = open_shards(tmp_path, options=ShardOptions(keep_columns=("url",)))
    assert [shard.name for shard in shards] == ["00000", "00001"]
    rows = all_rows(shards)
    flat = [sample for shard in samples(2, 40) for sample in shard]
    assert [row.key for row in rows] == [sample["key"] for sample in flat]
    assert all(row.image.data == sample["image"] and row.prompt == sample["prompt"] and row.error is None
               for row, sample in zip(rows, flat) if sample["prompt"] and sample["image"])
    assert rows[48].reason == "no_prompt" and f"{paths[1]}: row 8 (key 000010008): no prompt" in rows[48].error
    assert rows[5].columns == {"url": flat[5]["url"]}
    pq.write_table(pa.table({"text": ["a"], "pixels": [paths[0].read_bytes()[:10]]}), tmp_path / "named.parquet")
    named = open_shards(tmp_path / "named.parquet", options=ShardOptions(image_field="pixels", prompt_field="text"))
    assert [(row.prompt, row.image.data) for row in all_rows(named)] == [("a", paths[0].read_bytes()[:10])]
    pq.write_table(pa.table({"text": ["a"], "blob": [1]}), tmp_path / "other.parquet")
    with pytest.raises(ShardReadError, match="no an image-bytes column"):
        open_shards(tmp_path / "other.parquet", layout="parquet")


def test_folder_tree_prompts_symlinks_and_colons(tmp_path):
    root = tmp_path / "run::2"  # no archive syntax: a path is a path
    (root / "cats" / "night").mkdir(parents=True)
    (root / "cats" / "prompt.txt").write_text("a cat\n")
    for name in ("cats/a.png", "cats/night/b.jpg", "cats/night/c.webp", "lost.png"):
        (root / name).write_bytes(b"x")
    (root / "cats" / "night" / "c.txt").write_text("a cat at night")
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"outside")
    os.symlink(secret, root / "cats" / "link.png")
    rows = all_rows(open_shards(root))
    assert [(row.key, row.prompt, row.reason) for row in rows] == [
        ("lost.png", None, "no_prompt"), ("cats/a.png", "a cat", None), ("cats/link.png", None, "outside_root"),
        ("cats/night/b.jpg", "a cat", None), ("cats/night/c.webp", "a cat at night", None)]
    assert "outside" in rows[2].error and rows[2].image is None
    allowed = all_rows(open_shards(root, options=ShardOptions(allow_outside_root=True)))
    assert ImageReader().read(allowed[2].image) == b"outside"
    assert [shard.name for shard in open_shards(root, options=ShardOptions(rows_per_shard=1))] == [
        "root-00000", "cats-00000", "cats-00001", "cats__night-00000", "cats__night-00001"]


def test_manifests_stream_in_shards_and_stay_inside_their_folder(tmp_path):
    (tmp_path / "m.csv").write_text("prompt,image\nfirst,x/1.png\nsecond,x/2.png\nthird,../escape.png\n")
    shards = open_shards(tmp_path / "m.csv", options=ShardOptions(rows_per_shard=2))
    assert [shard.name for shard in shards] == ["m-00000", "m-00001"]
    rows = all_rows(shards)
    assert [(row.key, row.prompt, row.image and row.image.path) for row in rows[:2]] == [
        ("x/1.png", "first", str(tmp_path / "x/1.png")), ("x/2.png", "second", str(tmp_path / "x/2.png"))]
    assert rows[2].reason == "outside_root" and "m.csv: row 3" in rows[2].error
    pq.write_table(pa.table({"prompt": ["p"], "image_path": ["y.jpg"], "id": [7]}), tmp_path / "m.parquet")
    assert [(row.key, row.image.path) for row in all_rows(open_shards(tmp_path / "m.parquet"))] == [
        ("7", str(tmp_path / "y.jpg"))]
    (tmp_path / "bad.jsonl").write_text('{"prompt": "p"}\nnot json\n{"prompt": "q", "image": "run::1.png"}\n')
    rows = all_rows(open_shards(tmp_path / "bad.jsonl"))
    assert [row.reason for row in rows] == ["bad_manifest_row", "bad_manifest_row", None]
    assert "bad.jsonl: row 1 needs" in rows[0].error and rows[2].image.path == str(tmp_path / "run::1.png")


def test_imagerewarddb_reads_zip_members_where_they_lie(tmp_path):
    db = tmp_path / "db"
    (db / "images" / "train").mkdir(parents=True)
    (db / "images" / "train" / "on_disk.png").write_bytes(b"disk")
    with zipfile.ZipFile(db / "images" / "train" / "train_1.zip", "w") as archive:
        archive.writestr("train_1/zipped.png", b"zip bytes")
    pq.write_table(pa.table({"prompt": ["a", "b", "c"], "prompt_id": ["0", "0", "0"],
                             "image_path": ["images/train/on_disk.png", "images/train/train_1/zipped.png",
                                            "images/train/gone.png"]}), db / "metadata-train.parquet")
    rows = all_rows(open_shards(db))
    assert [row.prompt for row in rows] == ["a", "b", "c"]
    reader = ImageReader()
    assert reader.read(rows[0].image) == b"disk" and reader.read(rows[1].image) == b"zip bytes"
    assert rows[2].reason == "missing_image" and "gone.png" in rows[2].error


def test_published_datasets_by_hub_id_and_local_copy(tmp_path, monkeypatch):
    import huggingface_hub.constants  # noqa: F401  read before HF_HUB_OFFLINE is set (the library reads it once)
    from published_datasets import gray_image, hub_snapshot, write_hpdv2, write_pickapic

    cache = tmp_path / "hub"
    write_pickapic(hub_snapshot(cache, "yuvalkirstain/pickapic_v2"), split="test_unique")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = all_rows(open_shards("yuvalkirstain/pickapic_v2", options=ShardOptions(split="test_unique")))
    assert [row.prompt for row in rows[:3]] == ["pick prompt 0", "pick prompt 0", "pick prompt 1"]
    assert len(rows) == 8 and rows[0].key.endswith(".parquet:0/jpg_0")
    assert ImageReader().read(rows[0].image) == gray_image(200, "JPEG")  # a parquet cell, read where it lies
    local = write_hpdv2(tmp_path / "hpd", prompts=2)
    rows = all_rows(open_shards(local, options=ShardOptions(split="test")))
    assert len(rows) == 8 and rows[0].key == "test.tar.gz:test/00000_0.jpg"
    assert ImageReader().read(rows[0].image) == gray_image(60, "JPEG")
    with pytest.raises(ShardReadError, match="nor a known hub dataset id"):
        open_shards("someone/unknown_dataset")


def test_a_damaged_parquet_shard_is_named(tmp_path):
    first, second = write_parquet(tmp_path, shards=2, rows=40)
    data = second.read_bytes()
    shards = open_shards(tmp_path)
    second.write_bytes(data[: len(data) // 2])
    rows = list(shards[1].rows())
    assert len(rows) == 1 and rows[0].reason == "unreadable_shard" and f"{second}: unreadable" in rows[0].error
    first.write_bytes(b"PAR1 not really")
    with pytest.raises(ShardReadError, match=f"{first}: not a readable Parquet file"):
        open_shards(tmp_path)
