"""``imreward train``: fit a reward model to ranked images. Runs as one process, or under
``torchrun --nproc_per_node N -m imreward.cli train ...`` (or ``accelerate launch``) for DDP."""

from __future__ import annotations

import argparse

from imreward.train.recipes import RECIPES, apply_recipe

EPILOG = """DATA is a hub dataset id (THUDM/ImageRewardDB, or its subsets THUDM/ImageRewardDB:1k/2k/4k/8k; fetched
into the hub cache, only the files the split needs), an ImageRewardDB-layout folder
(metadata-{train,validation,test}.parquet + images/{split}/*.zip; the split read follows the option), a
metadata .parquet file, or a JSON file in the original layout ([{"id", "prompt", "generations", "ranking"}],
images relative to the JSON's folder or --image-root).
Outputs in DIR: best/ (chosen by --select-best; best/selection.json records its step and validation loss and
accuracy) and final/ (load with imreward.load), checkpoint.pt (for --resume), metrics.jsonl, tensorboard/,
result.json."""


def register(subparsers) -> None:
    from imreward.cli import add_threads_argument

    parser = subparsers.add_parser("train", help="train a reward model from ranked images",
                                   description=__doc__.splitlines()[0], epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--train", metavar="DATA", help="training data")
    data.add_argument("--val", metavar="DATA", help="validation data (selects the best checkpoint)")
    data.add_argument("--test", metavar="DATA", help="test data, scored with the best checkpoint at the end")
    data.add_argument("--image-root", help="folder that JSON image paths are relative to")
    data.add_argument("--output", required=True, metavar="DIR", help="run folder")
    data.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                      help="preset for the options not given: imagereward-paper = THUDM/ImageRewardDB train/"
                           "validation, batch 64, lr 1e-5, cosine, 70%% frozen (needs --init, the BLIP checkpoint)")
    model = parser.add_argument_group("model")
    model.add_argument("--model-config", metavar="CONFIG.json",
                       help="ImageRewardConfig JSON: train from scratch, or the architecture for a BLIP --init")
    model.add_argument("--init", metavar="CHECKPOINT",
                       help="BLIP model_large.pth, or an ImageReward checkpoint/folder/registry name")
    model.add_argument("--freeze-ratio", type=float, default=None,
                       help="freeze embeddings and this fraction of each encoder's first layers "
                            "(default 0.7 with --init, 0 from scratch)")
    model.add_argument("--lora-rank", type=int, default=None,
                       help="train rank-R LoRA adapters on the backbone (and the head) instead of freezing layers")
    model.add_argument("--lora-targets", default=None,
                       help="comma-separated module-name suffixes for LoRA (default: attention and MLP projections)")
    model.add_argument("--lora-alpha", type=float, default=None, help="LoRA scale numerator (default: the rank)")
    model.add_argument("--gradient-checkpointing", action="store_true")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=1)
    optim.add_argument("--max-steps", type=int, default=None,
                       help="stop after this many optimizer steps (the learning-rate schedule still spans --epochs)")
    optim.add_argument("--batch-size", type=int, default=None, help="prompts per step over all processes (default 8)")
    optim.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step")
    optim.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-5)")
    optim.add_argument("--optimizer", choices=["adam", "adamw"], default="adam")
    optim.add_argument("--weight-decay", type=float, default=0.0)
    optim.add_argument("--warmup-ratio", type=float, default=0.05, help="share of steps of linear warmup")
    optim.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping (0 = off)")
    optim.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                       help="auto = bf16 autocast on GPU, fp32 on CPU")
    optim.add_argument("--seed", type=int, default=0)
    run = parser.add_argument_group("run")
    run.add_argument("--eval-every", type=int, default=None, help="validate every N steps (default: each epoch)")
    run.add_argument("--select-best", choices=["accuracy", "loss"], default="accuracy",
                     help="validation metric that picks best/: pair accuracy (ties: lower loss) or loss "
                          "(default: %(default)s)")
    run.add_argument("--eval-batch-size", type=int, default=None, help="prompts per evaluation batch")
    run.add_argument("--checkpoint-every", type=int, default=None, help="default: at each validation")
    run.add_argument("--resume", action="store_true", help="continue the run in --output from its checkpoint")
    run.add_argument("--num-workers", type=int, default=2, help="data loading processes")
    run.add_argument("--device", default=None, help="default: cuda:LOCAL_RANK if available, else cpu")
    add_threads_argument(run)
    run.add_argument("--no-tensorboard", action="store_true")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_train_command)
    from imreward.train.ablation import register as register_ablation

    register_ablation(subparsers)


def _train_command(args: argparse.Namespace) -> int:
    import logging

    from imreward.cli import print_summary
    from imreward.train import TrainConfig, train
    from imreward.train.lora import parse_lora_targets

    if args.lora_rank is not None and args.freeze_ratio is not None:
        raise SystemExit("--lora-rank replaces --freeze-ratio: give one of them")
    args = apply_recipe(args)
    if args.lora_rank is not None:
        args.freeze_ratio = None  # a recipe's freeze ratio gives way to LoRA
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = TrainConfig(
        train_data=args.train, val_data=args.val, test_data=args.test, output_dir=args.output,
        image_root=args.image_root, model_config=args.model_config, init=args.init, epochs=args.epochs,
        max_steps=args.max_steps, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
        grad_accum=args.grad_accum, lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, max_grad_norm=args.max_grad_norm or None, freeze_ratio=args.freeze_ratio,
        lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
        lora_targets=parse_lora_targets(args.lora_targets),
        precision=args.precision, gradient_checkpointing=args.gradient_checkpointing, seed=args.seed,
        eval_every=args.eval_every, checkpoint_every=args.checkpoint_every, num_workers=args.num_workers,
        select_best=args.select_best, threads=args.threads,
        device=args.device, resume=args.resume, tensorboard=not args.no_tensorboard, progress=not args.quiet)
    result = train(config)
    print_summary({"best": str(result.best_dir), "best_step": result.best_step, "best_val": result.best_val,
                   "test": result.test, "steps": result.global_step})
    return 0
