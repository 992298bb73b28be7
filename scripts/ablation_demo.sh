#!/bin/bash
# The freezing / LoRA ablation on the CPU: pretrain a small reward model on one synthetic preference
# set, then fine-tune it in every setting of the grid on another (README, "LoRA and the freezing ablation").
#   bash scripts/ablation_demo.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-runs/ablation-demo}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python scripts/make_synthetic_preferences.py "$OUT/pretrain" --train-prompts 2000 --validation-prompts 100 \
    --test-prompts 20 --seed 0
python scripts/make_synthetic_preferences.py "$OUT/study" --train-prompts 300 --validation-prompts 100 \
    --test-prompts 300 --seed 1
imreward train --train "$OUT/pretrain" --val "$OUT/pretrain" --output "$OUT/pretrained" \
    --model-config "$OUT/pretrain/model_config.json" --lr 5e-4 --batch-size 16 --epochs 10 --num-workers 0 \
    --device cpu --no-tensorboard -q
imreward train-ablation --train "$OUT/study" --val "$OUT/study" --test "$OUT/study" --init "$OUT/pretrained/best" \
    --output "$OUT/ablation" --lr 2e-4 --batch-size 16 --epochs 4 --seed 0 --num-workers 0 --device cpu \
    --machine "${MACHINE:-this CPU}" -q
