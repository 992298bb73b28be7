"""Decoded batches -> score columns: the model side of batch scoring, shared by both engines.

``BatchScorer`` holds the loaded models (each loaded once per process or Ray actor), tells the
decoding side what to prepare (``plan``), and scores a decoded batch (``imreward.batch.decode``)
into one column per model: ``score`` for one model, ``score_NAME`` for each of several.
"""

from __future__ import annotations

import numpy as np
import torch

from imreward.batch.decode import PIL_IMAGE, DecodePlan, preprocessing_slots, stacked_slots
from imreward.image_io import DEFAULT_MAX_PIXELS, WEB_FORMATS
from imreward.scoring import Scorer, batch_images


def score_columns(names: list[str]) -> list[str]:
    """The result's score columns: ``score`` for one model, ``score_<name>`` for each of several."""
    return ["score"] if len(names) == 1 else [f"score_{name}" for name in names]


class BatchScorer:
    """Scores decoded batches with every model of ``models`` ({result name: scorer})."""

    def __init__(self, models: dict[str, Scorer], formats: frozenset[str] = WEB_FORMATS) -> None:
        self.models = models
        slots, slot_of = preprocessing_slots(models)
        stacked = stacked_slots(models, slot_of)
        self.slot_keys = list(slots)
        self.slot_index = {name: self.slot_keys.index(slot) for name, slot in slot_of.items()}
        self.columns = dict(zip(models, score_columns(list(models))))
        max_pixels = min(getattr(model, "max_pixels", DEFAULT_MAX_PIXELS) for model in models.values())
        self.plan = DecodePlan(tuple(slots.values()), tuple(slot in stacked for slot in self.slot_keys),
                               max_pixels, formats)

    def score(self, batch: dict) -> dict:
        """The batch's row columns (no pixels) with one score column per model (None where the row
        failed); a model's failure on one row (a judge's unreadable answer) is added to its error."""
        prompts = batch["prompt"]
        result = {name: value for name, value in batch.items() if not name.startswith(("pixels:", "ok:", "items:"))}
        result["error"], result["reason"] = list(batch["error"]), list(batch["reason"])
        for name, model in self.models.items():
            slot = self.slot_index[name]
            scores: list[float | None] = [None] * len(prompts)
            if self.plan.stacked[slot]:
                positions = np.flatnonzero(np.asarray(batch[f"ok:{slot}"]))
                inputs = torch.from_numpy(np.ascontiguousarray(np.asarray(batch[f"pixels:{slot}"])[positions]))
            else:
                items = batch[f"items:{slot}"]
                positions = [position for position, item in enumerate(items) if item is not None]
                inputs = [items[position] for position in positions]
            if len(positions):
                texts = [prompts[position] for position in positions]

                def record(index: int, error: Exception, name=name, positions=positions) -> None:
                    row = positions[index]
                    message = f"{name}: {type(error).__name__}: {error}"
                    earlier = result["error"][row]
                    result["error"][row] = message if earlier is None else f"{earlier}; {message}"
                    result["reason"][row] = result["reason"][row] or "model_error"

                for position, value in zip(positions, self._scores(model, slot, inputs, texts, record)):
                    scores[position] = value
            result[self.columns[name]] = scores
        return result

    def _scores(self, model: Scorer, slot: int, inputs, prompts: list[str], on_error) -> list[float | None]:
        if self.slot_keys[slot] == PIL_IMAGE:
            return model.score_batch(prompts, inputs, batch_size=len(inputs), on_error=on_error)
        if not self.plan.stacked[slot]:
            inputs = batch_images(model, inputs)
        return model.score_preprocessed(inputs, model.encode_prompts(prompts)).tolist()
