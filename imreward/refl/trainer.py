"""ReFL (Reward Feedback Learning, Xu et al. 2023) and its truncated-backprop relatives
(DRaFT-K, Clark et al. 2024; AlignProp, Prabhudesai et al. 2023): fine-tune a diffusion or
flow-matching generator directly on a differentiable reward.

Each optimizer step computes the losses its ``loss_cycle`` entry names:

- reward: sample prompts, run the sampler without gradients up to the method's gradient window
  (ReFL: one random step t in [T1, T2]; DRaFT-K/AlignProp: the last K / random k steps), take
  the window's steps with gradients, decode the predicted x0 with the VAE, score it with the
  frozen reward; loss = lambda * ReLU(threshold - reward).
- pre-training: the denoising MSE on image–caption pairs (or, as a KL-style anchor, on the
  generator's own pre-tuning samples), times ``pretrain_weight``.

Only the denoiser (UNet or transformer, or its LoRA adapters) learns; text encoders, VAE, reward
and monitors are frozen. accelerate handles devices, mixed precision (autocast: the pipeline's
modules are never cast, so the frozen ones stay, and are exported, exactly as loaded), gradient
accumulation and multi-GPU. Every random draw of a step is seeded by (seed, step, micro-batch, process), so a
resumed run repeats exactly the steps an uninterrupted run would take.
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

from imreward.jsonl_log import append_jsonl_log, read_jsonl_log
from imreward.refl import lora
from imreward.refl.config import LOSS_NAMES, METHOD_ALIGNPROP, METHOD_REFL, PRETRAIN, REFL, ReFLConfig
from imreward.refl.diffusion import initial_latents, pretraining_loss, reward_images
from imreward.refl.families import family_of
from imreward.refl.guards import MonitorGuard
from imreward.refl.rewards import freeze, frozen_monitor, frozen_reward, monitor_scores, with_normalization
from imreward.refl.validation import generate_images, plot_curves, save_before_after, save_grid
from imreward.train.checkpoint import recover_folder, replace_folder

STATE_FILE = "trainer_state.json"
BEST_FILE = "best.json"
BEST_FOLDER = "best"
ANCHOR_SEED_OFFSET = 7919  # the anchor samples' noise never repeats the validation or training noise


def step_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded by a tuple of integers (seed, step, micro-batch, process)."""
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + part) % (2**63)
    return torch.Generator().manual_seed(seed)


class ReFLTrainer:
    """Fine-tunes a pipeline's denoiser (``unet`` or ``transformer``) on a reward.

    Args:
        pipeline: a diffusers pipeline of a supported family (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1;
            see ``imreward.refl.families``).
        reward: a module with a differentiable ``score_tensor(pixels, prompts) -> [B]``; it is moved to
            the training device, its parameters get no gradient and are otherwise left as they are.
        config: hyper-parameters.
        prompts: training prompts for the reward loss.
        pretrain_data: (pixels [3, S, S] in [-1, 1], caption) pairs, for a cycle using "pretrain"
            (not with ``config.anchor_samples``, which makes them from the generator itself).
        accelerator: an ``accelerate.Accelerator``; one is built from ``config`` if omitted.
        monitors: name -> scorer scored on validation images, never trained on (reward-hacking guard):
            any scorer, with ``score_tensor`` or only ``score_batch`` (no gradient is taken).
    """

    def __init__(self, pipeline, reward: torch.nn.Module, config: ReFLConfig, prompts: list[str],
                 pretrain_data: Dataset | None = None, accelerator=None,
                 monitors: dict[str, torch.nn.Module] | None = None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration
        from diffusers.optimization import get_scheduler

        if config.uses(REFL) and not prompts:
            raise ValueError("the ReFL loss needs training prompts")
        if config.anchor_samples and pretrain_data is not None:
            raise ValueError("give either pretrain_data or anchor_samples, not both")
        if config.uses(PRETRAIN) and not config.anchor_samples and (pretrain_data is None or len(pretrain_data) == 0):
            raise ValueError(f"loss cycle {config.loss_cycle!r} uses the pre-training loss: give pretrain_data "
                             "or anchor_samples")
        if config.stop_when_monitor_drops is not None and not monitors:
            raise ValueError("stop_when_monitor_drops needs monitors")
        if monitors and not config.validating:
            raise ValueError("monitors are scored only at validations, which are off: give validation_every > 0 "
                             "and validation_prompts")
        self.config, self.prompts, self.pretrain_data = config, list(prompts), pretrain_data
        self.output_dir = Path(config.output_dir)
        self.accelerator = accelerator or Accelerator(
            mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.gradient_accumulation_steps,
            log_with=config.log_with,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir),
                                                logging_dir=str(self.output_dir / "logs")))
        device = self.accelerator.device
        self.pipeline, self.family = pipeline, family_of(pipeline)
        self.guidance_scale = self.family.default_guidance if config.guidance_scale is None else config.guidance_scale
        for name in self.family.frozen_components:
            module = getattr(pipeline, name, None)
            if module is not None:
                freeze(module).to(device)
        self.reward = frozen_reward(reward).to(device)
        self.monitors = {name: frozen_monitor(scorer, device) for name, scorer in (monitors or {}).items()}
        model = self.family.model(pipeline)
        self.trainable = self._prepare_model(model, device)
        optimizer = torch.optim.AdamW(self.trainable, lr=config.learning_rate, weight_decay=config.adam_weight_decay)
        processes = self.accelerator.num_processes
        lr_scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps * processes,
                                     num_training_steps=max(config.max_steps, 1) * processes)
        self.model, self.optimizer, self.lr_scheduler = self.accelerator.prepare(model, optimizer, lr_scheduler)
        self.ema = None
        if config.use_ema:
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(self.trainable, decay=config.ema_decay)
            self.ema.to(device)
            self.accelerator.register_for_checkpointing(self.ema)
        self.sampler = self.family.make_sampler(pipeline, config.num_inference_steps, config.resolution,
                                                config.resolution, device)
        self.step = 0
        self.loss_counts: Counter[str] = Counter()
        self.history: list[dict] = []
        self.guard = MonitorGuard.from_spec(config.stop_when_monitor_drops, list(self.monitors))
        if config.anchor_samples:
            self.pretrain_data = self._own_samples(config.anchor_samples)
        if self.accelerator.is_main_process and config.log_with:
            self.accelerator.init_trackers("refl", config={k: str(v) for k, v in config.to_dict().items()})

    def _prepare_model(self, model, device) -> list[torch.nn.Parameter]:
        """Trainable parameters: the whole denoiser (float32) or LoRA adapters (float32) over the
        frozen denoiser in the dtype it was loaded in."""
        config = self.config
        model.to(device)
        if config.lora_rank > 0:
            from diffusers.training_utils import cast_training_params

            trainable = lora.add_lora(model, config.lora_rank, config.lora_alpha, self.family.lora_targets)
            cast_training_params(model, dtype=torch.float32)
            lora.register_checkpoint_hooks(self.accelerator, lora.checkpoint_file(self.family.model_attribute))
        else:
            model.float().requires_grad_(True)
            trainable = list(model.parameters())
        if config.gradient_checkpointing:
            model.enable_gradient_checkpointing()
            self.pipeline.vae.enable_gradient_checkpointing()
        model.train()
        return trainable

    @property
    def sampling_model(self):
        """The denoiser without distributed wrappers, for gradient-free sampling."""
        return self.accelerator.unwrap_model(self.model)

    sampling_unet = sampling_model  # the name from when only UNets were tuned

    def _own_samples(self, count: int) -> list[tuple[torch.Tensor, str]]:
        """The anchor data: ``count`` images of the untuned generator for the training prompts
        (cycled), as (pixels [3, S, S] in [-1, 1], prompt) pairs."""
        prompts = [self.prompts[index % len(self.prompts)] for index in range(count)]
        with self.accelerator.autocast():
            images = generate_images(self.family, self.pipeline, self.sampling_model, self.sampler, prompts,
                                     self.config.resolution, self.config.seed + ANCHOR_SEED_OFFSET,
                                     self.guidance_scale, self.config.batch_size)
        return [(image.cpu() * 2 - 1, prompt) for image, prompt in zip(images, prompts)]

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

    def gradient_window(self, generator: torch.Generator) -> tuple[int, int]:
        """The first and last sampler step taken with gradients, drawn for the configured method."""
        config, steps = self.config, self.config.num_inference_steps
        if config.method == METHOD_REFL:
            low, high = config.step_window
            index = int(torch.randint(low, high + 1, (), generator=generator))
            return index, index
        depth = config.max_backprop_steps
        if config.method == METHOD_ALIGNPROP:
            depth = int(torch.randint(1, depth + 1, (), generator=generator))
        return steps - depth, steps - 1

    def _refl_loss(self, generator: torch.Generator) -> dict:
        config, device, resolution = self.config, self.accelerator.device, self.config.resolution
        indices = torch.randint(len(self.prompts), (config.batch_size,), generator=generator)
        prompts = [self.prompts[i] for i in indices for _ in range(config.images_per_prompt)]
        conditioning = self.family.encode_prompts(self.pipeline, prompts, resolution, resolution, device,
                                                  self.guidance_scale)
        latents = initial_latents(self.pipeline, len(prompts), resolution, resolution, generator, self.sampler,
                                  device, torch.float32)
        first, last = self.gradient_window(generator)
        images = reward_images(self.family, self.pipeline, self.model, self.sampling_model, conditioning,
                               self.sampler, latents, first, last, self.guidance_scale)
        rewards = self.reward.score_tensor(images, prompts).float().to(device)
        loss = config.reward_weight * F.relu(config.reward_threshold - rewards).mean()
        return {"loss": loss, "refl_loss": loss.item(), "reward": rewards.mean().item()}

    def _pretrain_loss(self, generator: torch.Generator) -> dict:
        config, device, resolution = self.config, self.accelerator.device, self.config.resolution
        indices = torch.randint(len(self.pretrain_data), (config.batch_size,), generator=generator)
        pixels, captions = zip(*(self.pretrain_data[int(i)] for i in indices))
        conditioning = self.family.encode_prompts(self.pipeline, list(captions), resolution, resolution, device,
                                                  self.guidance_scale, classifier_free=False)
        loss = pretraining_loss(self.family, self.pipeline, self.model, self.sampler,
                                torch.stack(pixels).to(device), conditioning, generator)
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
            with accelerator.accumulate(self.model):
                for index, loss_name in enumerate(losses):
                    last = index == len(losses) - 1
                    with contextlib.nullcontext() if last else accelerator.no_sync(self.model):
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
        """Run until ``max_steps`` (or a monitor-triggered stop), checkpointing and validating as
        configured; returns the step records."""
        config = self.config
        validating = config.validating
        if validating and self.step == 0:
            self.validate()
        while self.step < config.max_steps and not self._stop_requested():
            self.train_step()
            if validating and self.step % config.validation_every == 0:
                self.validate()
            if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                self.save_checkpoint()  # after validating: it carries the guard's verdict on this step
        self.accelerator.wait_for_everyone()
        return self.history

    def _stop_requested(self) -> bool:
        """Whether the guard stopped the run (decided on the main process, seen by every process)."""
        if self.guard.stopped:
            self.accelerator.set_trigger()
        return self.accelerator.check_trigger()

    # ---- validation ------------------------------------------------------------------------

    def validate(self, prompts: list[str] | None = None) -> float | None:
        """Generate one image per validation prompt (fixed seeds), score them with the raw weighted
        reward (one image per prompt leaves nothing to normalise against) and the monitors, and write: the grid ``validation/step_N.png``, the before/after grid
        ``validation/before_after_step_N.png``, a line of ``validation.jsonl`` and the curves
        ``validation/curves.png``. Feeds the guard (which may save ``best/`` or stop the run).

        Returns:
            The mean reward (``None`` off the main process).
        """
        prompts = prompts or self.config.validation_prompts
        if not self.accelerator.is_main_process or not prompts:
            return None
        config, folder = self.config, self.output_dir / "validation"
        with self.accelerator.autocast(), torch.no_grad():
            images = generate_images(self.family, self.pipeline, self.sampling_model, self.sampler, prompts,
                                     config.resolution, config.validation_seed, self.guidance_scale,
                                     config.batch_size)
            rewards = with_normalization(self.reward, "none").score_tensor(images, prompts).float().cpu()
            monitors = {name: monitor_scores(scorer, images, prompts).mean().item()
                        for name, scorer in self.monitors.items()}
        save_grid(images, folder / f"step_{self.step:06d}.png")
        save_before_after(images, folder, self.step)
        mean_reward = rewards.mean().item()
        record = {"step": self.step, "mean_reward": mean_reward, "rewards": rewards.tolist()}
        if monitors:
            record["monitors"] = monitors
        append_jsonl_log(self.output_dir / "validation.jsonl", record)
        plot_curves(read_jsonl_log(self.output_dir / "validation.jsonl"), folder / "curves.png")
        if self.guard.observe(self.step, mean_reward, monitors):
            self.save_weights(self.output_dir / BEST_FOLDER, {BEST_FILE: json.dumps(
                {"step": self.step, "mean_reward": mean_reward, "monitors": monitors})})
        self.accelerator.log({"validation/mean_reward": mean_reward,
                              **{f"validation/monitor/{name}": value for name, value in monitors.items()}},
                             step=self.step)
        return mean_reward

    # ---- checkpoints and export ----------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Save model, optimizer, scheduler, EMA, RNG and guard state to ``checkpoints/step_N``."""
        path = self.output_dir / "checkpoints" / f"step_{self.step:06d}"
        self.accelerator.save_state(str(path))
        if self.accelerator.is_main_process:
            (path / STATE_FILE).write_text(json.dumps({"step": self.step, "guard": self.guard.state_dict()}))
            self._prune_checkpoints()
        return path

    def _prune_checkpoints(self) -> None:
        limit = self.config.checkpoints_total_limit
        if limit:
            for old in sorted((self.output_dir / "checkpoints").glob("step_*"))[:-limit]:
                shutil.rmtree(old)

    def resume(self, checkpoint: str | Path = "latest") -> int:
        """Restore a checkpoint folder (or the newest complete one with ``"latest"``: its state file is
        written last); returns its step. A ``best/`` a crash left as ``best.old`` is put back."""
        if self.accelerator.is_main_process:
            recover_folder(self.output_dir / "best")
        if str(checkpoint) == "latest":
            found = sorted(path for path in (self.output_dir / "checkpoints").glob("step_*")
                           if (path / STATE_FILE).is_file())
            if not found:
                raise FileNotFoundError(f"no checkpoints under {self.output_dir / 'checkpoints'} (none complete)")
            checkpoint = found[-1]
        checkpoint = Path(checkpoint)
        if not (checkpoint / STATE_FILE).is_file():
            raise FileNotFoundError(f"{checkpoint} is not a ReFL checkpoint (no {STATE_FILE})")
        self.accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / STATE_FILE).read_text())
        self.step = state["step"]
        self.guard.load_state_dict(state.get("guard", {}))
        return self.step

    def save_weights(self, folder: str | Path, extra_files: dict[str, str] | None = None) -> Path:
        """Write the current weights (main process): LoRA adapters (``lora.save_lora_weights``), or a full
        diffusers pipeline folder whose frozen modules are the caller's, as loaded; plus ``extra_files``
        ({name: text}). A previous version is replaced only once this one is complete."""
        folder = Path(folder)

        def write(temporary: Path) -> None:
            if self.config.lora_rank > 0:
                lora.save_lora_weights(self.pipeline, self.family, self.sampling_model, temporary)
            else:  # the pipeline's denoiser is the trained module (accelerate wraps it without copying)
                self.pipeline.save_pretrained(str(temporary))
            for name, text in (extra_files or {}).items():
                (temporary / name).write_text(text)

        if self.accelerator.is_main_process:
            replace_folder(folder, write)
        return folder

    @property
    def best_folder(self) -> Path | None:
        """``best/`` when a validation has written it, else ``None``."""
        folder = self.output_dir / BEST_FOLDER
        return folder if (folder / BEST_FILE).is_file() else None

    def export(self, folder: str | Path | None = None) -> Path:
        """Write the result to ``folder`` (default ``final/``), with the EMA weights when EMA is on."""
        folder = Path(folder or self.output_dir / "final")
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process and self.ema is not None:
            self.ema.copy_to(self.trainable)
        return self.save_weights(folder)
