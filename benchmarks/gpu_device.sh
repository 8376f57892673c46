#!/usr/bin/env bash
# benchmarks/gpu.sh on a lent GPU machine (the device tool), sized to its limits: one
# command of at most 10 minutes, 15 minutes of device time a session with the machine's
# start counted in, and at most 8 files back from $OUT.
#
# That machine reaches no package registry and has its own Python 3.12 with jax 0.11.2 and
# the CUDA 13 plugin (not this project's jax 0.9.2 venv, whose pin is about CPU deadlocks in
# jaxlib 0.10.x; on GPU the installed jax is what there is). So the package runs from the
# working tree on PYTHONPATH, and the pure-Python packages that image lacks come along as
# wheels, downloaded here first:
#
#     bash scripts/device-wheels.sh                  # here: .whl/ (git-ignored)
#     # then the device tool's run, carry [".whl"], timeout_s 600:
#     bash benchmarks/gpu_device.sh
#
# It installs .whl/*.whl into $SITE, runs gpu.sh with PY=python3 under a time budget
# (BUDGET_S, default 420 s, inside the tool's 600), and copies what comes back to $OUT:
# gpu_results.md (paste into RESULTS.md), throughput.txt, sweep.log, sweep_summary.json,
# versions.txt (python, jax, flax, optax, chex, gymnax) and, if gpu.sh stopped, gpu_sh.log.
# gpu.sh writes its results file section by section, so a run cut by the budget still
# returns the throughput part.
#
# Sizes (gpu.sh's variables) default smaller than gpu.sh's, to fit: SEEDS="1 32 256",
# ENVS="breakout cartpole", UPDATES=10, REPEATS=2; the sweep's 8 lists x SWEEP_SEEDS=32 at
# STEPS=1000000 env steps per member (gpu.sh scales its loop time to 1e7 steps per member).
# NOT MEASURED on a GPU yet: the budget is an estimate (12 throughput programs to compile,
# then one sweep program of 256 members). If a run is cut by it, run the two parts as two
# commands on the warm machine: PARTS=throughput, then PARTS=sweep (gpu.sh's variable).
#
# Other settings: WHEELS (default $ROOT/.whl; "none": install nothing, for a machine that
# has the packages, e.g. tests/test_gpu_script.py on CPU), SITE (default /tmp/site), PY
# (default python3), OUT (default $OUT as the device tool sets it), and every gpu.sh
# variable (ALLOW_CPU, SWEEP_EXTRA, ...), passed through.
set -euo pipefail

die() { echo "gpu_device.sh: error: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEELS=${WHEELS:-$ROOT/.whl}
SITE=${SITE:-/tmp/site}
PY=$(command -v "${PY:-python3}") || die "no ${PY:-python3} on PATH (set PY)"
BUDGET_S=${BUDGET_S:-420}
[[ -n "${OUT:-}" ]] || die "OUT is not set: the device tool sets it; elsewhere give OUT=<dir>"
mkdir -p "$OUT"
DEST=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)  # gpu.sh's own output folder (its sweep writes more files than come back)

if [[ "$WHEELS" != none ]]; then
    shopt -s nullglob
    wheels=("$WHEELS"/*.whl)
    shopt -u nullglob
    [[ ${#wheels[@]} -gt 0 ]] || die "no wheels in $WHEELS: run \`bash scripts/device-wheels.sh\`" \
        "on the development machine first and carry .whl (or WHEELS=none)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "${wheels[@]}" || die "pip could not install the wheels in $WHEELS"
    export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PY" - > "$DEST/versions.txt" <<'EOF' || die "the package's dependencies do not import (see above)"
import importlib, importlib.metadata, platform
print("python", platform.python_version())
for name in ("jax", "jaxlib", "flax", "optax", "chex", "gymnax", "gymnasium", "numpy"):
    importlib.import_module(name)
    print(name, importlib.metadata.version(name))
import plasticine_jax  # noqa: F401  (the working tree's package, from PYTHONPATH)
EOF
cat "$DEST/versions.txt"

export PY SEEDS=${SEEDS:-"1 32 256"} ENVS=${ENVS:-"breakout cartpole"} \
    UPDATES=${UPDATES:-10} REPEATS=${REPEATS:-2} SWEEP_SEEDS=${SWEEP_SEEDS:-32} \
    STEPS=${STEPS:-1000000}
rc=0
OUT="$WORK" timeout --signal=TERM --kill-after=10 "$BUDGET_S" bash "$ROOT/benchmarks/gpu.sh" \
    > "$WORK/gpu_sh.log" 2>&1 || rc=$?
cat "$WORK/gpu_sh.log"
if [[ -f "$WORK/gpu_results.md" ]]; then
    { echo; echo "Packages (\`benchmarks/gpu_device.sh\`): $(paste -sd, "$DEST/versions.txt" | sed 's/,/, /g')."
    } >> "$WORK/gpu_results.md"
fi
for f in gpu_results.md throughput.txt sweep.log; do
    if [[ -f "$WORK/$f" ]]; then cp "$WORK/$f" "$DEST/$f"; fi
done
if [[ -f "$WORK/sweep/summary.json" ]]; then
    cp "$WORK/sweep/summary.json" "$DEST/sweep_summary.json"
fi
if [[ $rc -ne 0 ]]; then
    cp "$WORK/gpu_sh.log" "$DEST/gpu_sh.log"
    if [[ $rc -eq 124 ]]; then
        die "gpu.sh ran past BUDGET_S=$BUDGET_S s; what it wrote is in $DEST"
    fi
    die "gpu.sh failed (exit $rc); its log is $DEST/gpu_sh.log"
fi
echo "gpu_device.sh: results in $DEST (gpu_results.md)"
