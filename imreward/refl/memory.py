"""Peak host and accelerator memory of this process, for ReFL run summaries and benchmarks."""

from __future__ import annotations

import sys

import torch

GIB = 2**30


def peak_host_bytes() -> int | None:
    """The largest resident set size this process has had (``None`` where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def peak_memory(device: torch.device | str | None = None) -> dict[str, float | None]:
    """``peak_host_gib``: the process's peak resident memory; ``peak_device_gib``: the most memory
    torch has held allocated on ``device`` (a CUDA device; ``None`` elsewhere). Both in GiB, 3 decimals."""
    host = peak_host_bytes()
    device = torch.device(device) if device is not None else None
    on_device = None
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        on_device = round(torch.cuda.max_memory_allocated(device) / GIB, 3)
    return {"peak_host_gib": None if host is None else round(host / GIB, 3), "peak_device_gib": on_device}
