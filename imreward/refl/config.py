"""Settings of a ReFL run (defaults follow the paper and the original ``train_refl.py``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from imreward.refl.guards import DropSpec, parse_drop_limits

REFL = "refl"
PRETRAIN = "pretrain"
LOSS_NAMES = (REFL, PRETRAIN)
# Where gradients flow through sampling (see ``imreward.refl.diffusion``).
METHOD_REFL, METHOD_DRAFT, METHOD_ALIGNPROP = "refl", "draft-k", "alignprop"
METHODS = (METHOD_REFL, METHOD_DRAFT, METHOD_ALIGNPROP)
MIXED_PRECISION_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def parse_loss_cycle(text: str) -> tuple[frozenset[str], ...]:
    """``"refl,pretrain"`` -> steps alternate ReFL / pre-training; ``"refl+pretrain"`` -> both every step.

    Optimizer step ``s`` computes the losses of entry ``s % len(cycle)``.
    """
    cycle = []
    for entry in text.split(","):
        losses = frozenset(part.strip() for part in entry.split("+") if part.strip())
        unknown = losses - set(LOSS_NAMES)
        if not losses or unknown:
            raise ValueError(f"loss cycle {text!r}: each entry joins {LOSS_NAMES} with '+', got {entry!r}")
        cycle.append(losses)
    return tuple(cycle)


@dataclass
class ReFLConfig:
    """Hyper-parameters of ``ReFLTrainer``.

    Attributes:
        output_dir: checkpoints (``checkpoints/step_N``), validation grids, logs and the final export.
        resolution: generated image side in pixels.
        batch_size: prompts per ReFL batch (and image–caption pairs per pre-training batch), per process.
        images_per_prompt: images generated for each prompt of a ReFL batch (from different noise); a
            reward normalised per prompt (``--reward-normalization prompt-zscore``) needs 2 or more.
        max_steps: optimizer steps.
        num_inference_steps: sampler steps T (the paper: 40).
        method: ``"refl"`` (one step t in ``refl_step_range`` with gradients, its x0 prediction is
            scored), ``"draft-k"`` (gradients through the last ``backprop_steps`` steps) or
            ``"alignprop"`` (through the last k steps, k drawn uniformly from 1..``backprop_steps``).
        backprop_steps: K; default 1 for DRaFT-K (DRaFT-1), T for AlignProp.
        refl_step_range: inclusive range [T1, T2] of the step index taken with gradients; default:
            the last quarter of the schedule, [T - ceil(T/4), T - 1], which is the paper's [30, 39]
            at T = 40 and the same documented choice for flow-matching models at any T.
        reward_weight: lambda in loss = lambda * ReLU(threshold - reward).
        reward_threshold: rewards above it give no gradient.
        guidance_scale: guidance during ReFL sampling and validation; default: the family's
            (1 = no CFG for SD 1.x/2.x/SDXL, as the paper; 7 CFG for SD3; 3.5 distilled guidance for FLUX).
        loss_cycle: which losses each optimizer step computes (see ``parse_loss_cycle``).
        pretrain_weight: weight of the pre-training (noise-prediction MSE) loss.
        lora_rank: 0 trains the full UNet; > 0 trains LoRA adapters (peft) of that rank.
        mixed_precision: "no", "fp16" or "bf16" (accelerate autocast). The trainer never casts the
            pipeline's modules: load them in ``frozen_dtype`` / ``denoiser_dtype`` (``load_pipeline``
            does) to hold them at that precision.
        checkpoint_every / validation_every: in optimizer steps; 0 disables. Monitors and the stop
            rule act only at validations, so they need ``validation_every`` and ``validation_prompts``.
        checkpoints_total_limit: keep only the newest N checkpoints (None keeps all).
        monitors: names of the monitor scorers (never trained on) scored at each validation (record only;
            the trainer receives the scorers).
        stop_when_monitor_drops: stop when a monitor's validation mean falls more than its limit below
            its first validation; the best validation so far is kept in ``best/`` (see ``guards``). One
            limit for every monitor (``0.05``, or ``"5%"`` of its start), a dict name -> limit, or a list
            of ``"NAME=LIMIT"`` and at most one bare default ``LIMIT`` (``guards.parse_drop_limits``).
        anchor_samples: > 0: the pre-training loss runs on this many of the generator's own
            pre-tuning samples (a KL-style anchor) instead of user images.
    """

    output_dir: str
    resolution: int = 512
    batch_size: int = 2
    images_per_prompt: int = 1
    max_steps: int = 100
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    num_inference_steps: int = 40
    method: str = METHOD_REFL
    backprop_steps: int | None = None
    refl_step_range: tuple[int, int] | None = None
    reward_weight: float = 1e-3
    reward_threshold: float = 2.0
    guidance_scale: float | None = None
    loss_cycle: str = REFL
    pretrain_weight: float = 1.0
    lora_rank: int = 0
    lora_alpha: float | None = None
    gradient_checkpointing: bool = False
    use_ema: bool = False
    ema_decay: float = 0.9999
    mixed_precision: str = "no"
    checkpoint_every: int = 0
    checkpoints_total_limit: int | None = None
    validation_every: int = 0
    validation_prompts: list[str] = field(default_factory=list)
    validation_seed: int = 1234
    seed: int = 0
    log_with: str | None = None
    monitors: list[str] = field(default_factory=list)
    stop_when_monitor_drops: DropSpec = None
    anchor_samples: int = 0

    def __post_init__(self) -> None:
        steps = self.num_inference_steps
        if steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {steps}")
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is not one of {METHODS}")
        low, high = self.step_window
        if not 0 <= low <= high < steps:
            raise ValueError(f"refl_step_range {self.refl_step_range} must satisfy "
                             f"0 <= T1 <= T2 < num_inference_steps={self.num_inference_steps}")
        if self.resolution % 8:
            raise ValueError(f"resolution {self.resolution} must be a multiple of 8")
        if self.batch_size < 1 or self.max_steps < 0 or self.gradient_accumulation_steps < 1:
            raise ValueError("batch_size and gradient_accumulation_steps must be >= 1, max_steps >= 0")
        if self.images_per_prompt < 1:
            raise ValueError("images_per_prompt must be >= 1")
        if not 1 <= self.max_backprop_steps <= steps:
            raise ValueError(f"backprop_steps {self.backprop_steps} must lie in 1..num_inference_steps={steps}")
        if self.anchor_samples < 0:
            raise ValueError("anchor_samples must be >= 0")
        if self.stop_when_monitor_drops is not None and not self.monitors:
            raise ValueError("stop_when_monitor_drops needs at least one monitor")
        parse_drop_limits(self.stop_when_monitor_drops, self.monitors)
        if self.monitors and not self.validating:
            guards = "monitors" if self.stop_when_monitor_drops is None else "monitors and stop_when_monitor_drops"
            raise ValueError(f"{guards} act only at validations, which are off: give validation_every > 0 and validation "
                             "prompts (CLI: --validation-every N and --validation-count N or --validation-prompts)")
        self.cycle = parse_loss_cycle(self.loss_cycle)

    @property
    def validating(self) -> bool:
        """Whether the run validates (a period and prompts)."""
        return bool(self.validation_every > 0 and self.validation_prompts)

    @property
    def frozen_dtype(self) -> torch.dtype:
        """The dtype to hold the frozen modules in: the mixed-precision dtype, else float32."""
        return MIXED_PRECISION_DTYPES.get(self.mixed_precision, torch.float32)

    @property
    def denoiser_dtype(self) -> torch.dtype:
        """The denoiser's: under LoRA adapters, as the frozen modules; trained in full, float32."""
        return self.frozen_dtype if self.lora_rank > 0 else torch.float32

    @property
    def step_window(self) -> tuple[int, int]:
        """[T1, T2] of ReFL's gradient step: ``refl_step_range`` or the last quarter of the schedule."""
        if self.refl_step_range is not None:
            return tuple(self.refl_step_range)
        steps = self.num_inference_steps
        return steps - math.ceil(steps / 4), steps - 1

    @property
    def max_backprop_steps(self) -> int:
        """K of DRaFT-K (default 1) or AlignProp's largest truncation (default T)."""
        if self.backprop_steps is not None:
            return self.backprop_steps
        return self.num_inference_steps if self.method == METHOD_ALIGNPROP else 1

    def losses_at(self, step: int) -> frozenset[str]:
        """The losses optimizer step ``step`` (0-based) computes."""
        return self.cycle[step % len(self.cycle)]

    def uses(self, loss: str) -> bool:
        return any(loss in entry for entry in self.cycle)

    def to_dict(self) -> dict:
        return asdict(self)
