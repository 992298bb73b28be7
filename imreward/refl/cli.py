"""``imreward refl``: fine-tune a diffusion or flow-matching pipeline on a reward (ReFL, DRaFT-K, AlignProp)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from imreward.cli import add_dtype_argument, add_threads_argument

    parser = subparsers.add_parser(
        "refl", help="fine-tune a diffusion model (SD 1.x/2.x, SDXL, SD3, FLUX.1) on a reward (ReFL)",
        description="Reward Feedback Learning: tune the UNet or transformer of a diffusers pipeline (SD 1.x/2.x, "
                    "SDXL, SD3/3.5, FLUX.1; detected from model_index.json) on differentiable rewards. Launch with "
                    "`accelerate launch -m imreward.cli refl ...` for multi-GPU.")
    source = parser.add_argument_group("model and reward")
    source.add_argument("--pipeline", help="diffusers pipeline folder or hub repo (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1)")
    source.add_argument("--random-pipeline", choices=sorted(RANDOM_PIPELINES),
                        help="random-weight components instead of --pipeline (smoke tests, benchmarks)")
    source.add_argument("--sdxl", action="store_true", help="with --random-pipeline: the SDXL layout")
    source.add_argument("--revision", default=None)
    source.add_argument("--variant", default=None, help="e.g. fp16")
    source.add_argument("--reward", action="append", default=None, metavar="NAME[:WEIGHT]",
                        help="reward scorer: a registered scorer, a model path, a module:function factory, a hub "
                             "repo or 'brightness'; repeat for a weighted sum (default: ImageReward-v1.0)")
    source.add_argument("--reward-normalization", default="none", metavar="{none,prompt-zscore}",
                        help="prompt-zscore: z-score each reward within the images of one prompt before weighting "
                             "(needs --images-per-prompt 2 or more; default: %(default)s)")
    source.add_argument("--download-root", default=None, help="cache folder for reward weights")
    add_dtype_argument(source, "--reward-dtype")
    data = parser.add_argument_group("data")
    data.add_argument("--prompts", required=True, help="JSON (text fields), JSON lines or text file of prompts")
    data.add_argument("--validation-prompts", help="prompts file for validation (default: hold out --validation-count)")
    data.add_argument("--validation-count", type=int, default=8,
                      help="prompts held out of --prompts for validation when --validation-prompts is not given")
    data.add_argument("--pretrain-data", help="JSON/JSON lines of {image, text} pairs for the pre-training loss")
    training = parser.add_argument_group("training")
    training.add_argument("--output-dir", required=True)
    training.add_argument("--resume", default=None, help="checkpoint folder, or 'latest'")
    _add_config_arguments(training)
    add_threads_argument(training)
    _add_method_arguments(parser.add_argument_group("gradient through sampling"))
    _add_guard_arguments(parser.add_argument_group("reward-hacking guards"))
    parser.set_defaults(handler=_refl_command)


def _add_config_arguments(group) -> None:
    group.add_argument("--resolution", type=int, default=512)
    group.add_argument("--batch-size", type=int, default=2, help="prompts per ReFL batch, per process")
    group.add_argument("--images-per-prompt", type=int, default=1,
                       help="images generated per prompt of a ReFL batch (default: %(default)s)")
    group.add_argument("--max-steps", type=int, default=100)
    group.add_argument("--gradient-accumulation-steps", type=int, default=1)
    group.add_argument("--learning-rate", type=float, default=1e-5)
    group.add_argument("--lr-scheduler", default="constant")
    group.add_argument("--lr-warmup-steps", type=int, default=0)
    group.add_argument("--max-grad-norm", type=float, default=1.0)
    group.add_argument("--num-inference-steps", type=int, default=40, help="sampler steps T")
    group.add_argument("--refl-step-range", type=int, nargs=2, default=None, metavar=("T1", "T2"),
                       help="range of the step index taken with gradients (inclusive); default: the last "
                            "quarter of the schedule ([30, 39] at T=40, the paper's)")
    group.add_argument("--reward-weight", type=float, default=1e-3, help="lambda in lambda*ReLU(threshold-reward)")
    group.add_argument("--reward-threshold", type=float, default=2.0)
    group.add_argument("--guidance-scale", type=float, default=None,
                       help="default: 1 (no CFG) for SD 1.x/2.x/SDXL as the paper, 7 (CFG) for SD3, "
                            "3.5 (distilled guidance embedding) for FLUX.1")
    group.add_argument("--loss-cycle", default=None,
                       help="e.g. 'refl,pretrain' (alternate) or 'refl+pretrain' (both each step); default: "
                            "'refl+pretrain' with --pretrain-data, else 'refl'")
    group.add_argument("--pretrain-weight", type=float, default=1.0)
    group.add_argument("--lora-rank", type=int, default=0, help="> 0: train LoRA adapters of this rank")
    group.add_argument("--lora-alpha", type=float, default=None)
    group.add_argument("--gradient-checkpointing", action="store_true")
    group.add_argument("--ema", action="store_true", help="keep an EMA of the trained weights (exported)")
    group.add_argument("--ema-decay", type=float, default=0.9999)
    group.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    group.add_argument("--checkpoint-every", type=int, default=100)
    group.add_argument("--checkpoints-total-limit", type=int, default=None)
    group.add_argument("--validation-every", type=int, default=50)
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--log-with", default=None, help="accelerate tracker, e.g. tensorboard")


def _add_method_arguments(group) -> None:
    group.add_argument("--method", choices=["refl", "draft-k", "alignprop"], default="refl",
                       help="refl: one late step t in --refl-step-range; draft-k: the last K steps; "
                            "alignprop: the last k steps, k drawn from 1..K")
    group.add_argument("--backprop-steps", type=int, default=None, metavar="K",
                       help="K (default: 1 for draft-k, all T steps for alignprop)")


def _add_guard_arguments(group) -> None:
    group.add_argument("--monitor", nargs="+", action="extend", default=[], metavar="NAME",
                       help="scorers never trained on, scored on the validation images at every validation "
                            "(registered names, paths, module:function or hub repos, as `imreward score`)")
    group.add_argument("--stop-when-monitor-drops", nargs="+", default=None, metavar="[NAME=]X[%]",
                       help="stop when a monitor's validation mean falls more than X (on its own scale; X%%: that "
                            "share of its first value) below its first value; NAME=X sets one monitor's limit, a "
                            "bare X the others' (e.g. CLIP=2 Aesthetic=5%%). best/ keeps the validation with the "
                            "highest reward before any such drop. Needs validations (--validation-every, "
                            "--validation-count or --validation-prompts)")
    group.add_argument("--anchor-samples", type=int, default=0, metavar="N",
                       help="KL-style anchor: the denoising loss on N of the generator's own pre-tuning "
                            "samples (instead of --pretrain-data)")


RANDOM_PIPELINES = {"tiny": "sd", "sd15": "sd", "tiny-sd3": "sd3", "tiny-flux": "flux"}


def _pipeline_from_args(args: argparse.Namespace, config):
    from imreward.refl.components import build_random_pipeline, load_pipeline

    if (args.pipeline is None) == (args.random_pipeline is None):
        raise SystemExit("give exactly one of --pipeline and --random-pipeline")
    if args.random_pipeline == "tiny-sd3":
        from imreward.refl import build_random_sd3_pipeline

        return build_random_sd3_pipeline("tiny", image_size=args.resolution, seed=args.seed)
    if args.random_pipeline == "tiny-flux":
        from imreward.refl import build_random_flux_pipeline

        return build_random_flux_pipeline("tiny", image_size=args.resolution, seed=args.seed)
    if args.random_pipeline:
        return build_random_pipeline(args.random_pipeline, image_size=args.resolution, sdxl=args.sdxl, seed=args.seed)
    from accelerate import PartialState

    try:  # in the dtypes the run holds them in, each process's weights straight onto its device
        return load_pipeline(args.pipeline, revision=args.revision, variant=args.variant, dtype=config.frozen_dtype,
                             denoiser_dtype=config.denoiser_dtype, device=PartialState().device)
    except ValueError as error:
        raise SystemExit(f"refl: --pipeline {error}")


def _monitors_from_args(args: argparse.Namespace) -> dict:
    from imreward.hub import load_scorer

    monitors = {}
    for name in args.monitor:
        try:
            scorer = load_scorer(name, download_root=args.download_root)
        except (KeyError, OSError, ValueError) as error:
            raise SystemExit(f"refl: --monitor {name}: {error}")
        if not (hasattr(scorer, "score_tensor") or hasattr(scorer, "score_batch")):
            raise SystemExit(f"refl: --monitor {name}: not a scorer (no score_tensor or score_batch)")
        monitors[name] = scorer
    return monitors


def _refl_command(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from imreward.cli import print_summary
    from imreward.refl.memory import peak_memory
    from imreward.refl import CaptionedImages, ReFLConfig, ReFLTrainer, load_prompts, load_reward
    from imreward.normalize import check_normalization
    from imreward.refl.families import family_of
    from imreward.refl.rewards import with_normalization
    from imreward.threads import set_threads

    if args.reward_dtype == "int8":
        raise SystemExit("refl: --reward-dtype int8: int8 layers pass no gradients back to the images; use auto, "
                         "bfloat16 or float32")
    prompts = load_prompts(args.prompts)
    if args.validation_prompts:
        validation_prompts = load_prompts(args.validation_prompts)
    else:
        if args.validation_count >= len(prompts):
            raise SystemExit(f"--validation-count {args.validation_count} leaves no training prompts")
        validation_prompts = prompts[len(prompts) - args.validation_count:] if args.validation_count else []
        prompts = prompts[: len(prompts) - args.validation_count]
    try:
        check_normalization(args.reward_normalization)
    except ValueError as error:
        raise SystemExit(f"--reward-normalization: {error}")
    if args.reward_normalization != "none" and args.images_per_prompt < 2:
        raise SystemExit(f"--reward-normalization {args.reward_normalization} compares the images of one prompt: "
                         "give --images-per-prompt 2 or more")
    loss_cycle = args.loss_cycle or ("refl+pretrain" if args.pretrain_data or args.anchor_samples else "refl")
    try:
        config = ReFLConfig(
            output_dir=args.output_dir, resolution=args.resolution, batch_size=args.batch_size,
            images_per_prompt=args.images_per_prompt,
            max_steps=args.max_steps, gradient_accumulation_steps=args.gradient_accumulation_steps,
            learning_rate=args.learning_rate, max_grad_norm=args.max_grad_norm, lr_scheduler=args.lr_scheduler,
            lr_warmup_steps=args.lr_warmup_steps, num_inference_steps=args.num_inference_steps,
            method=args.method, backprop_steps=args.backprop_steps,
            refl_step_range=tuple(args.refl_step_range) if args.refl_step_range else None,
            reward_weight=args.reward_weight, reward_threshold=args.reward_threshold,
            guidance_scale=args.guidance_scale, loss_cycle=loss_cycle,
            pretrain_weight=args.pretrain_weight, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
            gradient_checkpointing=args.gradient_checkpointing, use_ema=args.ema, ema_decay=args.ema_decay,
            mixed_precision=args.mixed_precision, checkpoint_every=args.checkpoint_every,
            checkpoints_total_limit=args.checkpoints_total_limit, validation_every=args.validation_every,
            validation_prompts=validation_prompts, seed=args.seed, log_with=args.log_with,
            monitors=list(args.monitor), stop_when_monitor_drops=args.stop_when_monitor_drops,
            anchor_samples=args.anchor_samples)
    except ValueError as error:
        raise SystemExit(f"refl: {error}")
    monitors = _monitors_from_args(args)  # before the (large) pipeline, so a bad name fails fast
    pipeline = _pipeline_from_args(args, config)
    pretrain_data = CaptionedImages(args.pretrain_data, args.resolution) if args.pretrain_data else None
    reward = load_reward(args.reward or ["ImageReward-v1.0"], download_root=args.download_root,
                         dtype=args.reward_dtype)
    loaded_memory = peak_memory(PartialState().device)
    set_threads(args.threads, [family_of(pipeline).model(pipeline), reward])
    try:
        trainer = ReFLTrainer(pipeline, with_normalization(reward, args.reward_normalization), config, prompts,
                              pretrain_data=pretrain_data, monitors=monitors)
    except ValueError as error:
        raise SystemExit(f"refl: {error}")
    if args.resume:
        trainer.resume(args.resume)
    trainer.train()
    folder = trainer.export()
    last = trainer.history[-1] if trainer.history else {}
    summary = {"steps": trainer.step, "output": str(folder), "last_step": last,
               "memory": {"after_loading": loaded_memory, "run": peak_memory(trainer.accelerator.device)}}
    if trainer.guard.active:
        best = trainer.best_folder  # None when no validation wrote it
        summary.update(stopped=trainer.guard.reason, best_step=trainer.guard.best_step,
                       best=None if best is None else str(best))
    print_summary(summary, trainer.accelerator.is_main_process)
    trainer.accelerator.end_training()
    return 0
