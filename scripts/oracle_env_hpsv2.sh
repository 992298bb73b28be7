#!/usr/bin/env bash
# Builds a separate environment with the original HPSv2 package (PyPI hpsv2 1.2.0, which vendors its
# own copy of open_clip) as the reference oracle for scripts/make_golden_clip.py. torch, torchvision,
# timm, ftfy and the rest come from the project venv (a .pth appended after its own packages).
# The 1.2.0 wheel lacks its tokenizer's BPE vocabulary file: the identical OpenAI file is copied in
# from the project's open_clip.
# Usage: bash scripts/oracle_env_hpsv2.sh [ORACLE_VENV] [PROJECT_VENV]
set -euo pipefail
oracle=${1:-../oracle-hpsv2-venv}
project=${2:-.venv}
python3 -m venv "$oracle"
"$oracle/bin/pip" install -q --no-deps 'hpsv2==1.2.0' clint args
site=$("$oracle/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
project_site=$("$project/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp "$project_site/open_clip/bpe_simple_vocab_16e6.txt.gz" "$site/hpsv2/src/open_clip/"
echo "$project_site" > "$site/zz_project_venv.pth"
echo "oracle environment ready: $oracle/bin/python scripts/make_golden_clip.py hpsv2"
