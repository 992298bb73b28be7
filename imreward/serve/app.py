"""The reward server's FastAPI application: ``/v1/score``, ``/v1/models``, ``/health``, ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

import torch
from fastapi import Depends, FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from imreward.normalize import prompt_zscore
from imreward.scoring import RewardScorer
from imreward.serve.batcher import DynamicBatcher
from imreward.serve.fair_pool import FairPool
from imreward.serve.limits import BodySizeLimit, check_bearer_token
from imreward.serve.metrics import ServerMetrics
from imreward.serve.payload import (RawImage, RequestError, ScoreRequest, image_input, read_score_request,
                                    score_response, wants_msgpack)
from imreward.serve.settings import ServeSettings

logger = logging.getLogger("imreward.serve")
BATCHED_SCORER_METHODS = ("preprocess", "encode_prompts", "score_preprocessed")


def _prepare_image(model: RewardScorer, field: str | bytes | RawImage) -> torch.Tensor | str:
    """Normalised pixels [3, S, S] of one image field, or the reason it cannot be scored."""
    try:
        return model.preprocess(image_input(field, model.max_pixels))
    except Exception as error:  # a bad image fails its own item only (Pillow raises many types)
        return str(error)


def prompt_normalized(scores: list[float | None], prompts: list[str]) -> list[float | None]:
    """Z-scores of the scored images within each prompt's images (``imreward.normalize.prompt_zscore``);
    None where the image has no score, 0.0 for a prompt with one scored image."""
    valid = [i for i, score in enumerate(scores) if score is not None]
    values = prompt_zscore(torch.tensor([scores[i] for i in valid], dtype=torch.float64), [prompts[i] for i in valid])
    normalized: list[float | None] = [None] * len(scores)
    for index, value in zip(valid, values.tolist()):
        normalized[index] = value
    return normalized


def tensor_bytes(item: object) -> int:
    """Bytes of the tensors in one ``preprocess`` output (a tensor, or a dict or tuple of them)."""
    if isinstance(item, torch.Tensor):
        return item.numel() * item.element_size()
    values = item.values() if isinstance(item, dict) else item if isinstance(item, (list, tuple)) else ()
    return sum(tensor_bytes(value) for value in values)


@dataclass(eq=False)  # hashed by identity: the request's key in the decode pool
class Admission:
    """What one admitted request holds: its image count, and the bytes of its images decoded so far."""

    images: int
    bytes: int = 0


class ScoringService:
    """Decodes request images in a thread pool shared fairly between requests (``FairPool``) and
    scores them through each model's batcher; bounds the images and decoded bytes held at once."""

    def __init__(self, models: dict[str, RewardScorer], settings: ServeSettings, metrics: ServerMetrics) -> None:
        self.models, self.settings, self.metrics = models, settings, metrics
        self.default_model = next(iter(models))
        self.batchers = {name: DynamicBatcher(model, name, settings.max_batch_size, settings.max_wait_ms, metrics)
                         for name, model in models.items()}
        self.decode_pool: FairPool | None = None
        self.images_in_flight = 0
        self.bytes_held = 0  # of the decoded images of the requests in flight
        self.image_bytes = dict.fromkeys(models, 0)  # per model: the largest decoded image seen so far

    def start(self) -> None:
        self.decode_pool = FairPool(self.settings.decode_workers, name="decode")
        for batcher in self.batchers.values():
            batcher.start()

    async def stop(self) -> None:
        for batcher in self.batchers.values():
            await batcher.stop()
        self.decode_pool.shutdown()

    def model_name(self, requested: str | None) -> str:
        name = requested or self.default_model
        if name not in self.models:
            raise RequestError(404, f"unknown model {name!r}; loaded: {', '.join(self.models)}", "unknown_model")
        return name

    async def score(self, request: ScoreRequest) -> tuple[list[float | None], list[dict]]:
        """Scores in request order (None for failed items) and the errors ``[{"index", "message"}]``.

        Raises:
            RequestError: unknown model (404), no image could be scored (422, naming each item), or
                ``max_queued_images`` or ``max_queued_bytes`` would be exceeded (503 with ``Retry-After``).
        """
        name = self.model_name(request.model)
        admission = self._admit(name, len(request.images))
        try:
            return await self._score_admitted(name, request, admission)
        finally:
            self.images_in_flight -= admission.images
            self.bytes_held -= admission.bytes

    def _admit(self, name: str, count: int) -> Admission:
        """Count ``count`` images in flight, or refuse them when the server is full: more than
        ``max_queued_images`` images, or decoded images (estimated from the largest of the model so
        far) over ``max_queued_bytes``. A request alone in the server is always admitted, so one
        larger than a limit cannot be refused forever."""
        settings = self.settings
        if self.images_in_flight:
            limit, byte_limit = settings.max_queued_images, settings.max_queued_bytes
            expected_bytes = self.bytes_held + count * self.image_bytes[name]
            if limit is not None and self.images_in_flight + count > limit:
                reason = f"{self.images_in_flight} images in flight, the limit is {limit}"
            elif byte_limit is not None and expected_bytes > byte_limit:
                reason = f"{self.bytes_held / 2**20:.0f} MiB of decoded images held, the limit is {byte_limit / 2**20:.0f}"
            else:
                reason = None
            if reason:
                raise RequestError(503, f"server busy: {reason}; retry later", "overloaded",
                                   {"Retry-After": str(settings.retry_after_s)})
        self.images_in_flight += count
        return Admission(count)

    async def _prepare(self, name: str, field: str | bytes, admission: Admission) -> torch.Tensor | str:
        item = await asyncio.wrap_future(self.decode_pool.submit(admission, _prepare_image, self.models[name], field))
        size = 0 if isinstance(item, str) else tensor_bytes(item)
        self.image_bytes[name] = max(self.image_bytes[name], size)
        admission.bytes += size
        self.bytes_held += size
        return item

    async def _score_admitted(self, name: str, request: ScoreRequest,
                              admission: Admission) -> tuple[list[float | None], list[dict]]:
        model = self.models[name]
        prepared = await asyncio.gather(*(self._prepare(name, field, admission) for field in request.images))
        errors = [{"index": i, "message": f"images[{i}]: {item}"} for i, item in enumerate(prepared)
                  if isinstance(item, str)]
        valid = [i for i, item in enumerate(prepared) if not isinstance(item, str)]
        self.metrics.images.labels(name, "failed").inc(len(errors))
        if errors:
            self.metrics.errors.labels("bad_image").inc(len(errors))
        if not valid:
            raise RequestError(422, "no image could be scored: " + "; ".join(e["message"] for e in errors),
                               "bad_image")
        text = await asyncio.wrap_future(self.decode_pool.submit(admission, model.encode_prompts,
                                                                 [request.prompts[i] for i in valid]))
        values = await self.batchers[name].score([prepared[i] for i in valid], text)
        scores: list[float | None] = [None] * len(prepared)
        for index, value in zip(valid, values):
            if math.isfinite(value):
                scores[index] = value
            else:
                errors.append({"index": index, "message": f"images[{index}]: the model returned {value}"})
        errors.sort(key=lambda error: error["index"])
        self.metrics.images.labels(name, "scored").inc(len(valid))
        return scores, errors


def create_app(models: dict[str, RewardScorer], settings: ServeSettings | None = None) -> FastAPI:
    """A server for ``models`` (name -> scorer in eval mode); the first is the default model.

    Sets each model's ``max_pixels`` and ``image_formats`` to the server's.
    """
    if not models:
        raise ValueError("give at least one model")
    for name, model in models.items():
        missing = [method for method in BATCHED_SCORER_METHODS if not hasattr(model, method)]
        if missing:
            raise ValueError(f"model {name!r} ({type(model).__name__}) cannot be served: the server batches "
                             "preprocessed images, which needs an imreward.RewardScorer "
                             f"(missing {', '.join(missing)})")
    settings = settings or ServeSettings()
    for model in models.values():
        model.max_pixels, model.image_formats = settings.max_pixels, settings.image_formats
    metrics = ServerMetrics()
    service = ScoringService(models, settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        yield
        await service.stop()  # uvicorn has already let the requests in flight finish

    app = FastAPI(title="imreward reward server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.state.service, app.state.metrics = service, metrics

    def require_token(request: Request) -> None:
        check_bearer_token(request, settings.token)

    authorized = [Depends(require_token)]

    @app.exception_handler(RequestError)
    async def refuse(request: Request, error: RequestError) -> JSONResponse:
        metrics.errors.labels(error.reason).inc()
        return JSONResponse({"detail": error.message}, status_code=error.status, headers=error.headers)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "models": list(models)}

    @app.get("/v1/models", dependencies=authorized)
    async def list_models() -> dict:
        return {"default": service.default_model, "models": [
            {"name": name, "image_size": model.image_size, "device": str(model.device),
             "dtype": str(model.compute_dtype).removeprefix("torch.")} for name, model in models.items()]}

    @app.get("/metrics", dependencies=authorized)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/v1/score", dependencies=authorized)
    async def score(request: Request) -> Response:
        started, status = time.perf_counter(), 500
        try:
            parsed = await read_score_request(request, settings)
            scores, errors = await service.score(parsed)
            status = 200
            normalized = prompt_normalized(scores, parsed.prompts) if parsed.normalize else None
            return score_response(scores, errors, wants_msgpack(request), normalized=normalized)
        except RequestError as error:
            status = error.status
            raise
        except HTTPException as error:
            status = error.status_code
            raise
        except ClientDisconnect:  # the client left, or its body timed out (imreward.serve.connections)
            status = 499
            return Response(status_code=status)
        except Exception:
            logger.exception("scoring failed")
            metrics.errors.labels("internal").inc()
            return JSONResponse({"detail": "internal error while scoring; see the server log"}, status_code=500)
        finally:
            metrics.requests.labels(str(status)).inc()
            metrics.latency.observe(time.perf_counter() - started)

    return app
