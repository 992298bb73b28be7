"""Turn the image inputs users pass (paths, bytes, PIL images, arrays, tensors) into PIL images,
with errors that name the offending input."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image

from imreward.errors import ImageLoadError

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray, torch.Tensor]

# Pillow's own decompression-bomb threshold (about 89 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485


def describe(source: object) -> str:
    """A short name for an image input, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.width}x{source.height}>"
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return f"<{type(source).__name__} {tuple(source.shape)}>"
    return f"<{type(source).__name__}>"


def _check_pixels(image: Image.Image, name: str, max_pixels: int) -> None:
    if image.width * image.height > max_pixels:
        raise ImageLoadError(f"{name}: {image.width}x{image.height} pixels exceeds the limit of {max_pixels} "
                             "(refused as a possible decompression bomb)")


def _decode(stream: io.IOBase, name: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
            _check_pixels(image, name, max_pixels)
            image.load()
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{name}: refused as a possible decompression bomb ({error})") from error
    except Exception as error:  # Pillow raises many types for corrupt data
        raise ImageLoadError(f"{name}: cannot decode image ({type(error).__name__}: {error})") from error
    return image


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    """HxW, HxWx1, HxWx3 or HxWx4 arrays; uint8 as is, floats taken as [0, 1]."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageLoadError(f"{name}: expected an HxW, HxWx3 or HxWx4 array, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageLoadError(f"{name}: array has NaN or infinite values")
        array = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageLoadError(f"{name}: array dtype must be uint8 or floating point in [0, 1], got {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def load_image(source: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Return a decoded PIL image for ``source``.

    Paths and encoded bytes are decoded (no EXIF rotation, as in the original ImageReward);
    numpy arrays are HxW[xC]; torch tensors are CxHxW; both uint8 or floats in [0, 1].

    Raises:
        ImageLoadError: the file is missing, empty, corrupt or larger than ``max_pixels``.
        TypeError: ``source`` is of an unsupported type.
    """
    name = describe(source)
    if isinstance(source, Image.Image):
        _check_pixels(source, name, max_pixels)
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{name}: file is empty")
        try:
            with open(path, "rb") as stream:
                return _decode(stream, name, max_pixels)
        except OSError as error:
            raise ImageLoadError(f"{name}: cannot read file ({error})") from error
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageLoadError(f"{name}: no image data")
        return _decode(io.BytesIO(bytes(source)), name, max_pixels)
    if isinstance(source, torch.Tensor):
        if source.ndim != 3:
            raise ImageLoadError(f"{name}: expected a CxHxW tensor")
        return load_image(source.detach().cpu().permute(1, 2, 0).numpy(), max_pixels)
    if isinstance(source, np.ndarray):
        image = _from_array(source, name)
        _check_pixels(image, name, max_pixels)
        return image
    raise TypeError(f"unsupported image type {type(source).__name__}: pass a path, bytes, a PIL image, "
                    "a numpy array or a torch tensor")
