"""The precision a scorer runs in: ``auto`` chosen per the CPU's instruction sets, and int8 on the CPU.

``auto`` picks the fastest faithful floating-point type for the device. On the CPU that depends on
matrix units: with AMX-BF16 (Sapphire Rapids and later) bfloat16 matrix multiplies run on AMX tiles
and are several times faster than float32; without AMX, bfloat16 runs on AVX512-BF16 or is emulated
and is no faster than float32 (issue 25 measured 0.84x on an AVX512-BF16/VNNI CPU), so float32 stays.
With AMX-FP16 (Granite Rapids) float16 runs at bfloat16's speed with three more mantissa bits, so it
is preferred there. On an accelerator ``auto`` keeps each scorer's default (float32).

``int8`` quantizes the backbone's ``nn.Linear`` layers dynamically (weights int8 per output channel,
activations quantized per batch) with PyTorch's own x86 kernels (fbgemm, AVX512-VNNI); embeddings,
norms, convolutions, attention and the layers a scorer names in ``float_modules`` (its head,
its projections) stay float32. It is a CPU-only option and never chosen by ``auto``: its scores move
more than bfloat16's (README "Speed" gives the measured differences and flipped pairs).
"""

from __future__ import annotations

import os
import platform
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where used, so that the command line's parser stays light
    import torch
    from torch import nn

FLOAT_DTYPES = ("float32", "float16", "bfloat16")
DTYPE_CHOICES = ("auto", *FLOAT_DTYPES, "int8")  # what --dtype accepts
INT8 = "int8"


@lru_cache(maxsize=1)
def _proc_cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def _torch_cpu_flags() -> frozenset[str]:
    """The same flags from torch's own CPU probe (macOS, Windows, or a /proc without cpuinfo)."""
    import torch

    probes = {"amx_bf16": "_is_amx_tile_supported", "amx_fp16": "_is_amx_fp16_supported",
              "avx512_bf16": "_is_avx512_bf16_supported", "avx512_vnni": "_is_avx512_vnni_supported"}
    return frozenset(flag for flag, probe in probes.items() if getattr(torch.cpu, probe, lambda: False)())


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them (``amx_bf16``, ``avx512_vnni``, ...).

    ``IMREWARD_CPU_FLAGS`` (comma- or space-separated, ``none`` for none) replaces the detected
    flags, to reproduce another machine's choice (the test suite sets ``none``). AMX flags are
    dropped when ``ONEDNN_MAX_CPU_ISA`` keeps oneDNN, which runs torch's bfloat16 matrix multiplies,
    off AMX (e.g. ``AVX512_CORE_VNNI``): the choice follows what will run.
    """
    given = os.environ.get("IMREWARD_CPU_FLAGS")
    if given is not None:
        flags = frozenset(flag for flag in given.replace(",", " ").lower().split() if flag != "none")
    else:
        flags = _proc_cpu_flags() or _torch_cpu_flags()
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if isa and isa not in ("ALL", "DEFAULT") and "AMX" not in isa:
        flags = frozenset(flag for flag in flags if not flag.startswith("amx"))
    return flags


def auto_cpu_dtype(flags: frozenset[str] | set[str]) -> tuple[str, str]:
    """(dtype name, reason) that ``auto`` picks on a CPU with these flags."""
    if "amx_fp16" in flags:
        return "float16", "AMX-FP16: float16 at bfloat16's speed, more precise"
    if "amx_bf16" in flags:
        return "bfloat16", "AMX-BF16: bfloat16 matrix multiplies on AMX tiles"
    return "float32", "no AMX: bfloat16 would be no faster than float32"


def _device_type(device: str | torch.device | None) -> str:
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device).type


def choose_dtype(dtype: str | torch.dtype | None, device: str | torch.device | None) -> tuple[str | None, str]:
    """(the concrete choice: a float dtype name, ``"int8"`` or None for the scorer's default, why).

    ``auto`` resolves per ``cpu_flags`` on the CPU and to None (the scorer's default) elsewhere;
    other values are checked and returned as given.
    """
    import torch

    if dtype is None:
        return None, "the scorer's default"
    if isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch."), "as requested"
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}")
    device_type = _device_type(device)
    if dtype == INT8 and device_type != "cpu":
        raise ValueError(f"int8 is a CPU option; on {device_type} use bfloat16 or float16")
    if dtype != "auto":
        return dtype, "as requested"
    if device_type != "cpu":
        return None, f"auto on {device_type}: the scorer's default"
    name, reason = auto_cpu_dtype(cpu_flags())
    return name, f"auto: {reason}"


def torch_dtype(dtype: str | torch.dtype | None, device: str | torch.device | None = None) -> torch.dtype | None:
    """The float ``torch.dtype`` for a scorer's weights (None: keep them as loaded), ``auto`` resolved."""
    import torch

    name, _ = choose_dtype(dtype, device)
    if name == INT8:
        raise ValueError("int8 is applied after loading: use imreward.load_scorer(..., dtype='int8') "
                         "or imreward.precision.quantize_int8")
    return None if name is None else getattr(torch, name)


def quantized_linear_names(scorer: nn.Module) -> list[str]:
    """Names of the ``nn.Linear`` layers ``quantize_int8`` converts: every plain ``nn.Linear`` outside
    the scorer's ``float_modules`` (subclasses such as ``nn.MultiheadAttention``'s output projection,
    whose weight the attention reads directly, are left as they are)."""
    from torch import nn

    keep = tuple(getattr(scorer, "float_modules", ()))
    return [name for name, module in scorer.named_modules()
            if type(module) is nn.Linear and not any(name == k or name.startswith(k + ".") for k in keep)]


def quantize_int8(scorer: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of the scorer's backbone linear layers, in place; returns the scorer.

    Runs on x86 CPUs through fbgemm (AVX512-VNNI or AVX2) and on ARM through qnnpack. The scorer
    must be on the CPU in float32; it loses ``score_tensor`` gradients (quantized layers have none).
    """
    import torch

    if any(p.device.type != "cpu" for p in scorer.parameters()):
        raise ValueError("int8 quantization needs the scorer on the CPU")
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in scorer.parameters()):
        raise ValueError("int8 quantization starts from float32 weights (load without a dtype)")
    engines = torch.backends.quantized.supported_engines
    preferred = "fbgemm" if platform.machine().lower() in ("x86_64", "amd64") else "qnnpack"
    if preferred in engines:  # measured faster than the "x86" engine's oneDNN kernels for dynamic linears
        torch.backends.quantized.engine = preferred
    names = quantized_linear_names(scorer)
    with warnings.catch_warnings():
        # torch marks its eager quantization API deprecated in favour of torchao, whose per-token int8
        # ran slower than fbgemm's (README "Speed"); it still ships and works.
        warnings.filterwarnings("ignore", message=".*deprecat.*")
        from torch.ao.quantization import per_channel_dynamic_qconfig

        torch.ao.quantization.quantize_dynamic(scorer, dict.fromkeys(names, per_channel_dynamic_qconfig),
                                               dtype=torch.qint8, inplace=True)
    return scorer
