"""Inputs of ReFL: prompts (JSON ``text`` fields, JSON lines or a text file) and, for the
pre-training loss, image–caption pairs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from imreward.image_io import load_image
from imreward.preprocess import PilPreprocessor

PROMPT_FIELDS = ("text", "prompt", "caption")


def _prompt_of(record, source: str) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        for field in PROMPT_FIELDS:
            if isinstance(record.get(field), str):
                return record[field]
    raise ValueError(f"{source}: expected a string or an object with one of {PROMPT_FIELDS}, got {record!r:.80}")


def _records(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        records = json.loads(text)
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list")
        return records
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts from a ``.json`` list (strings or objects with a ``text``/``prompt``/``caption``
    field, like ``refl_data.json``), a ``.jsonl`` file of such objects, or a text file (one a line)."""
    path = Path(path)
    prompts = [_prompt_of(record, f"{path}[{index}]") for index, record in enumerate(_records(path))]
    prompts = [prompt.strip() for prompt in prompts if prompt.strip()]
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


class CaptionedImages(Dataset):
    """Image–caption pairs for the pre-training loss.

    Reads a ``.json`` list or ``.jsonl`` file of ``{"image": path, "text": caption}`` (paths
    relative to the file). Items are (pixels [3, S, S] in [-1, 1], caption).
    """

    def __init__(self, path: str | os.PathLike, resolution: int) -> None:
        path = Path(path)
        self.pairs: list[tuple[Path, str]] = []
        for index, record in enumerate(_records(path)):
            if not isinstance(record, dict) or "image" not in record:
                raise ValueError(f"{path}[{index}]: expected an object with \"image\" and \"text\"")
            self.pairs.append((path.parent / record["image"], _prompt_of(record, f"{path}[{index}]")))
        if not self.pairs:
            raise ValueError(f"{path}: no image-caption pairs")
        self.preprocess = PilPreprocessor(resolution, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        image_path, caption = self.pairs[index]
        return self.preprocess(load_image(image_path)), caption
