"""The scoring contract shared by ImageReward and every baseline scorer.

A scorer is an ``nn.Module`` that knows how to tokenise prompts (``encode_prompts``), how to turn
a PIL image into a normalised pixel tensor (``pil_preprocess``) and how to score a batch
(``forward``). This base class builds the user-facing API on top of those three:

- ``score(prompt, image)`` -> float, ``score(prompt, [images])`` -> list of floats
- ``inference_rank(prompt, [images])`` -> (ranking with 1 = best, rewards), as the original returns
- ``score_batch(prompts, images)`` -> many (prompt, image) pairs in batched forwards
- ``score_tensor(pixels, prompts)`` -> differentiable scores for generator training
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, runtime_checkable

import torch
from torch import nn
from tqdm.auto import tqdm

from imreward.image_io import DEFAULT_MAX_PIXELS, LOCAL_FORMATS, ImageInput, load_image
from imreward.preprocess import PilPreprocessor, preprocess_tensor

ErrorCallback = Callable[[int, Exception], None]


@runtime_checkable
class Scorer(Protocol):
    """What the CLI, evaluation, server and ReFL accept as a scorer."""

    def score(self, prompt: str, image: ImageInput | Sequence[ImageInput]) -> float | list[float]: ...

    def inference_rank(self, prompt: str, images: Sequence[ImageInput]) -> tuple[list[int], list[float]]: ...

    def score_batch(self, prompts: str | Sequence[str], images: Sequence[ImageInput], batch_size: int = 32,
                    progress: bool = False, on_error: ErrorCallback | None = None) -> list[float | None]: ...

    def score_tensor(self, pixels: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor: ...


def stack_text_rows(texts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Rows of ``encode_prompts`` outputs (one dict of tensors per item) stacked into one batch."""
    return {key: torch.stack([text[key] for text in texts]) for key in texts[0]}


def prompts_for_pixels(pixels: torch.Tensor, prompts: str | Sequence[str]) -> list[str]:
    """One prompt per image of pixels [B, 3, H, W] (one prompt for all, or B of them), checking both."""
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"expected pixels of shape [B, 3, H, W], got {tuple(pixels.shape)}")
    prompt_list = [prompts] * pixels.shape[0] if isinstance(prompts, str) else list(prompts)
    if len(prompt_list) != pixels.shape[0]:
        raise ValueError(f"got {len(prompt_list)} prompts for {pixels.shape[0]} images")
    return prompt_list


def utf8_prompts(prompts: list[str]) -> dict[str, torch.Tensor]:
    """Prompts as UTF-8 bytes [N, L] (zero-padded) and their lengths [N]: ``encode_prompts`` of a scorer
    that renders its text later (a judge's question, a conversation sized by its image)."""
    encoded = [prompt.encode("utf-8") for prompt in prompts]
    data = torch.zeros((len(encoded), max([len(e) for e in encoded] + [1])), dtype=torch.uint8)
    for row, raw in enumerate(encoded):
        data[row, : len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
    return {"utf8": data, "length": torch.tensor([len(e) for e in encoded])}


def collate_utf8_prompts(texts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Rows of ``utf8_prompts`` outputs (widths may differ) -> one batch."""
    width = max(text["utf8"].shape[-1] for text in texts)
    return {"utf8": torch.stack([torch.nn.functional.pad(t["utf8"], (0, width - t["utf8"].shape[-1])) for t in texts]),
            "length": torch.stack([t["length"] for t in texts])}


def decode_utf8_prompts(utf8: torch.Tensor, length: torch.Tensor) -> list[str]:
    """The prompts of a ``utf8_prompts`` batch."""
    return [bytes(row[:n].tolist()).decode("utf-8") for row, n in zip(utf8.cpu(), length.tolist())]


def batch_images(scorer, images: list):
    """One batch from ``scorer.preprocess`` outputs: the scorer's ``collate_images`` hook, or
    ``torch.stack`` for a scorer without it."""
    return getattr(scorer, "collate_images", torch.stack)(images)


def batch_text(scorer, texts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One batch from rows of ``scorer.encode_prompts`` outputs: the scorer's ``collate_text`` hook,
    or ``stack_text_rows`` for a scorer without it."""
    return getattr(scorer, "collate_text", stack_text_rows)(texts)


def ranks_from_scores(scores: torch.Tensor) -> list[int]:
    """1 = highest score; computed with the same two sorts as the original ImageReward."""
    _, order = torch.sort(scores, dim=0, descending=True)
    _, ranks = torch.sort(order, dim=0)
    return (ranks + 1).tolist()


class ScoreMethods:
    """``score`` and ``inference_rank`` built on the class's ``score_batch``: shared by ``RewardScorer``
    and scorers that are no ``nn.Module`` (a judge behind an HTTP endpoint)."""

    def score(self, prompt: str, image: ImageInput | Sequence[ImageInput]) -> float | list[float]:
        if isinstance(image, (list, tuple)):
            return self.score_batch(prompt, image)
        return self.score_batch(prompt, [image])[0]

    def inference_rank(self, prompt: str, images: Sequence[ImageInput]) -> tuple[list[int], list[float]]:
        rewards = torch.tensor(self.score_batch(prompt, images), dtype=torch.float32)
        return ranks_from_scores(rewards), rewards.tolist()


class RewardScorer(ScoreMethods, nn.Module):
    """Base class implementing the scoring API; subclasses define the three methods below."""

    image_size: int
    image_mean: Sequence[float]
    image_std: Sequence[float]
    max_pixels: int = DEFAULT_MAX_PIXELS
    image_formats: frozenset[str] = LOCAL_FORMATS  # encoded formats accepted (see imreward.image_io)
    float_modules: tuple[str, ...] = ()  # submodules int8 quantization leaves in float (head, projections)

    def encode_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise prompts into tensors whose first dimension is the prompt index."""
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor, **text: torch.Tensor) -> torch.Tensor:
        """Scores [B] (float32) for normalised pixels [B, 3, S, S] and encoded prompts."""
        raise NotImplementedError

    @property
    def pil_preprocess(self) -> PilPreprocessor:
        if getattr(self, "_pil_preprocess", None) is None:
            self._pil_preprocess = PilPreprocessor(self.image_size, self.image_mean, self.image_std)
        return self._pil_preprocess

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def compute_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """Load and preprocess one image input: [3, S, S] float32, normalised."""
        return self.pil_preprocess(load_image(image, self.max_pixels, self.image_formats))

    # ---- public scoring API (score and inference_rank: ScoreMethods) ----------------------

    def score_batch(self, prompts: str | Sequence[str], images: Sequence[ImageInput], batch_size: int = 32,
                    progress: bool = False, on_error: ErrorCallback | None = None,
                    num_workers: int | None = None, decode: str = "pil") -> list[float | None]:
        """Score (prompt, image) pairs in batched forwards.

        Args:
            prompts: one prompt for all images, or one per image.
            images: paths, bytes, PIL images, arrays or tensors (see ``imreward.image_io.load_image``).
            batch_size: pairs per forward pass.
            progress: show a progress bar.
            on_error: if given, an image that fails to load gets the score ``None`` and
                ``on_error(index, error)`` is called; otherwise the error is raised.
            num_workers: threads decoding and preprocessing images ahead of the model (default:
                none on the CPU, where they would compete with the model for the cores; up to 8
                on an accelerator).
            decode: ``"pil"`` (default: exact parity with the original) or ``"gpu"``: JPEGs decoded
                by nvJPEG and resized on a CUDA model's device (``imreward.gpu_decode``; scores
                deviate slightly); other inputs, and every input on a CPU model, use Pillow.
        Returns:
            One float (or ``None``) per pair, in input order.
        """
        if decode not in ("pil", "gpu"):
            raise ValueError(f"decode must be 'pil' or 'gpu', got {decode!r}")
        if decode == "gpu" and self.device.type != "cuda":
            warnings.warn("decode='gpu' needs a model on a CUDA device; decoding with Pillow", stacklevel=2)
            decode = "pil"
        if decode == "gpu" and type(self.pil_preprocess) is not PilPreprocessor:  # its resize and crop only
            warnings.warn(f"decode='gpu' makes square {self.image_size} px tensors, which {type(self).__name__} "
                          "does not take; decoding with Pillow", stacklevel=2)
            decode = "pil"
        images = list(images)
        prompt_list = [prompts] * len(images) if isinstance(prompts, str) else list(prompts)
        if len(prompt_list) != len(images):
            raise ValueError(f"got {len(prompt_list)} prompts for {len(images)} images")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not images:
            return []
        unique_prompts = list(dict.fromkeys(prompt_list))
        prompt_index = {prompt: i for i, prompt in enumerate(unique_prompts)}
        text = self.encode_prompts(unique_prompts)
        scores: list[float | None] = [None] * len(images)
        bar = tqdm(total=len(images), unit="img", disable=not progress, desc="scoring")
        batches = (self._gpu_decoded_batches(images, batch_size) if decode == "gpu"
                   else self._prefetched_batches(images, batch_size, num_workers))
        for start, pixels in batches:
            ok = [i for i, p in enumerate(pixels) if not isinstance(p, Exception)]
            for i, p in enumerate(pixels):
                if isinstance(p, Exception):
                    if on_error is None:
                        raise p
                    on_error(start + i, p)
            if ok:
                rows = torch.tensor([prompt_index[prompt_list[start + i]] for i in ok])
                batch_text = {key: value[rows] for key, value in text.items()}
                batch_scores = self.score_preprocessed(self.collate_images([pixels[i] for i in ok]), batch_text)
                for i, value in zip(ok, batch_scores.tolist()):
                    scores[start + i] = value
            bar.update(len(pixels))
        bar.close()
        return scores

    def score_tensor(self, pixels: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        """Differentiable scores [B] for pixels [B, 3, H, W] in [0, 1] on the model's device.

        Resizing, cropping and normalisation run in torch (bicubic, antialiased), so gradients
        reach ``pixels``. The model's parameters stay as they are (freeze them for ReFL).
        """
        prompt_list = [prompts] * pixels.shape[0] if isinstance(prompts, str) else list(prompts)
        if len(prompt_list) != pixels.shape[0]:
            raise ValueError(f"got {len(prompt_list)} prompts for {pixels.shape[0]} images")
        pixel_values = self.preprocess_pixels(pixels)
        text = {key: value.to(self.device) for key, value in self.encode_prompts(prompt_list).items()}
        return self(pixel_values.to(self.compute_dtype), **text)

    def collate_images(self, images: list[torch.Tensor]) -> torch.Tensor:
        """One batch from the outputs of ``preprocess`` (stacked; a scorer whose images vary in
        size overrides this together with ``score_preprocessed``)."""
        return torch.stack(images)

    def collate_text(self, texts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """One batch from rows of ``encode_prompts`` outputs (one dict of tensors per item; stacked)."""
        return stack_text_rows(texts)

    def preprocess_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable preprocessing of pixels [B, 3, H, W] in [0, 1] -> [B, 3, S, S] normalised."""
        return preprocess_tensor(pixels, self.image_size, self.image_mean, self.image_std)

    def score_preprocessed(self, pixel_values: torch.Tensor, text: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores [B] (float32, CPU) of preprocessed pixels [B, 3, S, S] and encoded prompts, without
        gradients; moves the inputs to the model's device and dtype."""
        with torch.inference_mode():
            pixel_values = pixel_values.to(self.device, self.compute_dtype, non_blocking=True)
            text = {key: value.to(self.device, non_blocking=True) for key, value in text.items()}
            return self(pixel_values, **text).float().cpu()

    # ---- internals ------------------------------------------------------------------------

    def _load_or_error(self, image: ImageInput) -> torch.Tensor | Exception:
        try:
            return self.preprocess(image)
        except TypeError:
            raise
        except Exception as error:
            return error

    def _gpu_decoded_batches(self, images: list[ImageInput],
                             batch_size: int) -> Iterator[tuple[int, list[torch.Tensor | Exception]]]:
        """Yield (start, preprocessed images on the device) per batch: JPEGs through nvJPEG, the rest
        through Pillow."""
        from imreward.gpu_decode import gpu_preprocess

        for start in range(0, len(images), batch_size):
            chunk = images[start: start + batch_size]
            decoded = gpu_preprocess(chunk, self.device, self.image_size, self.image_mean, self.image_std,
                                     self.image_formats, self.max_pixels)
            pixels = [item if item is not None else self._load_or_error(image) for item, image in zip(decoded, chunk)]
            yield start, [item if isinstance(item, Exception) else item.to(self.device) for item in pixels]

    def _prefetched_batches(self, images: list[ImageInput], batch_size: int,
                            num_workers: int | None) -> Iterator[tuple[int, list[torch.Tensor | Exception]]]:
        """Yield (start, preprocessed images) per batch.

        On an accelerator the next batch is decoded in threads while the current one runs (Pillow
        releases the GIL while decoding and resizing). On the CPU the default is to decode in this
        thread: decoding threads would compete with the model's own threads for the same cores.
        """
        if num_workers is None:
            num_workers = 0 if self.device.type == "cpu" else min(8, os.cpu_count() or 1)
        if num_workers == 0:
            for start in range(0, len(images), batch_size):
                yield start, [self._load_or_error(image) for image in images[start: start + batch_size]]
            return
        with ThreadPoolExecutor(max_workers=num_workers) as pool:
            def submit(start: int) -> list[Future]:
                return [pool.submit(self._load_or_error, image) for image in images[start: start + batch_size]]

            pending = submit(0)
            for start in range(0, len(images), batch_size):
                following = submit(start + batch_size) if start + batch_size < len(images) else []
                yield start, [future.result() for future in pending]
                pending = following
