"""Dynamic batching: images from concurrent requests share model forwards.

Each loaded model has one ``DynamicBatcher``. Requests put their preprocessed images on an
asyncio queue; a collector task takes up to ``max_batch_size`` of them, waiting at most
``max_wait_ms`` after the first, and runs the forward in a single worker thread so the event
loop stays free to accept and decode the next requests meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from imreward.scoring import RewardScorer, batch_images, batch_text
from imreward.serve.metrics import ServerMetrics


@dataclass
class _QueuedImage:
    pixels: Any  # one output of the model's ``preprocess`` (normalised [3, S, S] for most scorers)
    text: dict[str, torch.Tensor]  # this pair's row of each ``encode_prompts`` tensor
    result: asyncio.Future


class DynamicBatcher:
    """Scores queued (image, prompt) pairs of one model in shared batches."""

    def __init__(self, model: RewardScorer, name: str, max_batch_size: int, max_wait_ms: float,
                 metrics: ServerMetrics | None = None) -> None:
        self.model, self.name = model, name
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000.0
        self.metrics = metrics
        self._queue: asyncio.Queue[_QueuedImage] | None = None
        self._collector: asyncio.Task | None = None
        self._forward_thread: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start the collector task; call from inside the running event loop."""
        self._queue = asyncio.Queue()
        self._forward_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"forward-{self.name}")
        self._collector = asyncio.get_running_loop().create_task(self._collect_forever())

    async def stop(self) -> None:
        """Score what is queued, then stop the collector and the forward thread."""
        if self._collector is None:
            return
        while not self._queue.empty():
            await asyncio.sleep(self.max_wait or 0.001)
        self._collector.cancel()
        try:
            await self._collector
        except asyncio.CancelledError:
            pass
        self._forward_thread.shutdown(wait=True)
        self._collector = None

    async def score(self, pixels: list, text: dict[str, torch.Tensor]) -> list[float]:
        """Scores of ``len(pixels)`` pairs.

        Args:
            pixels: the model's ``preprocess`` outputs, batched by its ``collate_images``.
            text: encoded prompts, each tensor [len(pixels), L].
        """
        if self._collector is None:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        queued = [_QueuedImage(image, {key: value[i] for key, value in text.items()}, loop.create_future())
                  for i, image in enumerate(pixels)]
        for item in queued:
            self._queue.put_nowait(item)
        return list(await asyncio.gather(*(item.result for item in queued)))

    async def _next_batch(self) -> list[_QueuedImage]:
        batch = [await self._queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(batch) < self.max_batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [item for item in batch if not item.result.done()]  # drop those whose request was cancelled

    async def _collect_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            try:
                scores = await loop.run_in_executor(self._forward_thread, self._forward, batch)
            except Exception as error:  # a failed forward fails its own requests, never the collector
                for item in batch:
                    if not item.result.done():
                        item.result.set_exception(error)
                continue
            for item, value in zip(batch, scores):
                if not item.result.done():
                    item.result.set_result(value)

    def _forward(self, batch: list[_QueuedImage]) -> list[float]:
        started = time.perf_counter()
        pixels = batch_images(self.model, [item.pixels for item in batch])
        text = batch_text(self.model, [item.text for item in batch])
        scores = self.model.score_preprocessed(pixels, text).tolist()
        if self.metrics is not None:
            self.metrics.batch_size.labels(self.name).observe(len(batch))
            self.metrics.forward_seconds.labels(self.name).observe(time.perf_counter() - started)
        return scores
