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


def weight_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(tensor.numel() * tensor.element_size()
               for tensor in [*module.parameters(), *module.buffers()])


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
        offload: keep the models on the CPU and move them to ``device`` one at a time, for each call.
        memory_budget_gb: GiB of weights the models may keep on ``device``: the models load on the
            CPU, stay resident if they fit together, are offloaded if each fits alone, and a model
            larger than the budget is a ValueError naming it.
        batch_size: images per forward, the bound on activation memory.
    """

    kind = "local"

    def __init__(self, names: Sequence[str], models: Mapping[str, object] | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | str | None = None,
                 offload: bool = False, memory_budget_gb: float | None = None, batch_size: int = 32) -> None:
        self.device = resolve_device(device)
        dtype = default_dtype(self.device) if dtype is None else dtype
        if dtype in ("float32", torch.float32):
            dtype = None  # the checkpoints' own precision, for factories that take no dtype too
        self.batch_size = batch_size
        home = torch.device("cpu") if offload or memory_budget_gb is not None else self.device
        models = dict(models or {})
        self.scorers = {}
        for name in names:
            source = models.get(name, name)
            scorer = load_scorer(source, device=home, dtype=dtype) if isinstance(source, str) else source
            if isinstance(scorer, torch.nn.Module):  # not a judge behind an HTTP endpoint
                scorer = scorer.to(home).eval().requires_grad_(False)
            self.scorers[name] = scorer
        self.offload = offload or (memory_budget_gb is not None and self._over_budget(memory_budget_gb))
        if not self.offload:
            for scorer in self.scorers.values():
                if isinstance(scorer, torch.nn.Module):
                    scorer.to(self.device)

    def _over_budget(self, budget_gb: float) -> bool:
        """True when the models' weights exceed ``budget_gb`` together; ValueError when one does alone."""
        sizes = {name: weight_bytes(scorer) / 2**30 for name, scorer in self.scorers.items()
                 if isinstance(scorer, torch.nn.Module)}
        if not sizes:
            return False
        largest = max(sizes, key=sizes.get)
        if sizes[largest] > budget_gb:
            raise ValueError(f"reward {largest!r} holds {sizes[largest]:.2f} GiB of weights, more than the memory "
                             f"budget of {budget_gb:g} GiB (a smaller dtype, or another placement?)")
        return sum(sizes.values()) > budget_gb

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
        """The scorer on the device for the ``with`` block (moved there and back when offloading)."""
        if not self.offload or not isinstance(scorer, torch.nn.Module):
            yield scorer
            return
        scorer.to(self.device)
        try:
            yield scorer
        finally:
            scorer.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()  # give the freed blocks back to the trainer

    def close(self) -> None:
        self.scorers.clear()
