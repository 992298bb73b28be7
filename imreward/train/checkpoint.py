"""Training checkpoints that resume exactly: model, optimizer, scheduler, data position and the RNG
states of every process, written atomically (temporary file, then rename)."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imreward.models.image_reward import ImageReward

CHECKPOINT_FILE = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch and CUDA RNG states, as types ``weights_only`` loads."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position,
                                                     has_gauss, cached), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to ``path`` atomically: a crash leaves the previous checkpoint intact."""
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_training_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def recover_folder(folder: Path) -> None:
    """Put ``folder`` back from ``folder.old`` when a crash between the two renames of
    ``replace_folder`` left only the previous version (``folder.tmp``, complete or not, is dropped
    by the next ``replace_folder``)."""
    previous = folder.with_name(folder.name + ".old")
    if not folder.exists() and previous.is_dir():
        previous.rename(folder)


def replace_folder(folder: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` a new version of ``folder`` beside it, then swap it in: a crash at any
    point leaves the previous version in ``folder`` or ``folder.old`` (``recover_folder``)."""
    temporary = folder.with_name(folder.name + ".tmp")
    previous = folder.with_name(folder.name + ".old")
    recover_folder(folder)
    for leftover in (temporary, previous):
        shutil.rmtree(leftover, ignore_errors=True)
    write(temporary)
    if folder.exists():
        folder.rename(previous)
    temporary.rename(folder)
    shutil.rmtree(previous, ignore_errors=True)


def save_model_atomically(model: ImageReward, folder: Path, extra_files: dict[str, str] | None = None) -> None:
    """``save_pretrained`` (plus ``extra_files``, {name: text}) into ``folder``, replacing a previous
    save only once the new one is complete (``replace_folder``). A model with LoRA adapters is saved
    merged, with the adapter in ``folder/adapter``."""
    from imreward.train.lora import ADAPTER_FOLDER, has_lora, merged_copy, save_adapter

    def write(temporary: Path) -> None:
        if has_lora(model):
            merged_copy(model).save_pretrained(temporary)
            save_adapter(model, temporary / ADAPTER_FOLDER)
        else:
            model.save_pretrained(temporary)
        for name, text in (extra_files or {}).items():
            (temporary / name).write_text(text)

    replace_folder(folder, write)
