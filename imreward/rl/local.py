"""In-process placement: the reward models live in the trainer's process, on a given device.

Colocated with a generator on one GPU, the models can be kept in bfloat16 and moved to the CPU
between calls (``offload=True``), so they hold GPU memory only while they score.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from imreward.hub import load_scorer, resolve_device


def default_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on CUDA; the checkpoint's float32 elsewhere (bfloat16 matmuls are slow on most CPUs)."""
    return torch.bfloat16 if device.type == "cuda" else None


class LocalPlacement:
    """Scores images with scorers loaded in this process.

    Args:
        models: reward name -> what ``imreward.load_scorer`` reads (registered name, folder,
            checkpoint, ``module:function``) or an already built scorer; a name missing here is
            loaded by its own name.
        names: the reward names to load (the keys of the reward's weights).
        device: where the models score (default: CUDA when available).
        dtype: the models' dtype as ``imreward.load_scorer`` takes it (``"bfloat16"``, ``"auto"``,
            ``"int8"`` on the CPU, ...; default: bfloat16 on CUDA, the checkpoint's float32 elsewhere).
        offload: keep the models on the CPU and move them to ``device`` only for each call.
        batch_size: images per forward, the bound on activation memory.
    """

    kind = "local"

    def __init__(self, names: Sequence[str], models: Mapping[str, object] | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
                 offload: bool = False, batch_size: int = 32) -> None:
        self.device = resolve_device(device)
        dtype = default_dtype(self.device) if dtype is None else dtype
        if dtype in ("float32", torch.float32):
            dtype = None  # the checkpoints' own precision, for factories that take no dtype too
        self.offload = offload and self.device.type != "cpu"
        self.batch_size = batch_size
        home = torch.device("cpu") if self.offload else self.device
        models = dict(models or {})
        self.scorers = {}
        for name in names:
            source = models.get(name, name)
            scorer = load_scorer(source, device=home, dtype=dtype) if isinstance(source, str) else source.to(home)
            self.scorers[name] = scorer.eval().requires_grad_(False)

    def score(self, names: Sequence[str], images: list[np.ndarray], prompts: list[str]) -> dict[str, np.ndarray]:
        """Raw scores [B] (float32) of each reward in ``names`` for B uint8 images [H, W, 3] and prompts."""
        results = {}
        with torch.inference_mode():
            for name in names:
                with self._on_device(self.scorers[name]) as scorer:
                    values = scorer.score_batch(prompts, images, batch_size=self.batch_size)
                results[name] = np.asarray(values, dtype=np.float32)
        return results

    @contextlib.contextmanager
    def _on_device(self, scorer):
        if not self.offload:
            yield scorer
            return
        scorer.to(self.device)
        try:
            yield scorer
        finally:
            scorer.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def close(self) -> None:
        self.scorers.clear()
