"""How many CPU threads torch's intra-op pool uses, chosen once for every command.

Torch defaults to one thread per core. For small models each operation is too short for the pool
to pay off, and on a shared machine the threads wait for each other: 125 training steps of the
README's 2.2M-parameter synthetic model took 60 s on 1 thread and 259 s on 2 threads of a busy 2-core
CPU (``benchmarks/readme_recipe.py``). Large models (ViT-L and up) are matrix-multiply bound and gain
from every core.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import nn

# Below this many parameters a model gets one thread by default (all our tiny and synthetic models
# are under 5M; the smallest published scorer, ImageReward-v1.0, has about 450M).
SMALL_MODEL_PARAMETERS = 50_000_000


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parameter_count(models: object | Iterable[object]) -> int | None:
    """Parameters of the ``nn.Module`` among ``models`` (None when there is none: a scorer that only
    follows the ``Scorer`` protocol has no size to go by)."""
    models = [models] if isinstance(models, nn.Module) or not isinstance(models, Iterable) else list(models)
    modules = [model for model in models if isinstance(model, nn.Module)]
    if not modules:
        return None
    return sum(parameter.numel() for module in modules for parameter in module.parameters())


def choose_threads(requested: int | None = None, models: object | Iterable[object] | None = None) -> int | None:
    """The thread count to use, or None to keep torch's current setting.

    In order: ``requested`` (``--threads``) wins; an ``OMP_NUM_THREADS`` in the environment is the
    user's choice and is kept (None); ``models`` under ``SMALL_MODEL_PARAMETERS`` get 1; otherwise
    the cores shared among the processes of this machine (``LOCAL_WORLD_SIZE``, set by torchrun).
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be at least 1, got {requested}")
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    size = parameter_count(models) if models is not None else None
    if size is not None and size < SMALL_MODEL_PARAMETERS:
        return 1
    return max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def set_threads(requested: int | None = None, models: object | Iterable[object] | None = None) -> int:
    """Apply ``choose_threads`` to torch; returns the thread count now in use."""
    threads = choose_threads(requested, models)
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
