"""Preference data for training reward models: the ImageRewardDB parquet+zip layout, the original
JSON layout, pair construction and prompt-grouped batching."""

from imreward.data.dataset import PreferenceDataset, PromptBatch, PromptCollator, PromptItem
from imreward.data.imagerewarddb import read_imagerewarddb
from imreward.data.json_layout import read_json_layout
from imreward.data.loading import DataStats, load_preference_data
from imreward.data.records import ImageReader, ImageSource, PromptRecord, ranked_pairs

__all__ = [
    "DataStats", "ImageReader", "ImageSource", "PreferenceDataset", "PromptBatch", "PromptCollator", "PromptItem",
    "PromptRecord", "load_preference_data", "ranked_pairs", "read_imagerewarddb", "read_json_layout",
]
