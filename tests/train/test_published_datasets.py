"""The published dataset layouts read where they lie, under both policies, locally and by hub id."""

import io
import zipfile

import huggingface_hub.constants  # noqa: F401  read before any test sets HF_HUB_OFFLINE (the library reads it once)
import numpy as np
import pytest
from PIL import Image
from published_datasets import gray_image, hub_snapshot, write_hpdv2, write_imagerewarddb, write_pickapic

from fake_hub import FakeHub
from imreward.data import DatasetDownloadError, ImageReader, load_preference_data, read_pickapic


def brightness(data: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(data)).convert("L")).mean())


def test_imagerewarddb_reads_zip_members_with_ties_and_both_policies(tmp_path):
    root = write_imagerewarddb(tmp_path / "db", split="validation")
    records, stats = load_preference_data(root, "validation")
    assert [record.ranks for record in records] == [(1, 1, 2), (1, 2, 3), (1, 2, 3), (1, 2, 3)]
    assert stats.pairs == 2 + 3 * 3
    first = records[1].images[0]
    assert first.path.endswith("images/validation/validation_1.zip") and first.member.startswith("validation_1/")
    levels = [brightness(ImageReader().read(source)) for source in records[1].images]
    assert levels[0] > levels[1] > levels[2]  # the fixture's rank follows brightness

    # A zip member goes missing: training drops the image, evaluation skips its prompt.
    archive = root / "images/validation/validation_2.zip"
    with zipfile.ZipFile(archive) as opened:
        members = {name: opened.read(name) for name in opened.namelist()}
    with zipfile.ZipFile(archive, "w") as opened:
        for name, data in list(members.items())[1:]:
            opened.writestr(name, data)
    train, train_stats = load_preference_data(root, "validation", policy="train")
    assert [len(record.images) for record in train] == [3, 3, 2, 3] and train_stats.missing_images == 1
    evaluation, eval_stats = load_preference_data(root, "validation", policy="eval")
    assert [record.prompt_id for record in evaluation] == ["validation-000000", "validation-000001",
                                                           "validation-000003"]
    assert eval_stats.skipped[0]["id"] == "validation-000002" and "validation_2" in eval_stats.skipped[0]["images"][0]


def test_hpdv2_reads_the_test_json_and_the_tar_without_unpacking(tmp_path):
    root = write_hpdv2(tmp_path / "hpd")
    records, stats = load_preference_data(root, "test", policy="eval")
    assert len(records) == 3 and stats.pairs == 3 * 6
    record = records[0]
    assert record.ranks == (2, 0, 1, 3) and record.prompt == "hpd prompt 0"
    assert {source.path for source in record.images} == {str(root / "test.tar.gz")}
    levels = [brightness(ImageReader().read(source)) for source in record.images]
    assert sorted(range(4), key=lambda k: record.ranks[k]) == sorted(range(4), key=lambda k: -levels[k])
    assert sorted(p.name for p in root.iterdir()) == ["test.json", "test.tar.gz"]  # nothing unpacked
    with pytest.raises(ValueError, match="only for the test split"):
        load_preference_data(root, "train")


def test_pickapic_labels_ties_and_parquet_cells(tmp_path):
    root = write_pickapic(tmp_path / "pick", labels=((1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (1.0, 0.0), (0.0, 1.0)))
    records, stats = read_pickapic(root, "test_unique")
    assert [record.ranks for record in records] == [(1, 2), (2, 1), (1, 1), (1, 2), (2, 1)]
    assert stats.pairs == 4  # the tie is kept as a record but gives no pair
    reader = ImageReader()
    for record in reversed(records):  # across row groups, in any order
        levels = [brightness(reader.read(source)) for source in record.images]
        assert (levels[0] > levels[1]) == (record.ranks[0] < record.ranks[1])
        assert (levels[0] == levels[1]) == (record.ranks[0] == record.ranks[1])
    assert reader.read(records[0].images[0]) == gray_image(200, "JPEG")
    write_pickapic(tmp_path / "bad", labels=((0.7, 0.3),))
    with pytest.raises(ValueError, match="labels must be 1/0, 0/1 or 0.5/0.5"):
        read_pickapic(tmp_path / "bad", "test_unique")
    with pytest.raises(FileNotFoundError, match="data/test-\\*.parquet"):
        read_pickapic(root, "test")  # test-* does not match the test_unique shard


def test_dataset_ids_read_from_an_offline_hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    write_pickapic(hub_snapshot(cache, "yuvalkirstain/pickapic_v2"), split="test_unique")
    write_hpdv2(hub_snapshot(cache, "ymhao/HPDv2"))
    write_imagerewarddb(hub_snapshot(cache, "THUDM/ImageRewardDB"), split="test")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: any request would fail
    pick, _ = load_preference_data("yuvalkirstain/pickapic_v2", "test_unique", policy="eval")
    hpd, _ = load_preference_data("ymhao/HPDv2", "test", policy="eval")
    db, _ = load_preference_data("THUDM/ImageRewardDB", "test", policy="eval")
    assert (len(pick), len(hpd), len(db)) == (4, 3, 4)
    assert str(cache) in pick[0].images[0].path
    with pytest.raises(DatasetDownloadError, match="HF_HUB_OFFLINE is set"):
        load_preference_data("THUDM/ImageRewardDB", "validation")


def test_a_hub_download_fetches_only_the_files_the_split_needs(tmp_path, monkeypatch):
    from imreward.data import imagerewarddb

    remote = write_imagerewarddb(tmp_path / "remote", split="train", prompts=6, per_zip=2)
    write_imagerewarddb(remote, split="test", prompts=2)
    files = {("datasets/THUDM/ImageRewardDB", str(path.relative_to(remote))): path
             for path in remote.rglob("*") if path.is_file()}
    monkeypatch.setitem(imagerewarddb.SUBSETS, "1k", 2)  # the fixture's "1K": its first 2 archives
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with FakeHub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        records, _ = load_preference_data("THUDM/ImageRewardDB:1k", "train")
        fetched = sorted({request.split("/resolve/main/")[1] for request in hub.requests if "/resolve/" in request})
    assert len(records) == 4
    assert fetched == ["images/train/train_1.zip", "images/train/train_2.zip", "metadata-train.parquet"]
    # Offline, the cache alone serves the same split.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again, _ = load_preference_data("THUDM/ImageRewardDB:1k", "train")
    assert [record.prompt_id for record in again] == [record.prompt_id for record in records]
