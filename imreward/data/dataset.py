"""A torch Dataset of prompts (each item: one prompt's decoded images and the pairs among them) and
the collate function that batches prompts so each image is encoded once per step.

A batch holds every image of its prompts once (``pixel_values`` [N, 3, S, S]) with the prompt
tokens repeated per image, and the pairs as indices into those N rewards: one forward scores every
pair of the batch, where a per-pair step would encode each image once for every pair it is in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.data import Dataset

from imreward.data.records import ImageReader, PromptRecord, keep_images, ranked_pairs
from imreward.image_io import ImageLoadError, load_image
from imreward.tokenizer import PromptTokenizer


@dataclass
class PromptItem:
    """One prompt after decoding: the images that decoded, with their ranks."""

    prompt: str
    pixel_values: torch.Tensor  # [k, 3, S, S]
    ranks: tuple[int, ...]
    failed_images: list[str]  # "name: reason" of images that did not decode


class PreferenceDataset(Dataset):
    """Prompts with ranked images; undecodable images are dropped from their prompt (and reported
    in ``PromptItem.failed_images``) instead of raising."""

    def __init__(self, records: Sequence[PromptRecord], preprocess: Callable[[Image.Image], torch.Tensor]) -> None:
        self.records = list(records)
        self.preprocess = preprocess
        self.reader = ImageReader()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> PromptItem:
        record = self.records[index]
        pixels, kept, failed = [], [], []
        for position, source in enumerate(record.images):
            try:
                image = load_image(self.reader.read(source))
                pixels.append(self.preprocess(image))
                kept.append(position)
            except (ImageLoadError, OSError, KeyError, ValueError) as error:
                failed.append(f"{source.describe()}: {error}")
        record = keep_images(record, kept)
        stacked = torch.stack(pixels) if pixels else torch.empty(0)
        return PromptItem(record.prompt, stacked, record.ranks, failed)


@dataclass
class PromptBatch:
    """Images of several prompts and the pairs among them.

    pixel_values: [N, 3, S, S]; input_ids, attention_mask: [N, L] (each image's prompt);
    better, worse: [P] indices into the N images; failed_images: names of images skipped.
    """

    pixel_values: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    better: torch.Tensor
    worse: torch.Tensor
    num_prompts: int
    failed_images: list[str]

    @property
    def num_pairs(self) -> int:
        return int(self.better.numel())

    def to(self, device: torch.device | str) -> "PromptBatch":
        moved = {name: getattr(self, name).to(device, non_blocking=True)
                 for name in ("pixel_values", "input_ids", "attention_mask", "better", "worse")}
        return PromptBatch(**moved, num_prompts=self.num_prompts, failed_images=self.failed_images)


class PromptCollator:
    """Collate ``PromptItem``s into a ``PromptBatch``; prompts left without a pair are left out.

    Picklable, so DataLoader workers tokenise too.
    """

    def __init__(self, tokenizer: PromptTokenizer, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, items: list[PromptItem]) -> PromptBatch:
        failed = [name for item in items for name in item.failed_images]
        pixels, better, worse, prompts, counts = [], [], [], [], []
        offset = 0
        for item in items:
            pairs = ranked_pairs(item.ranks)
            if not pairs:
                continue
            pixels.append(item.pixel_values)
            better.extend(offset + b for b, _ in pairs)
            worse.extend(offset + w for _, w in pairs)
            prompts.append(item.prompt)
            counts.append(len(item.ranks))
            offset += len(item.ranks)
        if prompts:
            text = self.tokenizer(prompts, self.max_length)
            per_image = torch.repeat_interleave(torch.arange(len(prompts)), torch.tensor(counts))
            input_ids, attention_mask = text["input_ids"][per_image], text["attention_mask"][per_image]
            pixel_values = torch.cat(pixels)
        else:
            input_ids = attention_mask = torch.zeros(0, self.max_length, dtype=torch.long)
            pixel_values = torch.zeros(0)
        return PromptBatch(pixel_values, input_ids, attention_mask, torch.tensor(better, dtype=torch.long),
                           torch.tensor(worse, dtype=torch.long), len(prompts), failed)
