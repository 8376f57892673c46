#!/usr/bin/env bash
# The wheels a lent GPU machine lacks for benchmarks/gpu_device.sh, downloaded HERE (the
# device machine reaches no package registry) into .whl/ (git-ignored), to travel with the
# working tree by naming `.whl` in the device tool's `carry`.
#
# That machine's image (the device tool's KINDS.md, read 2026-11) has Python 3.12 with jax
# 0.11.2 and its CUDA 13 plugin, flax, optax, chex, numpy, pyyaml, pyarrow, tqdm,
# matplotlib, seaborn, six, threadpoolctl, cloudpickle and typing-extensions, but not
# gymnax or gymnax's gymnasium (and gymnasium's farama-notifications). All three are pure
# Python, about 1 MB together. wandb is not needed: only the wandb sink imports it.
#
#     bash scripts/device-wheels.sh            # then see benchmarks/gpu_device.sh
#
# DEST (default .whl) and PY (default .venv/bin/python, any Python with pip) are settable.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${DEST:-$ROOT/.whl}
PY=${PY:-$ROOT/.venv/bin/python}
# The versions beside which the package is tested here (pyproject pins gymnax 1.0.1; the
# gymnasium that pip resolves with it).
WHEELS=(gymnax==1.0.1 gymnasium==1.3.0 farama-notifications==0.0.4)

[[ -x "$PY" ]] || { echo "device-wheels.sh: no python at $PY (set PY)" >&2; exit 1; }
mkdir -p "$DEST"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_17_x86_64 -d "$DEST" "${WHEELS[@]}"
n=$(find "$DEST" -maxdepth 1 -type f -name '*.whl' | wc -l)
[[ "$n" -ge "${#WHEELS[@]}" ]] || { echo "device-wheels.sh: only $n wheels in $DEST" >&2; exit 1; }
echo "device-wheels.sh: $n wheels in $DEST ($(du -sh "$DEST" | cut -f1))"
