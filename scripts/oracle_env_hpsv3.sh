#!/usr/bin/env bash
# Builds a separate environment with the original HPSv3 (PyPI hpsv3 1.0.0) as a reference oracle for
# scripts/make_golden_hpsv3.py. It reuses torch/torchvision/numpy/Pillow/Jinja2 from the project venv
# (appended to sys.path after its own packages) and pins the transformers release hpsv3 requires.
# Packages hpsv3 imports only for training (trl, peft, datasets, pandas, fire) get inert stubs: the
# inference path (HPSv3RewardInferencer) never calls them, LoRA and quantisation being off in its config.
# The same environment runs MPS's original code for scripts/make_golden_mps.py (einops is for that).
# Usage: bash scripts/oracle_env_hpsv3.sh [ORACLE_VENV] [PROJECT_VENV]
set -euo pipefail
oracle=${1:-../oracle-venv-hpsv3}
project=${2:-.venv}
python3 -m venv "$oracle"
"$oracle/bin/pip" install -q --no-deps 'transformers==4.45.2' 'tokenizers==0.20.3' 'huggingface_hub==0.25.2' \
    'accelerate==1.0.1' 'omegaconf==2.3.0' 'antlr4-python3-runtime==4.9.3' 'hpsv3==1.0.0' 'einops==0.8.1' \
    regex requests pyyaml packaging filelock tqdm safetensors psutil charset-normalizer idna urllib3 certifi
site=$("$oracle/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for stub in datasets pandas fire; do mkdir -p "$site/$stub"; touch "$site/$stub/__init__.py"; done
mkdir -p "$site/trl" "$site/peft"
cat > "$site/trl/__init__.py" <<'PY'
class RewardTrainer:
    pass
def get_kbit_device_map():
    return None
def get_quantization_config(model_config):
    return None
PY
cat > "$site/peft/__init__.py" <<'PY'
class LoraConfig:
    pass
class PeftModel:
    pass
def get_peft_model(model, config):
    raise RuntimeError("peft is stubbed in this oracle environment")
PY
project_site=$("$project/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$project_site" > "$site/zz_project_venv.pth"
echo "oracle environment ready: $oracle/bin/python scripts/make_golden_hpsv3.py"
