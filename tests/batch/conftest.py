"""Fixtures: a saved tiny model and small WebDataset / Parquet shards with bad members."""

from __future__ import annotations

from pathlib import Path

import pytest

import imreward
from batch.results import READING
from batch.shard_files import write_parquet, write_webdataset
from imreward.testing import tiny_model


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    tiny_model(seed=0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def webdataset_shards(tmp_path_factory) -> list[Path]:
    """Three tar shards of 80 samples (240 rows), four of them bad (see ``shard_files``)."""
    return write_webdataset(tmp_path_factory.mktemp("wds"))


@pytest.fixture(scope="session")
def parquet_shards(tmp_path_factory) -> list[Path]:
    """The same 240 samples as three Parquet files with the datasets image struct."""
    return write_parquet(tmp_path_factory.mktemp("parquet"), struct=True)


@pytest.fixture(scope="session")
def local_results(tiny_dir, webdataset_shards, tmp_path_factory) -> Path:
    """The local engine's results on ``webdataset_shards`` (the reference of the other engine's tests)."""
    output = tmp_path_factory.mktemp("local") / "out"
    assert imreward.score_shards(webdataset_shards[0].parent, output, [str(tiny_dir)], reading=READING,
                                 batch_size=32, num_workers=1, progress=False) == output
    return output
