#!/usr/bin/env bash
# Builds a separate environment with the original ImageReward (PyPI image-reward 1.5) as a reference
# oracle for scripts/make_golden.py (and, with OpenAI's CLIP packaged as openai-clip 1.0.1, for the CLIP,
# BLIP, Aesthetic and PickScore goldens of scripts/make_golden_clip.py). It reuses torch/torchvision/numpy/Pillow from the project venv
# (appended to sys.path after its own packages) and pins the older libraries the original needs.
# Usage: bash scripts/oracle_env.sh [ORACLE_VENV] [PROJECT_VENV]
set -euo pipefail
oracle=${1:-../oracle-venv}
project=${2:-.venv}
python3 -m venv "$oracle"
"$oracle/bin/pip" install -q --no-deps 'transformers==4.30.2' 'tokenizers==0.13.3' 'timm==0.6.13' \
    'huggingface_hub==0.16.4' regex requests pyyaml packaging filelock tqdm safetensors 'image-reward==1.5' \
    'openai-clip==1.0.1'
# fairscale is imported by the original ViT only for gradient checkpointing: a stub suffices.
site=$("$oracle/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$site/fairscale/nn/checkpoint"
touch "$site/fairscale/__init__.py" "$site/fairscale/nn/__init__.py" "$site/fairscale/nn/checkpoint/__init__.py"
echo 'def checkpoint_wrapper(module, *args, **kwargs): return module' > "$site/fairscale/nn/checkpoint/checkpoint_activations.py"
project_site=$("$project/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$project_site" > "$site/zz_project_venv.pth"
echo "oracle environment ready: $oracle/bin/python scripts/make_golden.py --vocab VOCAB.txt"
