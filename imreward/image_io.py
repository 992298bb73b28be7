"""Turn the image inputs users pass (paths, bytes, PIL images, arrays, tensors) into PIL images,
with errors that name the offending input, and check encoded images against a format allow-list.

Encoded images (paths, bytes) are opened only by the Pillow plugins of the allowed formats
(``Image.open(formats=...)``), so no other parser ever sees the data. Two lists:

- ``WEB_FORMATS`` (PNG, JPEG, WebP): for images from others; the server, ``imreward score`` and
  ``score-dataset`` accept only these unless told otherwise (``--image-formats``).
- ``LOCAL_FORMATS`` (adds GIF, BMP, TIFF): the Python API's default, for files the caller chose;
  the formats the original ImageReward was checked against (``tests/core/test_parity.py``).

``FORBIDDEN_FORMATS`` (EPS, PDF, WMF/EMF) can never be allowed: Pillow hands EPS to Ghostscript, an
external interpreter of a full programming language, and WMF/EMF to the Windows renderer.

Decoding work is bounded as well as pixels: a progressive JPEG is decoded once per scan, so 52 KB
of a few thousand scans takes seconds of CPU; a JPEG with more than ``MAX_JPEG_SCANS`` scans (a
camera's or encoder's progressive JPEG has about 10) is refused from its markers, before decoding.
"""

from __future__ import annotations

import io
import os
import re
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Union

from PIL import Image

from imreward.errors import ImageLoadError

if TYPE_CHECKING:
    import numpy as np
    import torch

# numpy and torch are not imported here, so that the CLI and the annotation platform check images
# without paying for them: an array or tensor input means its module is already imported.
ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, "np.ndarray", "torch.Tensor"]

# Pillow's own decompression-bomb threshold (about 89 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485

# Pillow format ids; MPO is how Pillow names JPEGs from cameras that carry extra pictures.
WEB_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP"})
LOCAL_FORMATS = WEB_FORMATS | {"GIF", "BMP", "TIFF"}
FORBIDDEN_FORMATS = frozenset({"EPS", "PDF", "WMF", "EMF"})
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "PS": "EPS"}
MAX_JPEG_SCANS = 100
_MARKER_AFTER_ENTROPY_DATA = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")  # not a stuffed 0xFF00 nor a restart


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says: Pillow's format id, size in pixels and mode."""

    format: str
    width: int
    height: int
    mode: str


def parse_formats(names: str | Iterable[str]) -> frozenset[str]:
    """Pillow format ids from user names (``"png,jpeg,tiff"`` or a list; case-insensitive, ``jpg``
    and ``tif`` accepted; ``jpeg`` brings MPO along). ``web`` and ``local`` name the two lists.

    Raises:
        ValueError: an unknown format, or one of ``FORBIDDEN_FORMATS``.
    """
    if isinstance(names, str):
        names = names.split(",")
    Image.init()
    formats: set[str] = set()
    for raw in names:
        name = _FORMAT_ALIASES.get(raw.strip().upper(), raw.strip().upper())
        if not name:
            continue
        if name in FORBIDDEN_FORMATS:
            raise ValueError(f"image format {name} is never accepted: its Pillow plugin hands the data to an "
                             "external program (Ghostscript) or a system renderer")
        if name in ("WEB", "LOCAL"):
            formats |= WEB_FORMATS if name == "WEB" else LOCAL_FORMATS
        elif name in Image.OPEN:
            formats |= {name, "MPO"} if name == "JPEG" else {name}
        else:
            raise ValueError(f"unknown image format {raw.strip()!r}; Pillow reads: {', '.join(sorted(Image.OPEN))}")
    if not formats:
        raise ValueError("give at least one image format")
    return frozenset(formats)


def _sniffed_format(prefix: bytes) -> str | None:
    """The format whose signature ``prefix`` (the first 16 bytes) matches, only to name a refused
    format in an error: Pillow's signature checks look at these bytes and parse nothing else."""
    Image.init()
    for name, (_, accept) in Image.OPEN.items():
        try:
            result = accept is not None and accept(prefix)
        except Exception:  # a signature check that cannot handle a short prefix
            continue
        if result and not isinstance(result, str):
            return name
    return None


def _open(stream: BinaryIO, name: str, formats: frozenset[str], max_pixels: int) -> Image.Image:
    """Open (header only) with the plugins of ``formats``, then check the format and pixel count."""
    Image.init()
    if formats & FORBIDDEN_FORMATS:
        raise ValueError(f"image formats {sorted(formats & FORBIDDEN_FORMATS)} are never accepted")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=sorted(formats & Image.OPEN.keys()))  # MPO opens as JPEG
    except Image.UnidentifiedImageError as error:
        stream.seek(0)
        sniffed = _sniffed_format(stream.read(16))
        allowed = ", ".join(sorted(formats))
        if sniffed is not None and sniffed not in formats:
            raise ImageLoadError(f"{name}: image format {sniffed} is not accepted (accepted: {allowed})") from error
        if sniffed is not None:
            raise ImageLoadError(f"{name}: cannot decode image: a corrupt {sniffed} header") from error
        raise ImageLoadError(f"{name}: cannot decode image: not in an accepted format ({allowed}), "
                             "or corrupt") from error
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{name}: refused as a possible decompression bomb ({error})") from error
    except Exception as error:  # Pillow raises many types for corrupt headers
        raise ImageLoadError(f"{name}: cannot decode image ({type(error).__name__}: {error})") from error
    if image.format not in formats:  # a plugin may return a related format (JPEG -> MPO)
        raise ImageLoadError(f"{name}: image format {image.format} is not accepted "
                             f"(accepted: {', '.join(sorted(formats))})")
    _check_pixels(image, name, max_pixels)
    if image.format in ("JPEG", "MPO"):
        _check_jpeg_scans(stream, name)
    return image


def jpeg_scan_count(data: bytes, stop_after: int = MAX_JPEG_SCANS) -> int:
    """Start-of-scan markers of the first image of a JPEG stream, walking its marker segments and
    skipping each scan's entropy-coded data (counting stops past ``stop_after``)."""
    position, scans = 2, 0  # after SOI
    while position + 4 <= len(data) and scans <= stop_after:
        if data[position] != 0xFF:
            return scans  # not a marker where one must be: a corrupt stream, left to the decoder
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker == 0xD9:  # end of image
            break
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
        else:
            position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
            if marker == 0xDA:
                scans += 1
                following = _MARKER_AFTER_ENTROPY_DATA.search(data, position)
                if following is None:
                    break
                position = following.end() - 2
    return scans


def _check_jpeg_scans(stream: BinaryIO, name: str) -> None:
    stream.seek(0)
    scans = jpeg_scan_count(stream.read())
    stream.seek(0)
    if scans > MAX_JPEG_SCANS:
        raise ImageLoadError(f"{name}: a JPEG of more than {MAX_JPEG_SCANS} scans is refused (each scan is "
                             "decoded anew: a possible decompression bomb)")


def _encoded_stream(source: str | os.PathLike | bytes | bytearray | memoryview, name: str) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageLoadError(f"{name}: no image data")
        return io.BytesIO(bytes(source))
    path = Path(source)
    if not path.is_file():
        raise ImageLoadError(f"{name}: no such file")
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{name}: file is empty")
        return open(path, "rb")
    except OSError as error:
        raise ImageLoadError(f"{name}: cannot read file ({error})") from error


def verify_image(source: str | os.PathLike | bytes | bytearray | memoryview, formats: Iterable[str] = WEB_FORMATS,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """Check an encoded image (path or bytes) from its header alone, without decoding pixels.

    Only the Pillow plugins of ``formats`` (Pillow ids, see ``parse_formats``) look at the data.

    Raises:
        ImageLoadError: missing or empty input, a format not in ``formats`` (named when
            recognisable), a header Pillow cannot parse, or more than ``max_pixels`` pixels.
    """
    name = describe(source)
    with _encoded_stream(source, name) as stream, _open(stream, name, frozenset(formats), max_pixels) as image:
        return ImageHeader(image.format, image.width, image.height, image.mode)


def describe(source: object) -> str:
    """A short name for an image input, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.width}x{source.height}>"
    if _is_array(source) or _is_tensor(source):
        return f"<{type(source).__name__} {tuple(source.shape)}>"
    return f"<{type(source).__name__}>"


def _is_tensor(source: object) -> bool:
    """A torch tensor; without torch imported, nothing can be one."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(source, torch.Tensor)


def _is_array(source: object) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(source, numpy.ndarray)


def _check_pixels(image: Image.Image, name: str, max_pixels: int) -> None:
    if image.width * image.height > max_pixels:
        raise ImageLoadError(f"{name}: {image.width}x{image.height} pixels exceeds the limit of {max_pixels} "
                             "(refused as a possible decompression bomb)")


def _decode(stream: BinaryIO, name: str, formats: frozenset[str], max_pixels: int) -> Image.Image:
    image = _open(stream, name, formats, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Exception as error:  # Pillow raises many types for corrupt data
        raise ImageLoadError(f"{name}: cannot decode image ({type(error).__name__}: {error})") from error
    return image


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    """HxW, HxWx1, HxWx3 or HxWx4 arrays; uint8 as is, floats taken as [0, 1]."""
    import numpy as np

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


def load_image(source: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS,
               formats: Iterable[str] = LOCAL_FORMATS) -> Image.Image:
    """Return a decoded PIL image for ``source``.

    Paths and encoded bytes are decoded (no EXIF rotation, as in the original ImageReward) if
    their format is in ``formats`` (Pillow ids; default ``LOCAL_FORMATS``: PNG, JPEG, WebP, GIF,
    BMP, TIFF; pass ``WEB_FORMATS`` for images from others); numpy arrays are HxW[xC]; torch
    tensors are CxHxW; both uint8 or floats in [0, 1].

    Raises:
        ImageLoadError: the file is missing, empty, corrupt, in a format not in ``formats`` or
            larger than ``max_pixels``.
        TypeError: ``source`` is of an unsupported type.
    """
    name = describe(source)
    if isinstance(source, Image.Image):
        _check_pixels(source, name, max_pixels)
        return source
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        stream = _encoded_stream(source, name)
        try:
            return _decode(stream, name, frozenset(formats), max_pixels)
        except OSError as error:
            raise ImageLoadError(f"{name}: cannot read file ({error})") from error
        finally:
            if isinstance(stream, io.BufferedReader):  # a decoded image no longer needs its file
                stream.close()
    if _is_tensor(source):
        if source.ndim != 3:
            raise ImageLoadError(f"{name}: expected a CxHxW tensor")
        return load_image(source.detach().cpu().permute(1, 2, 0).numpy(), max_pixels)
    if _is_array(source):
        image = _from_array(source, name)
        _check_pixels(image, name, max_pixels)
        return image
    raise TypeError(f"unsupported image type {type(source).__name__}: pass a path, bytes, a PIL image, "
                    "a numpy array or a torch tensor")
