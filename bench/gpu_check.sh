#!/usr/bin/env bash
# Every CUDA path once (built-in models with AMP, out-of-memory fallback, one training epoch,
# nnU-Net folder and MONAI bundle, promptable timing when it exists) in a few minutes, one table.
# On the device machine: bash bench/gpu_check.sh   (needs a CUDA build of torch in .venv or python3)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
test -x "$PY" || PY=python3
export MEDVIEWER_HOME=${MEDVIEWER_HOME:-$(mktemp -d)}
exec timeout 470 "$PY" bench/gpu_check.py
