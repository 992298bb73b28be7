"""ReFL (Reward Feedback Learning, Xu et al. 2023): fine-tune a latent diffusion UNet on a reward.

Each optimizer step computes the losses its ``loss_cycle`` entry names:

- ReFL: sample prompts, run the sampler for T steps without gradients down to a random step
  t in [T1, T2], take that step with gradients, predict x0, decode it with the VAE, score it
  with the frozen reward; loss = lambda * ReLU(threshold - reward).
- pre-training: the noise-prediction MSE on image–caption pairs, times ``pretrain_weight``.

Only the UNet (or its LoRA adapters) learns; text encoders, VAE and reward are frozen.
accelerate handles devices, mixed precision, gradient accumulation and multi-GPU. Every random
draw of a step is seeded by (seed, step, micro-batch, process), so a resumed run repeats exactly
the steps an uninterrupted run would take.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from imreward.refl import lora
from imreward.refl.config import LOSS_NAMES, PRETRAIN, REFL, ReFLConfig
from imreward.refl.diffusion import encode_prompts, initial_latents, pretraining_loss, reward_step_images
from imreward.refl.rewards import freeze, frozen_reward
from imreward.refl.validation import append_record, generate_images, save_grid

STATE_FILE = "trainer_state.json"
FROZEN_COMPONENTS = ("vae", "text_encoder", "text_encoder_2")
MIXED_PRECISION_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def step_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded by a tuple of integers (seed, step, micro-batch, process)."""
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + part) % (2**63)
    return torch.Generator().manual_seed(seed)


class ReFLTrainer:
    """Fine-tunes ``pipeline.unet`` with ReFL.

    Args:
        pipeline: a Stable Diffusion or SDXL diffusers pipeline (see ``imreward.refl.components``).
        reward: a module with a differentiable ``score_tensor(pixels, prompts) -> [B]``; it is moved to
            the training device, its parameters get no gradient and are otherwise left as they are.
        config: hyper-parameters.
        prompts: training prompts for the ReFL loss.
        pretrain_data: (pixels [3, S, S] in [-1, 1], caption) pairs, needed when the cycle uses "pretrain".
        accelerator: an ``accelerate.Accelerator``; one is built from ``config`` if omitted.
    """

    def __init__(self, pipeline, reward: torch.nn.Module, config: ReFLConfig, prompts: list[str],
                 pretrain_data: Dataset | None = None, accelerator=None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration
        from diffusers import DDIMScheduler
        from diffusers.optimization import get_scheduler

        if config.uses(REFL) and not prompts:
            raise ValueError("the ReFL loss needs training prompts")
        if config.uses(PRETRAIN) and (pretrain_data is None or len(pretrain_data) == 0):
            raise ValueError(f"loss cycle {config.loss_cycle!r} uses the pre-training loss: give pretrain_data")
        self.config, self.prompts, self.pretrain_data = config, list(prompts), pretrain_data
        self.output_dir = Path(config.output_dir)
        self.accelerator = accelerator or Accelerator(
            mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.gradient_accumulation_steps,
            log_with=config.log_with,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir),
                                                logging_dir=str(self.output_dir / "logs")))
        self.weight_dtype = MIXED_PRECISION_DTYPES.get(self.accelerator.mixed_precision, torch.float32)
        device = self.accelerator.device
        self.pipeline = pipeline
        for name in FROZEN_COMPONENTS:
            module = getattr(pipeline, name, None)
            if module is not None:
                freeze(module).to(device)
                if module.dtype != self.weight_dtype:
                    module.to(self.weight_dtype)
        self.reward = frozen_reward(reward).to(device)
        self.trainable = self._prepare_unet(pipeline.unet, device)
        optimizer = torch.optim.AdamW(self.trainable, lr=config.learning_rate, weight_decay=config.adam_weight_decay)
        processes = self.accelerator.num_processes
        lr_scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps * processes,
                                     num_training_steps=max(config.max_steps, 1) * processes)
        self.unet, self.optimizer, self.lr_scheduler = self.accelerator.prepare(pipeline.unet, optimizer, lr_scheduler)
        self.ema = None
        if config.use_ema:
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(self.trainable, decay=config.ema_decay)
            self.ema.to(device)
            self.accelerator.register_for_checkpointing(self.ema)
        self.sampler = DDIMScheduler.from_config(pipeline.scheduler.config)
        self.sampler.set_timesteps(config.num_inference_steps, device=device)
        self.step = 0
        self.loss_counts: Counter[str] = Counter()
        self.history: list[dict] = []
        if self.accelerator.is_main_process and config.log_with:
            self.accelerator.init_trackers("refl", config={k: str(v) for k, v in config.to_dict().items()})

    def _prepare_unet(self, unet, device) -> list[torch.nn.Parameter]:
        """Trainable parameters: the whole UNet (float32) or LoRA adapters over a frozen UNet in
        the mixed-precision dtype (adapters kept in float32)."""
        config = self.config
        unet.to(device)
        if config.lora_rank > 0:
            if unet.dtype != self.weight_dtype:
                unet.to(self.weight_dtype)
            from diffusers.training_utils import cast_training_params

            trainable = lora.add_lora(unet, config.lora_rank, config.lora_alpha)
            cast_training_params(unet, dtype=torch.float32)
            lora.register_checkpoint_hooks(self.accelerator)
        else:
            unet.float().requires_grad_(True)
            trainable = list(unet.parameters())
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            self.pipeline.vae.enable_gradient_checkpointing()
        unet.train()
        return trainable

    @property
    def sampling_unet(self):
        """The UNet without distributed wrappers, for gradient-free sampling."""
        return self.accelerator.unwrap_model(self.unet)

    # ---- losses --------------------------------------------------------------------------

    def compute_loss(self, loss_name: str, micro_batch: int = 0) -> dict:
        """One loss (``"refl"`` or ``"pretrain"``) for the current step and micro-batch.

        Returns:
            ``"loss"``: the weighted loss tensor to backpropagate; floats for logging:
            ``refl_loss`` and ``reward`` (mean over the batch), or ``pretrain_loss`` (unweighted).
        """
        if loss_name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {loss_name!r}; expected one of {LOSS_NAMES}")
        config = self.config
        generator = step_generator(config.seed, self.step, micro_batch, self.accelerator.process_index,
                                   LOSS_NAMES.index(loss_name))
        with self.accelerator.autocast():
            if loss_name == REFL:
                return self._refl_loss(generator)
            return self._pretrain_loss(generator)

    def _refl_loss(self, generator: torch.Generator) -> dict:
        config, device, resolution = self.config, self.accelerator.device, self.config.resolution
        indices = torch.randint(len(self.prompts), (config.batch_size,), generator=generator)
        prompts = [self.prompts[i] for i in indices]
        conditioning = encode_prompts(self.pipeline, prompts, resolution, resolution, device,
                                      guidance=config.guidance_scale > 1)
        latents = initial_latents(self.pipeline, len(prompts), resolution, resolution, generator, self.sampler,
                                  device, torch.float32)
        low, high = config.refl_step_range
        stop_index = int(torch.randint(low, high + 1, (), generator=generator))
        images = reward_step_images(self.pipeline, self.unet, self.sampling_unet, conditioning, self.sampler,
                                    latents, stop_index, config.guidance_scale)
        rewards = self.reward.score_tensor(images, prompts).float().to(device)
        loss = config.reward_weight * F.relu(config.reward_threshold - rewards).mean()
        return {"loss": loss, "refl_loss": loss.item(), "reward": rewards.mean().item()}

    def _pretrain_loss(self, generator: torch.Generator) -> dict:
        config, device, resolution = self.config, self.accelerator.device, self.config.resolution
        indices = torch.randint(len(self.pretrain_data), (config.batch_size,), generator=generator)
        pixels, captions = zip(*(self.pretrain_data[int(i)] for i in indices))
        conditioning = encode_prompts(self.pipeline, list(captions), resolution, resolution, device)
        loss = pretraining_loss(self.pipeline, self.unet, self.sampler, torch.stack(pixels).to(device),
                                conditioning, generator)
        return {"loss": config.pretrain_weight * loss, "pretrain_loss": loss.item()}

    def train_step(self) -> dict:
        """One optimizer step (over ``gradient_accumulation_steps`` micro-batches); returns its log record.

        Each loss of the step is backpropagated on its own (freeing its graph before the next);
        gradients are synchronised across processes only with the last one.
        """
        config, accelerator = self.config, self.accelerator
        losses = sorted(self.config.losses_at(self.step))
        sums: Counter[str] = Counter()
        for micro_batch in range(config.gradient_accumulation_steps):
            with accelerator.accumulate(self.unet):
                for index, loss_name in enumerate(losses):
                    last = index == len(losses) - 1
                    with contextlib.nullcontext() if last else accelerator.no_sync(self.unet):
                        parts = self.compute_loss(loss_name, micro_batch)
                        loss = parts.pop("loss")
                        accelerator.backward(loss)
                    sums.update({"loss": loss.item(), **parts})
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(self.trainable, config.max_grad_norm)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.step(self.trainable)
        self.loss_counts.update(losses)
        record = {key: value / config.gradient_accumulation_steps for key, value in sums.items()}
        record.update(step=self.step + 1, lr=self.lr_scheduler.get_last_lr()[0])
        self.step += 1
        self.history.append(record)
        accelerator.log({f"train/{key}": value for key, value in record.items() if key != "step"}, step=self.step)
        return record

    def train(self) -> list[dict]:
        """Run until ``max_steps``, checkpointing and validating as configured; returns the step records."""
        config = self.config
        if config.validation_every and config.validation_prompts and self.step == 0:
            self.validate()
        while self.step < config.max_steps:
            self.train_step()
            if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                self.save_checkpoint()
            if config.validation_every and config.validation_prompts and self.step % config.validation_every == 0:
                self.validate()
        self.accelerator.wait_for_everyone()
        return self.history

    # ---- validation ------------------------------------------------------------------------

    def validate(self, prompts: list[str] | None = None) -> float | None:
        """Generate one image per validation prompt (fixed seeds), save the grid
        ``validation/step_N.png``, log and return the mean reward (``None`` off the main process)."""
        prompts = prompts or self.config.validation_prompts
        if not self.accelerator.is_main_process or not prompts:
            return None
        config = self.config
        with self.accelerator.autocast():
            images = generate_images(self.pipeline, self.sampling_unet, self.sampler, prompts, config.resolution,
                                     config.validation_seed, config.guidance_scale, config.batch_size)
            with torch.no_grad():
                rewards = self.reward.score_tensor(images, prompts).float().cpu()
        save_grid(images, self.output_dir / "validation" / f"step_{self.step:06d}.png")
        mean_reward = rewards.mean().item()
        append_record(self.output_dir / "validation.jsonl",
                      {"step": self.step, "mean_reward": mean_reward, "rewards": rewards.tolist()})
        self.accelerator.log({"validation/mean_reward": mean_reward}, step=self.step)
        return mean_reward

    # ---- checkpoints and export ----------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Save model, optimizer, scheduler, EMA and RNG state to ``checkpoints/step_N``."""
        path = self.output_dir / "checkpoints" / f"step_{self.step:06d}"
        self.accelerator.save_state(str(path))
        if self.accelerator.is_main_process:
            (path / STATE_FILE).write_text(json.dumps({"step": self.step}))
            self._prune_checkpoints()
        return path

    def _prune_checkpoints(self) -> None:
        limit = self.config.checkpoints_total_limit
        if limit:
            for old in sorted((self.output_dir / "checkpoints").glob("step_*"))[:-limit]:
                shutil.rmtree(old)

    def resume(self, checkpoint: str | Path = "latest") -> int:
        """Restore a checkpoint folder (or the newest one with ``"latest"``); returns its step."""
        if str(checkpoint) == "latest":
            found = sorted((self.output_dir / "checkpoints").glob("step_*"))
            if not found:
                raise FileNotFoundError(f"no checkpoints under {self.output_dir / 'checkpoints'}")
            checkpoint = found[-1]
        checkpoint = Path(checkpoint)
        if not (checkpoint / STATE_FILE).is_file():
            raise FileNotFoundError(f"{checkpoint} is not a ReFL checkpoint (no {STATE_FILE})")
        self.accelerator.load_state(str(checkpoint))
        self.step = json.loads((checkpoint / STATE_FILE).read_text())["step"]
        return self.step

    def export(self, folder: str | Path | None = None) -> Path:
        """Write the result: LoRA weights (LoRA runs) or a full diffusers pipeline folder, with
        the EMA weights when EMA is on."""
        folder = Path(folder or self.output_dir / "final")
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            if self.ema is not None:
                self.ema.copy_to(self.trainable)
            if self.config.lora_rank > 0:
                lora.save_lora_weights(self.pipeline, self.sampling_unet, folder)
            else:  # pipeline.unet is the trained module (accelerate wraps it without copying)
                self.pipeline.save_pretrained(str(folder))
        return folder
