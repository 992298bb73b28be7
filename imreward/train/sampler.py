"""Deterministic, resumable, distributed batching of prompts.

The order of an epoch is a permutation drawn from (seed, epoch) alone, so a resumed run sees the same
batches from the saved step on. Each optimizer step takes ``batch_size`` prompts of the permutation,
cuts them into ``grad_accum`` micro-batches, and gives each process a contiguous slice of each: the
same command on 1 or N processes puts the same prompts in the same step.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_permutation(num_items: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(num_items, generator=generator).tolist()


class PromptBatchSampler(Sampler[list[int]]):
    """Yields this process's micro-batches (lists of prompt indices) for the steps of one epoch.

    The last global batch of an epoch is dropped when incomplete, so every step has ``batch_size``
    prompts; with fewer prompts than ``batch_size`` an epoch is one step of all of them.
    """

    def __init__(self, num_prompts: int, batch_size: int, grad_accum: int = 1, world_size: int = 1, rank: int = 0,
                 seed: int = 0) -> None:
        if batch_size % (grad_accum * world_size):
            raise ValueError(f"batch_size {batch_size} is not a multiple of grad_accum ({grad_accum}) x "
                             f"processes ({world_size})")
        self.num_prompts = num_prompts
        self.batch_size = min(batch_size, num_prompts - num_prompts % (grad_accum * world_size))
        if self.batch_size < grad_accum * world_size:
            raise ValueError(f"{num_prompts} prompts cannot fill {grad_accum * world_size} micro-batches")
        self.grad_accum, self.world_size, self.rank, self.seed = grad_accum, world_size, rank, seed
        self.epoch, self.start_step = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return self.num_prompts // self.batch_size

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Iterate epoch ``epoch`` from optimizer step ``start_step`` (for resuming)."""
        self.epoch, self.start_step = epoch, start_step

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.grad_accum

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_permutation(self.num_prompts, self.seed, self.epoch)
        micro = self.batch_size // self.grad_accum
        share = micro // self.world_size
        for step in range(self.start_step, self.steps_per_epoch):
            batch = order[step * self.batch_size: (step + 1) * self.batch_size]
            for part in range(self.grad_accum):
                micro_batch = batch[part * micro: (part + 1) * micro]
                yield micro_batch[self.rank * share: (self.rank + 1) * share]


def evaluation_batches(num_prompts: int, batch_size: int, world_size: int = 1, rank: int = 0) -> list[list[int]]:
    """Every prompt once over all processes, in order: this process's batches."""
    mine = list(range(rank, num_prompts, world_size))
    return [mine[start: start + batch_size] for start in range(0, len(mine), batch_size)]
