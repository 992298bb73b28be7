#!/usr/bin/env bash
# Builds a separate environment with UnifiedReward's inference stack as a reference oracle for
# scripts/make_golden_unifiedreward.py: transformers 4.52.4 (the release UnifiedReward setups pin beside
# vllm==0.9.0.1) and qwen-vl-utils 0.0.8 (the version UnifiedReward's README installs for its
# transformers scripts; their image loading). torch, torchvision, numpy, Pillow and Jinja2 come from the
# project venv (appended to sys.path after this environment's own packages). vLLM is not needed: the
# goldens come from the scripts' transformers path (model.generate).
# Usage: bash scripts/oracle_env_unifiedreward.sh [ORACLE_VENV] [PROJECT_VENV]
set -euo pipefail
oracle=${1:-/work/oracle-unifiedreward}
project=${2:-.venv}
python3 -m venv "$oracle"
flock /tmp/pip.lock "$oracle/bin/pip" install -q --no-deps 'transformers==4.52.4' 'tokenizers==0.21.1' \
    'huggingface_hub==0.33.0' 'safetensors==0.5.3' 'qwen-vl-utils==0.0.8' \
    regex requests pyyaml packaging filelock tqdm charset-normalizer idna urllib3 certifi fsspec typing_extensions
site=$("$oracle/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
project_site=$("$project/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$project_site" > "$site/zz_project_venv.pth"
echo "oracle environment ready: $oracle/bin/python scripts/make_golden_unifiedreward.py"
