"""Reading ``/v1/score`` request bodies (JSON, msgpack, multipart) and writing responses; no pickle.

Request fields, whatever the encoding:
    ``prompts``: list of str, one per image or a single one for all (``prompt``: str also accepted);
    ``images``: list of encoded PNG/JPEG/WebP images (base64 strings in JSON, bytes in msgpack,
    files in multipart) or raw pixels ``{"shape": [H, W, C], "dtype": "uint8", "data": bytes}``
    (C order, C 1, 3 or 4 or shape [H, W]; data base64 in JSON), which skip any decoding;
    ``model``: optional name of a loaded model (default: the first);
    ``normalize``: optional ``"prompt-zscore"`` (or ``"prompt"``) to add z-scores within each prompt's images.
Response: ``{"scores": [float | null, ...], "errors": [{"index": i, "message": str}, ...]}``, plus
``"normalized": [float | null, ...]`` when the request asked for it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

import msgpack
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imreward.normalize import NORMALIZATIONS, PROMPT_ZSCORE
from imreward.serve.settings import ServeSettings

JSON_TYPES = ("application/json",)
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
MULTIPART_TYPE = "multipart/form-data"
MAX_PROMPT_CHARS = 10_000
REQUEST_FIELDS = frozenset({"prompts", "prompt", "images", "model", "normalize"})
NORMALIZE_VALUES = (*NORMALIZATIONS, "prompt")  # "prompt": short for prompt-zscore
RAW_IMAGE_KEYS = frozenset({"shape", "dtype", "data"})
RAW_CHANNELS = (1, 3, 4)


class RequestError(Exception):
    """A request the server refuses; ``status`` is the 4xx (or 503) code, ``reason`` a metrics label,
    ``headers`` extra response headers (such as ``Retry-After``)."""

    def __init__(self, status: int, message: str, reason: str, headers: dict[str, str] | None = None) -> None:
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")  # echoed text stays encodable
        super().__init__(message)
        self.status, self.message, self.reason, self.headers = status, message, reason, headers


@dataclass(frozen=True)
class RawImage:
    """Raw uint8 pixels of one image, checked: ``len(data)`` is the product of ``shape``."""

    shape: tuple[int, ...]  # (H, W) or (H, W, C)
    data: bytes

    def pixels(self, max_pixels: int) -> np.ndarray:
        """A read-only view [H, W(, C)] of the data; ValueError if H x W exceeds ``max_pixels``."""
        height, width = self.shape[:2]
        if height * width > max_pixels:
            raise ValueError(f"{width}x{height} raw pixels exceeds the limit of {max_pixels}")
        return np.frombuffer(self.data, dtype=np.uint8).reshape(self.shape)


@dataclass
class ScoreRequest:
    """A validated request: one prompt per image; images still encoded (base64 str or bytes) or raw."""

    prompts: list[str]
    images: list[str | bytes | RawImage]
    model: str | None
    normalize: bool = False  # add per-prompt z-scores to the response


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def wants_msgpack(request: Request) -> bool:
    return any(kind in request.headers.get("accept", "") for kind in MSGPACK_TYPES)


async def read_score_request(request: Request, settings: ServeSettings) -> ScoreRequest:
    """Parse and validate the body of a ``/v1/score`` request.

    Raises:
        RequestError: wrong content type (415), malformed body (400), invalid fields (422), too many images (413).
    """
    kind = media_type(request.headers.get("content-type"))
    if kind in JSON_TYPES or kind in MSGPACK_TYPES:
        body = await request.body()
        if not body:
            raise RequestError(400, "empty request body", "empty")
        fields = _decode_json(body) if kind in JSON_TYPES else _decode_msgpack(body)
    elif kind == MULTIPART_TYPE:
        fields = await _read_multipart(request, settings)
    else:
        raise RequestError(415, f"unsupported content type {kind or '(none)'!r}: send application/json, "
                                "application/msgpack or multipart/form-data", "content_type")
    return validate_fields(fields, settings)


def _decode_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:  # also integers over Python's 4,300-digit limit
        raise RequestError(400, f"malformed JSON body: {error}", "malformed") from error


def _decode_msgpack(body: bytes) -> object:
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True, timestamp=0)
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.ExtraData, RecursionError) as error:
        raise RequestError(400, f"malformed msgpack body: {type(error).__name__}: {error}", "malformed") from error


async def _read_multipart(request: Request, settings: ServeSettings) -> dict[str, object]:
    limit = settings.max_images_per_request + 1  # one more, so an oversized request is told apart
    async with request.form(max_files=limit, max_fields=limit + 2, max_part_size=MAX_PROMPT_CHARS * 4) as form:
        images = []
        for item in form.getlist("images"):
            if isinstance(item, str):
                raise RequestError(422, f"images[{len(images)}]: expected a file part, got a text field", "fields")
            images.append(await item.read())
        fields: dict[str, object] = {"images": images, "prompts": list(form.getlist("prompts"))}
        for name in ("prompt", "model", "normalize"):
            if name in form:
                fields[name] = form[name]
        unknown = set(form.keys()) - REQUEST_FIELDS
        if unknown:
            raise RequestError(422, f"unknown form fields: {sorted(unknown)}", "fields")
    return fields


def validate_fields(fields: object, settings: ServeSettings) -> ScoreRequest:
    """Check field types and counts; broadcast a single prompt to every image."""
    if not isinstance(fields, dict):
        raise RequestError(422, "the body must be an object with 'prompts' and 'images'", "fields")
    unknown = set(fields) - REQUEST_FIELDS
    if unknown:
        raise RequestError(422, f"unknown fields: {sorted(map(str, unknown))}", "fields")
    images = fields.get("images")
    if not isinstance(images, list):
        raise RequestError(422, "'images' must be a list of encoded images", "fields")
    if not images:
        raise RequestError(422, "empty request: no images", "empty")
    if len(images) > settings.max_images_per_request:
        raise RequestError(413, f"{len(images)} images exceeds the limit of {settings.max_images_per_request} "
                                "per request", "too_many_images")
    for index, image in enumerate(images):
        if isinstance(image, dict):
            images[index] = raw_image(image, index)
        elif not isinstance(image, (str, bytes)):
            raise RequestError(422, f"images[{index}]: expected base64 text, bytes or a raw-pixel map, got "
                                    f"{type(image).__name__}", "fields")
    prompts = _prompt_list(fields)
    if len(prompts) == 1:
        prompts = prompts * len(images)
    if len(prompts) != len(images):
        raise RequestError(422, f"mismatched counts: {len(prompts)} prompts for {len(images)} images "
                                "(give one prompt per image, or one for all)", "count_mismatch")
    model = fields.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(422, "'model' must be a string", "fields")
    normalize = fields.get("normalize", "none")
    if normalize not in NORMALIZE_VALUES:
        raise RequestError(422, f"'normalize' must be one of {', '.join(map(repr, NORMALIZE_VALUES))}", "fields")
    return ScoreRequest(prompts, images, model, normalize != "none")


def _prompt_list(fields: dict) -> list[str]:
    if "prompt" in fields and fields.get("prompts"):
        raise RequestError(422, "give 'prompts' or 'prompt', not both", "fields")
    single = "prompt" in fields
    prompts = [fields["prompt"]] if single else fields.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise RequestError(422, "'prompts' must be a non-empty list of strings", "fields")
    for index, prompt in enumerate(prompts):
        name = "prompt" if single else f"prompts[{index}]"
        if not isinstance(prompt, str):
            raise RequestError(422, f"{name}: expected a string, got {type(prompt).__name__}", "fields")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise RequestError(413, f"{name}: longer than {MAX_PROMPT_CHARS} characters", "oversize")
        _check_unicode(prompt, name)
    return prompts


def _check_unicode(text: str, name: str) -> None:
    """Refuse text that no UTF-8 encoder (so no tokenizer) accepts: JSON ``\\ud800`` escapes and some
    multipart charsets (UTF-7) can produce lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise RequestError(400, f"{name}: not valid Unicode text (a lone surrogate at character {error.start}); "
                                "send UTF-8 text", "malformed") from error


def raw_image(field: dict, index: int) -> RawImage:
    """Check a raw-pixel map before anything is allocated for it: exactly the keys ``shape``,
    ``dtype`` ("uint8"), ``data``; a shape [H, W] or [H, W, C] of positive ints with C in
    ``RAW_CHANNELS``; as many bytes as the shape says.

    Raises:
        RequestError: 422 naming the item and the problem.
    """
    def refuse(problem: str) -> RequestError:
        return RequestError(422, f"images[{index}]: raw pixels: {problem}", "fields")

    if set(field) != RAW_IMAGE_KEYS:
        raise refuse(f"expected exactly the keys {sorted(RAW_IMAGE_KEYS)}, got {sorted(map(str, field))}")
    if field["dtype"] != "uint8":
        raise refuse(f"dtype must be 'uint8', got {str(field['dtype'])[:40]!r}")
    shape = field["shape"]
    if (not isinstance(shape, list) or len(shape) not in (2, 3)
            or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in shape)):
        raise refuse("shape must be [height, width] or [height, width, channels] of positive integers")
    if len(shape) == 3 and shape[2] not in RAW_CHANNELS:
        raise refuse(f"channels must be one of {RAW_CHANNELS}, got {shape[2]}")
    data = field["data"]
    if not isinstance(data, (str, bytes)):
        raise refuse(f"data must be bytes (base64 text in JSON), got {type(data).__name__}")
    try:
        data = decode_image_field(data)
    except ValueError as error:
        raise refuse(str(error)) from error
    expected = 1
    for size in shape:
        expected *= size
    if len(data) != expected:
        raise refuse(f"shape {shape} needs {expected} bytes, got {len(data)}")
    return RawImage(tuple(shape), data)


def image_input(field: str | bytes | RawImage, max_pixels: int) -> bytes | np.ndarray:
    """What ``load_image`` takes for one image field: encoded bytes, or the raw pixels as an array."""
    return field.pixels(max_pixels) if isinstance(field, RawImage) else decode_image_field(field)


def decode_image_field(image: str | bytes) -> bytes:
    """Bytes of one image field (base64 text in JSON); raises ValueError on invalid base64."""
    if isinstance(image, bytes):
        return image
    try:
        return base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"invalid base64 ({error})") from error


def score_response(scores: list[float | None], errors: list[dict], as_msgpack: bool, status: int = 200,
                   normalized: list[float | None] | None = None) -> Response:
    content = {"scores": scores, "errors": errors}
    if normalized is not None:
        content["normalized"] = normalized
    if as_msgpack:
        return Response(msgpack.packb(content), status_code=status, media_type=MSGPACK_TYPES[0])
    return JSONResponse(content, status_code=status)
