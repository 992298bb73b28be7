"""Reading ``/v1/score`` request bodies (JSON, msgpack, multipart) and writing responses; no pickle.

Request fields, whatever the encoding:
    ``prompts``: list of str, one per image or a single one for all (``prompt``: str also accepted);
    ``images``: list of encoded PNG/JPEG/WebP images (base64 strings in JSON, bytes in msgpack,
    files in multipart); ``model``: optional name of a loaded model (default: the first);
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


class RequestError(Exception):
    """A request the server refuses; ``status`` is the 4xx (or 503) code, ``reason`` a metrics label,
    ``headers`` extra response headers (such as ``Retry-After``)."""

    def __init__(self, status: int, message: str, reason: str, headers: dict[str, str] | None = None) -> None:
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")  # echoed text stays encodable
        super().__init__(message)
        self.status, self.message, self.reason, self.headers = status, message, reason, headers


@dataclass
class ScoreRequest:
    """A validated request: one prompt per image; images still encoded (base64 str or bytes)."""

    prompts: list[str]
    images: list[str | bytes]
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
        if not isinstance(image, (str, bytes)):
            raise RequestError(422, f"images[{index}]: expected base64 text or bytes, got {type(image).__name__}",
                               "fields")
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
