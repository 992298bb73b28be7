"""Everything a training run needs, as one dataclass the CLI fills and the Python API takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16")
SELECT_BEST = ("accuracy", "loss")
OPTIMIZERS = ("adam", "adamw")
# Freeze ratio of the paper (Xu et al. 2023, sec. 4.1) for a pretrained backbone.
PAPER_FREEZE_RATIO = 0.7


@dataclass
class TrainConfig:
    """A training run.

    Data paths are ImageRewardDB-layout folders (``metadata-{split}.parquet`` + image zips; the
    split read is ``train``/``validation``/``test`` by role), metadata ``.parquet`` files, or JSON
    files in the original layout (images relative to ``image_root`` or the JSON's folder).

    The model comes from ``init`` (a BLIP ``model_large.pth``-layout checkpoint, or anything
    ``imreward.load`` reads) or from scratch with ``model_config`` (an ``ImageRewardConfig`` JSON;
    default: the published architecture). With a BLIP init, ``model_config`` gives the architecture.

    ``batch_size`` counts prompts per optimizer step over all processes; each prompt contributes all
    its ranked pairs. It must divide by ``grad_accum`` times the number of processes.
    ``freeze_ratio`` None means 0.7 (the paper's) for a pretrained init and 0 from scratch;
    ``lora_rank`` trains LoRA adapters and the head instead, the backbone frozen.
    ``eval_every``/``checkpoint_every`` None mean once per epoch.
    ``max_steps`` stops the run early; the learning-rate schedule still spans all ``epochs``.
    ``select_best`` picks the best checkpoint by validation pair ``accuracy`` (ties: lower loss) or ``loss``.
    ``threads`` None chooses by model size (``imreward.threads.choose_threads``).
    """

    train_data: str | Path
    val_data: str | Path
    output_dir: str | Path
    test_data: str | Path | None = None
    image_root: str | Path | None = None
    model_config: str | Path | None = None
    init: str | Path | None = None
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    eval_batch_size: int | None = None
    grad_accum: int = 1
    lr: float = 1e-5
    optimizer: str = "adam"
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    max_grad_norm: float | None = 1.0
    select_best: str = "accuracy"
    freeze_ratio: float | None = None
    lora_rank: int | None = None  # LoRA adapters of this rank instead of freezing (imreward.train.lora)
    lora_targets: tuple[str, ...] | None = None  # module-name suffixes; default: attention and MLP projections
    lora_alpha: float | None = None  # default: lora_rank
    precision: str = "auto"
    gradient_checkpointing: bool = False
    seed: int = 0
    eval_every: int | None = None
    checkpoint_every: int | None = None
    num_workers: int = 2
    threads: int | None = None
    device: str | None = None
    resume: bool = False
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.select_best not in SELECT_BEST:
            raise ValueError(f"select_best must be one of {SELECT_BEST}, got {self.select_best!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.freeze_ratio is not None and not 0.0 <= self.freeze_ratio <= 1.0:
            raise ValueError(f"freeze_ratio must be in [0, 1], got {self.freeze_ratio}")
        if self.lora_rank is not None and (self.lora_rank < 1 or self.freeze_ratio is not None):
            raise ValueError("lora_rank must be at least 1, and LoRA replaces freeze_ratio: give one of them")
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("max_steps", "eval_every", "checkpoint_every", "eval_batch_size", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 when given")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of grad_accum {self.grad_accum}")
        self.output_dir = Path(self.output_dir)

    @property
    def effective_freeze_ratio(self) -> float:
        if self.freeze_ratio is not None:
            return self.freeze_ratio
        return PAPER_FREEZE_RATIO if self.init is not None else 0.0
