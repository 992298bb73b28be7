"""The image-format allow-list: what is opened, what is refused, and that refused data reaches no parser."""

import io
import struct
import zlib

import pytest
from PIL import EpsImagePlugin, Image

from imreward.image_io import (LOCAL_FORMATS, WEB_FORMATS, ImageHeader, ImageLoadError, load_image, parse_formats,
                               verify_image)

from conftest import make_image

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"


def encoded(fmt: str, size: tuple[int, int] = (20, 12)) -> bytes:
    buffer = io.BytesIO()
    make_image(size[1], size[0], seed=5).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_web_formats_are_verified_from_the_header(fmt):
    assert verify_image(encoded(fmt)) == ImageHeader(fmt, 20, 12, "RGB")


@pytest.mark.parametrize("fmt", ["TIFF", "GIF", "BMP"])
def test_local_formats_are_refused_where_only_web_formats_are_allowed(fmt, tmp_path):
    data = encoded(fmt)
    with pytest.raises(ImageLoadError, match=f"format {fmt} is not accepted"):
        verify_image(data)
    with pytest.raises(ImageLoadError, match=f"format {fmt} is not accepted"):
        load_image(data, formats=WEB_FORMATS)
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(data)
    assert load_image(path).size == (20, 12)  # the Python API's default: files the caller chose
    assert verify_image(path, LOCAL_FORMATS).format == fmt


def test_eps_is_refused_by_every_list_and_ghostscript_never_runs(monkeypatch):
    def ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript was called")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    for formats in (WEB_FORMATS, LOCAL_FORMATS):
        with pytest.raises(ImageLoadError, match="format EPS is not accepted"):
            load_image(EPS, formats=formats)
    with pytest.raises(ValueError, match="never accepted"):
        parse_formats("png,eps")
    with pytest.raises(ValueError, match="never accepted"):
        load_image(EPS, formats={"EPS"})


def test_non_images_and_oversized_headers_are_refused_without_decoding():
    with pytest.raises(ImageLoadError, match="not in an accepted format"):
        verify_image(b"<html><script>alert(1)</script></html>")
    with pytest.raises(ImageLoadError, match="not in an accepted format"):
        verify_image(b"MZ\x90\x00" + b"\x00" * 200)  # a Windows executable's header
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        verify_image(png_header_claiming(100_000, 100_000))
    assert verify_image(png_header_claiming(4000, 3000)) == ImageHeader("PNG", 4000, 3000, "RGB")  # no pixels read
    with pytest.raises(ImageLoadError, match="no image data"):
        verify_image(b"")


def test_format_names_are_parsed_for_users():
    assert parse_formats("png, JPG ,webp") == WEB_FORMATS  # JPEG brings MPO (camera JPEGs) along
    assert parse_formats(["web", "tif", "gif", "bmp"]) == LOCAL_FORMATS
    with pytest.raises(ValueError, match="unknown image format 'heic'"):
        parse_formats("png,heic")
    with pytest.raises(ValueError, match="at least one"):
        parse_formats(" , ")


def test_the_model_applies_its_allow_list(tmp_path):
    from imreward.testing import tiny_model

    model = tiny_model(seed=0)
    tiff = encoded("TIFF")
    assert model.preprocess(tiff).shape[0] == 3
    model.image_formats = WEB_FORMATS
    errors = {}
    scores = model.score_batch("a cat", [encoded("PNG"), tiff], on_error=lambda i, e: errors.update({i: str(e)}))
    assert scores[0] is not None and scores[1] is None
    assert "format TIFF is not accepted" in errors[1]
    assert isinstance(Image.open(io.BytesIO(tiff)), Image.Image)  # the same bytes are a valid TIFF


def test_a_corrupt_header_of_an_accepted_format_is_named():
    with pytest.raises(ImageLoadError, match="cannot decode image: a corrupt PNG header"):
        verify_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
