"""Optional JPEG decoding on the GPU for ``score_batch(..., decode="gpu")``.

JPEG files and bytes are decoded in one batch by nvJPEG (``torchvision.io.decode_jpeg`` with a
CUDA device), then resized, cropped and normalised on the GPU by ``preprocess_tensor``. This is
not the default: nvJPEG's IDCT differs from libjpeg-turbo's by a level here and there, and torch's
antialiased bicubic resize (without 8-bit rounding) from Pillow's, so scores deviate slightly from
the PIL path, which keeps exact parity with the original implementation (``benchmarks/gpu_suite.py``
measures the deviation). Every image is first checked from its header (``verify_image``: allowed
format, pixel limit); anything but an RGB or grayscale baseline JPEG goes through the PIL path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from imreward.image_io import ImageLoadError, verify_image
from imreward.preprocess import preprocess_tensor

GPU_DECODED_MODES = ("RGB", "L")


def _jpeg_bytes(source: object, formats: Iterable[str], max_pixels: int) -> bytes | None:
    """The bytes of ``source`` if it is a JPEG this path decodes; None for the PIL path.

    Raises:
        ImageLoadError: ``source`` fails ``verify_image`` (format, size, corrupt header).
    """
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        return None
    header = verify_image(source, formats, max_pixels)
    if header.format != "JPEG" or header.mode not in GPU_DECODED_MODES:
        return None
    return Path(source).read_bytes() if isinstance(source, (str, os.PathLike)) else bytes(source)


def gpu_preprocess(sources: Sequence[object], device: torch.device, size: int, mean: Sequence[float],
                   std: Sequence[float], formats: Iterable[str],
                   max_pixels: int) -> list[torch.Tensor | Exception | None]:
    """Per source: pixels [3, size, size] float32 on ``device``, the error that refused it, or None
    where the PIL path must decode it (not a JPEG this path handles, or nvJPEG failed)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    formats = frozenset(formats)
    results: list[torch.Tensor | Exception | None] = [None] * len(sources)
    batch: list[tuple[int, torch.Tensor]] = []
    for index, source in enumerate(sources):
        try:
            data = _jpeg_bytes(source, formats, max_pixels)
        except ImageLoadError as error:
            results[index] = error
            continue
        if data is not None:
            batch.append((index, torch.frombuffer(bytearray(data), dtype=torch.uint8)))
    if not batch:
        return results
    try:
        decoded = decode_jpeg([data for _, data in batch], mode=ImageReadMode.RGB, device=device)
    except RuntimeError:  # nvJPEG refused one (progressive, unusual sampling): all go the PIL way
        return results
    for (index, _), image in zip(batch, decoded):
        pixels = image.unsqueeze(0).float().div_(255.0)
        results[index] = preprocess_tensor(pixels, size, mean, std)[0]
    return results
