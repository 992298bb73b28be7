"""The training loop: pairwise ranking loss on prompt-grouped batches, validation with best-checkpoint
selection, exact resume, and DDP when launched by torchrun (the same code runs as one process).

Gradients equal those of the mean loss over every pair of the global step, whatever the number of
processes or micro-batches: each micro-batch's loss sum is divided by the step's global pair count.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from imreward.data import PreferenceDataset, PromptBatch, PromptCollator, load_preference_data
from imreward.threads import set_threads
from imreward.train import distributed
from imreward.train.checkpoint import (CHECKPOINT_FILE, load_training_state, recover_folder, rng_state,
                                       save_model_atomically, save_training_state, seed_everything, set_rng_state)
from imreward.train.collapse import collapse_reason
from imreward.train.config import TrainConfig
from imreward.train.lora import configure_trainable, load_merged_weights
from imreward.train.loss import pairwise_loss, warmup_cosine
from imreward.train.metrics_log import MetricsLog
from imreward.train.model_init import build_model
from imreward.train.sampler import PromptBatchSampler, evaluation_batches

logger = logging.getLogger("imreward.train")
MAX_LOGGED_FAILURES = 20
SELECTION_FILE = "selection.json"  # in best/: the step, --select-best and validation metrics that chose it


@dataclass
class TrainResult:
    """Where the models are and how they scored. Metric dicts hold ``loss``, ``accuracy``, ``pairs``."""

    output_dir: Path
    best_dir: Path  # imreward.load(best_dir): the best validation checkpoint by config.select_best
    final_dir: Path  # the weights after the last step
    global_step: int
    best_step: int
    best_val: dict
    final_val: dict
    test: dict | None
    trainable_parameters: int
    total_parameters: int
    skipped_images: int


def train(config: TrainConfig) -> TrainResult:
    """Run (or, with ``config.resume``, continue) a training run; returns its result on every process."""
    context = distributed.setup(config.device)
    try:
        return Trainer(config, context).run()
    finally:
        distributed.teardown(context)


class Trainer:
    def __init__(self, config: TrainConfig, context: distributed.Context) -> None:
        self.config, self.context = config, context
        self.output_dir = Path(config.output_dir)
        self.checkpoint_path = self.output_dir / CHECKPOINT_FILE
        if self.checkpoint_path.exists() and not config.resume:
            raise FileExistsError(f"{self.output_dir} holds a training run; pass --resume to continue it "
                                  "or choose another --output")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(config.seed)
        self.model = build_model(config.init, config.model_config)
        logger.info("%d torch threads", set_threads(config.threads, self.model))
        self.freeze_summary = configure_trainable(self.model, config)
        logger.info(self.freeze_summary.describe())
        self.model.to(context.device)
        if config.gradient_checkpointing:
            self.model.blip.set_grad_checkpointing(True)
        self.network = (DistributedDataParallel(self.model, device_ids=[context.device.index]
                                                if context.device.type == "cuda" else None)
                        if context.distributed else self.model)
        self.autocast_dtype = self._autocast_dtype()
        self._build_data()
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optimizer_class(trainable, lr=config.lr, weight_decay=config.weight_decay)
        schedule_steps = config.epochs * self.sampler.steps_per_epoch  # max_steps stops early, same schedule
        self.total_steps = min(schedule_steps, config.max_steps) if config.max_steps else schedule_steps
        warmup = round(config.warmup_ratio * schedule_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, partial(warmup_cosine, warmup_steps=warmup, total_steps=schedule_steps))
        self.eval_every = config.eval_every or self.sampler.steps_per_epoch
        self.checkpoint_every = config.checkpoint_every or self.eval_every
        self.progress = {"global_step": 0, "epoch": 0, "step_in_epoch": 0, "best_step": 0, "best_val": {},
                         "last_val": {}, "last_val_step": -1, "lowest_val_loss": math.inf, "skipped_images": 0}
        seed_everything(config.seed + 1 + context.rank)  # dropout masks differ between processes
        resume_step = self._resume() if config.resume and self.checkpoint_path.exists() else None
        if resume_step is not None and context.is_main:
            for saved in ("best", "final"):  # a crash may have left only best.old
                recover_folder(self.output_dir / saved)
        self.metrics = MetricsLog(self.output_dir, context.is_main, config.tensorboard, resume_step)
        if context.is_main and resume_step is None:
            settings = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
            (self.output_dir / "train_config.json").write_text(json.dumps(settings, indent=2) + "\n")

    # ---- setup ------------------------------------------------------------------------------

    def _autocast_dtype(self) -> torch.dtype | None:
        precision = self.config.precision
        if precision == "auto":
            precision = "bf16" if self.context.device.type == "cuda" else "fp32"
        return torch.bfloat16 if precision == "bf16" else None

    def _build_data(self) -> None:
        config, context = self.config, self.context
        preprocess = self.model.pil_preprocess
        collate = PromptCollator(self.model.tokenizer, self.model.max_length)
        self.datasets = {}
        for role, path, split in (("train", config.train_data, "train"), ("val", config.val_data, "validation"),
                                  ("test", config.test_data, "test")):
            if path is not None:
                records, _ = load_preference_data(path, split, config.image_root)
                self.datasets[role] = PreferenceDataset(records, preprocess)
        self.sampler = PromptBatchSampler(len(self.datasets["train"]), config.batch_size, config.grad_accum,
                                          context.world_size, context.rank, config.seed)
        self.loader = DataLoader(self.datasets["train"], batch_sampler=self.sampler, collate_fn=collate,
                                 num_workers=config.num_workers, generator=torch.Generator().manual_seed(config.seed),
                                 pin_memory=context.device.type == "cuda")
        eval_size = config.eval_batch_size or max(1, config.batch_size // (config.grad_accum * context.world_size))
        self.eval_loaders = {
            role: DataLoader(dataset, batch_sampler=evaluation_batches(len(dataset), eval_size, context.world_size,
                                                                       context.rank),
                             collate_fn=collate, num_workers=config.num_workers,
                             generator=torch.Generator().manual_seed(config.seed))
            for role, dataset in self.datasets.items() if role != "train"}

    def _resume(self) -> int:
        state = load_training_state(self.checkpoint_path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.progress = state["progress"]
        rng_states = state["rng"]
        if len(rng_states) == self.context.world_size:
            set_rng_state(rng_states[self.context.rank])
        else:
            logger.warning("checkpoint was written by %d processes, resuming on %d: dropout draws will differ "
                           "from an uninterrupted run", len(rng_states), self.context.world_size)
        logger.info("resumed from %s at step %d", self.checkpoint_path, self.progress["global_step"])
        return self.progress["global_step"]

    # ---- steps ------------------------------------------------------------------------------

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.context.device.type, dtype=self.autocast_dtype)

    def _rewards(self, network: torch.nn.Module, batch: PromptBatch) -> torch.Tensor:
        with self._autocast():
            return network(batch.pixel_values, batch.input_ids, batch.attention_mask)

    def _note_failures(self, batch: PromptBatch) -> None:
        for name in batch.failed_images:
            if self.progress["skipped_images"] < MAX_LOGGED_FAILURES:
                logger.warning("skipped an undecodable image: %s", name)
            self.progress["skipped_images"] += 1

    def _train_step(self, micro_batches: list[PromptBatch]) -> dict:
        """One optimizer step over ``grad_accum`` micro-batches; returns global loss/accuracy."""
        context = self.context
        local_pairs = sum(batch.num_pairs for batch in micro_batches)
        (global_pairs,) = distributed.sum_across(context, [local_pairs])
        scale = context.world_size / max(global_pairs, 1.0)  # DDP averages gradients over processes
        loss_sum, correct = 0.0, 0
        for index, batch in enumerate(micro_batches):
            self._note_failures(batch)
            if batch.num_pairs == 0:
                continue
            batch = batch.to(context.device)
            last = index == len(micro_batches) - 1
            sync = nullcontext() if last or not context.distributed else self.network.no_sync()
            with sync:
                result = pairwise_loss(self._rewards(self.network, batch), batch.better, batch.worse)
                (result.total * scale).backward()
            loss_sum += result.total.item()
            correct += result.correct
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                           self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, correct = distributed.sum_across(context, [loss_sum, correct])
        pairs = max(global_pairs, 1.0)
        return {"loss": loss_sum / pairs, "accuracy": correct / pairs, "pairs": int(global_pairs)}

    @torch.no_grad()
    def evaluate(self, role: str) -> dict:
        """Mean pair loss, pair accuracy and the mean and standard deviation of the rewards over the
        whole ``role`` set (all processes)."""
        self.model.eval()
        loss_sum, correct, pairs, rewards_sum, squares_sum, images = 0.0, 0, 0, 0.0, 0.0, 0
        for batch in self.eval_loaders[role]:
            if batch.num_pairs == 0:
                continue
            batch = batch.to(self.context.device)
            rewards = self._rewards(self.model, batch)
            result = pairwise_loss(rewards, batch.better, batch.worse)
            loss_sum, correct, pairs = loss_sum + result.total.item(), correct + result.correct, pairs + result.count
            rewards = rewards.double()
            rewards_sum, squares_sum = rewards_sum + rewards.sum().item(), squares_sum + rewards.square().sum().item()
            images += rewards.numel()
        self.model.train()
        loss_sum, correct, pairs, rewards_sum, squares_sum, images = distributed.sum_across(
            self.context, [loss_sum, correct, pairs, rewards_sum, squares_sum, images])
        mean = rewards_sum / max(images, 1)
        std = max(squares_sum / max(images, 1) - mean * mean, 0.0) ** 0.5
        return {"loss": loss_sum / max(pairs, 1), "accuracy": correct / max(pairs, 1), "pairs": int(pairs),
                "reward_mean": mean, "reward_std": std}

    def _is_better(self, metrics: dict, best: dict) -> bool:
        if not best:
            return True
        if self.config.select_best == "loss":
            return metrics["loss"] < best["loss"]
        return (metrics["accuracy"], -metrics["loss"]) > (best["accuracy"], -best["loss"])

    def _validate(self) -> None:
        progress = self.progress
        step = progress["global_step"]
        metrics = self.evaluate("val")
        lowest_loss = progress.get("lowest_val_loss", math.inf)
        collapse = collapse_reason(metrics, lowest_loss)
        metrics["collapsed"] = collapse is not None
        progress["lowest_val_loss"] = min(lowest_loss, metrics["loss"])
        is_best = self._is_better(metrics, progress["best_val"])
        if is_best:
            progress.update(best_step=step, best_val=metrics)
            if self.context.is_main:
                selection = {"step": step, "select_best": self.config.select_best, "val": metrics}
                save_model_atomically(self.model, self.output_dir / "best",
                                      {SELECTION_FILE: json.dumps(selection, indent=2) + "\n"})
        progress.update(last_val=metrics, last_val_step=step)
        self.metrics.write("val", step, {**metrics, "best": is_best, "select_best": self.config.select_best})
        logger.info("step %d validation: loss %.4f, pair accuracy %.4f%s", step, metrics["loss"],
                    metrics["accuracy"], f" (best {self.config.select_best} so far)" if is_best else "")
        if collapse:
            logger.warning("step %d: training has collapsed: %s. Lower --lr (or raise --warmup-ratio) and start "
                           "again; best/ keeps the best model so far.", step, collapse)

    def _save_checkpoint(self) -> None:
        states = distributed.gather_objects(self.context, rng_state())
        if self.context.is_main:
            save_training_state(self.checkpoint_path, {
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "progress": dict(self.progress), "rng": states})
        distributed.barrier(self.context)

    # ---- the run ----------------------------------------------------------------------------

    def run(self) -> TrainResult:
        config, progress = self.config, self.progress
        steps_per_epoch = self.sampler.steps_per_epoch
        bar = tqdm(total=self.total_steps, initial=progress["global_step"], unit="step", desc="training",
                   disable=not (config.progress and self.context.is_main), dynamic_ncols=True)
        recent = deque(maxlen=50)
        while progress["epoch"] < config.epochs and progress["global_step"] < self.total_steps:
            self.sampler.set_epoch(progress["epoch"], progress["step_in_epoch"])
            batches = iter(self.loader)
            while progress["step_in_epoch"] < steps_per_epoch and progress["global_step"] < self.total_steps:
                metrics = self._train_step([next(batches) for _ in range(config.grad_accum)])
                progress["global_step"] += 1
                progress["step_in_epoch"] += 1
                step = progress["global_step"]
                self.metrics.write("train", step, {**metrics, "epoch": progress["epoch"],
                                                   "lr": self.scheduler.get_last_lr()[0],
                                                   "skipped_images": progress["skipped_images"]})
                recent.append((metrics["loss"], metrics["accuracy"]))
                bar.set_postfix(loss=f"{sum(r[0] for r in recent) / len(recent):.4f}",
                                acc=f"{sum(r[1] for r in recent) / len(recent):.3f}")
                bar.update()
                if step % self.eval_every == 0:
                    self._validate()
                if step % self.checkpoint_every == 0:
                    self._save_checkpoint()
            del batches
            if progress["step_in_epoch"] >= steps_per_epoch:
                progress["epoch"] += 1
                progress["step_in_epoch"] = 0
        bar.close()
        if progress["last_val_step"] != progress["global_step"]:
            self._validate()
            self._save_checkpoint()
        return self._finish()

    def _finish(self) -> TrainResult:
        progress, context = self.progress, self.context
        final_dir, best_dir = self.output_dir / "final", self.output_dir / "best"
        if context.is_main:
            save_model_atomically(self.model, final_dir)
        distributed.barrier(context)
        test = None
        if "test" in self.eval_loaders:
            from imreward.hub import read_state_dict

            best = read_state_dict(best_dir / "model.safetensors")
            load_merged_weights(self.model, {key: value.to(context.device) for key, value in best.items()})
            test = self.evaluate("test")
            self.metrics.write("test", progress["global_step"], {**test, "best_step": progress["best_step"]})
            logger.info("test (best checkpoint, step %d): loss %.4f, pair accuracy %.4f", progress["best_step"],
                        test["loss"], test["accuracy"])
        (skipped,) = distributed.sum_across(context, [progress["skipped_images"]])
        if skipped:
            logger.warning("skipped %d undecodable training images in all", skipped)
        self.metrics.close()
        result = TrainResult(self.output_dir, best_dir, final_dir, progress["global_step"], progress["best_step"],
                             progress["best_val"], progress["last_val"], test, self.freeze_summary.trainable,
                             self.freeze_summary.total, int(skipped))
        if context.is_main:
            summary = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(result).items()}
            (self.output_dir / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
        return result
