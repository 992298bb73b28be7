"""Reproducible weights for any checkpoint layout.

Every tensor is drawn from a generator seeded by the tensor's *name*, so the same weights come out
whatever order a model builds its modules in. That lets the original implementation (in its own
environment, where this file is loaded by path: it imports nothing from imreward) and this package
load exactly the same checkpoint.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import torch


def _name_seed(name: str, salt: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{name}".encode()).digest()[:8], "little") & (2**63 - 1)


def seeded_tensor(name: str, shape: Iterable[int], salt: int = 0) -> torch.Tensor:
    """A float32 tensor for parameter ``name`` that depends only on (name, shape, salt).

    Scales keep activations and rewards of order one in a deep model: LayerNorm weights near 1,
    linear weights ~ N(0, 1/fan_in), biases and embeddings small.
    """
    shape = tuple(shape)
    generator = torch.Generator().manual_seed(_name_seed(name, salt))
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    leaf = name.rsplit(".", 1)[-1]
    is_norm = "norm" in name.lower()
    if name.endswith("position_ids"):
        return torch.arange(shape[-1]).expand(shape).clone()
    if is_norm and leaf == "weight":
        return 1.0 + 0.1 * noise
    if leaf == "bias" or is_norm:
        return 0.02 * noise
    if len(shape) >= 2 and "embed" not in name and "token" not in name:
        fan_in = math.prod(shape[1:])
        return noise / math.sqrt(fan_in)
    return 0.02 * noise


def seeded_state_dict(shapes: dict[str, Iterable[int]], salt: int = 0) -> dict[str, torch.Tensor]:
    return {name: seeded_tensor(name, shape, salt) for name, shape in shapes.items()}


def with_rows_scaled(state: dict[str, torch.Tensor], name: str, rows: list[int], factor: float) -> dict[str, torch.Tensor]:
    """``state`` with rows ``rows`` of tensor ``name`` multiplied by ``factor``: steers a seeded
    language model's output head towards some tokens (e.g. digits, so that a judge's answers hold numbers)."""
    tensor = state[name].clone()
    tensor[rows] *= factor
    return {**state, name: tensor}


def with_opposed_rows(state: dict[str, torch.Tensor], name: str, row: int, opposite: int,
                      factor: float) -> dict[str, torch.Tensor]:
    """``state`` with row ``row`` of tensor ``name`` scaled by ``factor`` and row ``opposite`` set to its
    negative: a seeded language model whose next token splits between two answers (Yes/No) by its input."""
    tensor = state[name].clone()
    tensor[row] *= factor
    tensor[opposite] = -tensor[row]
    return {**state, name: tensor}


def score_token_ids(tokenizer_file: str) -> list[int]:
    """Ids of the tokens of a ``tokenizer.json`` holding a digit, "Final", "Score" or ":"."""
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer_file)).get_vocab()
    return sorted(i for token, i in vocab.items()
                  if any(c.isdigit() for c in token) or token.lstrip("Ġ") in ("Final", "Score", ":"))
