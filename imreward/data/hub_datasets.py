"""Public preference datasets by hub id, fetched file by file into the Hugging Face cache.

Only the files a split needs are downloaded, with ``huggingface_hub`` (``hf_hub_download`` where
the names are known, ``snapshot_download`` with ``allow_patterns`` where shard names carry a
hash), so the cache, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, progress
bars and resuming of interrupted downloads are the library's own. The returned folder is the
cache's snapshot folder: the readers open the files there, and nothing is unpacked or copied.

- ``THUDM/ImageRewardDB`` (optionally ``:1k``, ``:2k``, ``:4k``, ``:8k``): ``metadata-{split}.parquet``
  first, then only the ``images/{split}/{split}_{n}.zip`` archives its rows (of the subset) point into.
- ``ymhao/HPDv2``: ``test.json`` and ``test.tar.gz``.
- ``yuvalkirstain/pickapic_v2``: the ``data/{split}-*.parquet`` shards of the split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HUB_DATASETS = {
    "THUDM/ImageRewardDB": "imagerewarddb",
    "ymhao/HPDv2": "hpdv2",
    "yuvalkirstain/pickapic_v2": "pickapic",
}


class DatasetDownloadError(FileNotFoundError):
    """A dataset file could not be fetched from the hub nor found in its cache (a FileNotFoundError,
    so the CLI reports it as it reports a missing local file)."""


@dataclass(frozen=True)
class HubDataset:
    repo_id: str
    layout: str
    subset: str | None = None
    revision: str = "main"


def parse_dataset_id(name: str) -> HubDataset | None:
    """``HubDataset`` for a known id (``THUDM/ImageRewardDB:1k`` names a subset), else None."""
    repo_id, _, subset = name.partition(":")
    lowered = {key.lower(): key for key in HUB_DATASETS}
    if repo_id.lower() not in lowered:
        return None
    repo_id = lowered[repo_id.lower()]
    if subset:
        from imreward.data.imagerewarddb import SUBSETS

        if HUB_DATASETS[repo_id] != "imagerewarddb" or subset.lower() not in SUBSETS:
            raise ValueError(f"{name}: only THUDM/ImageRewardDB has subsets ({', '.join(SUBSETS)})")
        subset = subset.lower()
    return HubDataset(repo_id, HUB_DATASETS[repo_id], subset or None)


def _hub_options(cache_dir: str | os.PathLike | None) -> dict:
    from imreward.hub import hub_download_options

    return {**hub_download_options(cache_dir), "repo_type": "dataset"}


def _download(dataset: HubDataset, filename: str, cache_dir: str | os.PathLike | None) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(dataset.repo_id, filename, revision=dataset.revision, **_hub_options(cache_dir)))
    except Exception as error:  # the hub library raises many types; the message names what failed
        raise DatasetDownloadError(_explain(dataset, filename, error)) from error


def _explain(dataset: HubDataset, what: str, error: Exception) -> str:
    from imreward.hub import hub_offline

    where = "the hub cache only (HF_HUB_OFFLINE is set)" if hub_offline() else "the hub and its cache"
    return (f"could not get {what} of the dataset {dataset.repo_id} from {where}: {type(error).__name__}: {error}. "
            "Check the network (or HF_ENDPOINT), or download a local copy and pass its folder instead.")


def fetch_dataset(dataset: HubDataset, split: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local snapshot folder holding what ``split`` needs, downloading what the cache lacks."""
    if dataset.layout == "imagerewarddb":
        from imreward.data.imagerewarddb import SPLITS, archives_for, read_metadata

        if split not in SPLITS:
            raise ValueError(f"ImageRewardDB splits are {', '.join(SPLITS)}, not {split!r}")
        metadata = _download(dataset, f"metadata-{split}.parquet", cache_dir)
        table, image_column = read_metadata(metadata, dataset.subset if split == "train" else None)
        if image_column == "image_path":
            for archive in archives_for(table["image_path"]):
                _download(dataset, archive, cache_dir)
        return metadata.parent
    if dataset.layout == "hpdv2":
        from imreward.data.hpdv2 import SPLITS

        if split not in SPLITS:
            raise ValueError(f"HPD v2 has rankings only for the test split, not {split!r}")
        _download(dataset, f"{split}.tar.gz", cache_dir)
        return _download(dataset, f"{split}.json", cache_dir).parent
    from huggingface_hub import snapshot_download

    from imreward.data.pickapic import SPLITS, shard_pattern

    if split not in SPLITS:
        raise ValueError(f"Pick-a-Pic v2 splits are {', '.join(SPLITS)}, not {split!r}")
    try:
        folder = Path(snapshot_download(dataset.repo_id, revision=dataset.revision,
                                        allow_patterns=[shard_pattern(split)], **_hub_options(cache_dir)))
    except Exception as error:  # as in _download
        raise DatasetDownloadError(_explain(dataset, shard_pattern(split), error)) from error
    if not list(folder.glob(shard_pattern(split))):
        raise DatasetDownloadError(_explain(dataset, shard_pattern(split),
                                            FileNotFoundError(f"no such shards in {folder}")))
    return folder
