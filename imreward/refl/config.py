"""Settings of a ReFL run (defaults follow the paper and the original ``train_refl.py``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

REFL = "refl"
PRETRAIN = "pretrain"
LOSS_NAMES = (REFL, PRETRAIN)


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
        refl_step_range: inclusive range [T1, T2] of the step index taken with gradients.
        reward_weight: lambda in loss = lambda * ReLU(threshold - reward).
        reward_threshold: rewards above it give no gradient.
        guidance_scale: classifier-free guidance during ReFL sampling and validation (1 = none, as the paper).
        loss_cycle: which losses each optimizer step computes (see ``parse_loss_cycle``).
        pretrain_weight: weight of the pre-training (noise-prediction MSE) loss.
        lora_rank: 0 trains the full UNet; > 0 trains LoRA adapters (peft) of that rank.
        mixed_precision: "no", "fp16" or "bf16" (accelerate); frozen modules run in that dtype.
        checkpoint_every / validation_every: in optimizer steps; 0 disables.
        checkpoints_total_limit: keep only the newest N checkpoints (None keeps all).
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
    refl_step_range: tuple[int, int] = (30, 39)
    reward_weight: float = 1e-3
    reward_threshold: float = 2.0
    guidance_scale: float = 1.0
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

    def __post_init__(self) -> None:
        low, high = self.refl_step_range
        if not 0 <= low <= high < self.num_inference_steps:
            raise ValueError(f"refl_step_range {self.refl_step_range} must satisfy "
                             f"0 <= T1 <= T2 < num_inference_steps={self.num_inference_steps}")
        if self.resolution % 8:
            raise ValueError(f"resolution {self.resolution} must be a multiple of 8")
        if self.batch_size < 1 or self.max_steps < 0 or self.gradient_accumulation_steps < 1:
            raise ValueError("batch_size and gradient_accumulation_steps must be >= 1, max_steps >= 0")
        if self.images_per_prompt < 1:
            raise ValueError("images_per_prompt must be >= 1")
        self.cycle = parse_loss_cycle(self.loss_cycle)

    def losses_at(self, step: int) -> frozenset[str]:
        """The losses optimizer step ``step`` (0-based) computes."""
        return self.cycle[step % len(self.cycle)]

    def uses(self, loss: str) -> bool:
        return any(loss in entry for entry in self.cycle)

    def to_dict(self) -> dict:
        return asdict(self)
