"""Preference data for training and evaluating reward models: readers of the published layouts
(ImageRewardDB parquet+zip, HPD v2 test JSON+tar, Pick-a-Pic v2 parquet, the original JSON) with a
training and an evaluation policy, hub dataset ids, pair construction and prompt-grouped batching; and
every input of batch scoring as streamed shards of rows (``shards``: WebDataset and Parquet shards,
folders, manifests, ImageRewardDB, published datasets)."""

from imreward.data.dataset import PreferenceDataset, PromptBatch, PromptCollator, PromptItem
from imreward.data.hpdv2 import read_hpdv2
from imreward.data.hub_datasets import HUB_DATASETS, DatasetDownloadError, fetch_dataset, parse_dataset_id
from imreward.data.imagerewarddb import read_imagerewarddb
from imreward.data.json_layout import read_json_layout
from imreward.data.loading import DataStats, load_preference_data
from imreward.data.pickapic import read_pickapic
from imreward.data.records import ImageReader, ImageSource, PromptRecord, ranked_pairs
from imreward.data.shards import Shard, ShardOptions, ShardReadError, ShardRow, open_shards

__all__ = [
    "DataStats", "DatasetDownloadError", "HUB_DATASETS", "ImageReader", "ImageSource", "PreferenceDataset",
    "PromptBatch", "PromptCollator", "PromptItem", "PromptRecord", "fetch_dataset", "load_preference_data",
    "parse_dataset_id", "ranked_pairs", "read_hpdv2", "read_imagerewarddb", "read_json_layout", "read_pickapic",
    "Shard", "ShardOptions", "ShardReadError", "ShardRow", "open_shards",
]
