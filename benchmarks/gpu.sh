#!/usr/bin/env bash
# GPU benchmarks in one script: PPO throughput by seed count, and the wall time of a method
# sweep, written as markdown ready to paste into benchmarks/RESULTS.md.
#
# Run, from the repo root, after `make setup EXTRAS=dev,all` (pyproject has no CUDA extra:
# on a GPU machine also `.venv/bin/pip install "jax[cuda12]==<the installed jax version>"`;
# the script stops if nvidia-smi sees a GPU but jax does not). On the device tool's lent
# machines (no registry, their own CUDA jax) run benchmarks/gpu_device.sh instead:
#
#     bash benchmarks/gpu.sh
#     SEEDS="1 32" STEPS=2000000 bash benchmarks/gpu.sh     # smaller
#
# What it measures:
#   1. PPO throughput: benchmarks/throughput.py on $ENVS (CartPole, Breakout-MinAtar) at
#      $SEEDS vmapped seeds (8 envs x 128 steps each), metrics off and on, $UPDATES updates
#      per timed chunk, $REPEATS timed chunks each (see that script's docstring).
#   2. A method sweep on Breakout-MinAtar (configs/experiments/breakout_methods.yaml, its
#      PPO at 64 envs x 128 steps, metrics every 10 updates): 8 method lists (vanilla, l2,
#      l2_init, shrink_perturb, parseval, trac, weight_clipping, sam; all batchable, so the
#      planner runs them as ONE compiled program) x $SWEEP_SEEDS seeds, each member
#      $STEPS env steps, through `plasticine-jax run`. It reports the wall time of the
#      whole command and of the training loop (summary.json's wall_seconds: compile, chunks,
#      metrics.csv and checkpoints; the report is off), and the loop time per 1e7 env steps
#      per member (scaled linearly when STEPS is not 1e7, compile included).
#   It prints `nvidia-smi -L`, jax.devices(), the date and the git commit, and writes
#   $OUT/gpu_results.md (plus throughput.txt, sweep.log and the sweep's run directory).
#
# How long on one H200: ESTIMATE, not measured: throughput about 5-10 min (12 programs of
# tens of seconds of compile each); the sweep is 256 members x 1e7 = 2.56e9 env steps, at
# an assumed 1-4 M env steps/s about 10-45 min. Roughly 15-60 min in all.
#
# Every size is an environment variable (GPU defaults shown); tests/test_gpu_script.py runs
# the script on CPU at a tiny size:
#   SEEDS="1 32 256"  ENVS="breakout cartpole"  UPDATES=10  REPEATS=5      (throughput)
#   SWEEP_SEEDS=32  STEPS=10000000  SWEEP_CONFIG=configs/experiments/breakout_methods.yaml
#   SWEEP_EXTRA=""  (extra `key=value` overrides for the sweep, split on spaces)
#   OUT=runs/gpu-<date>  PY=.venv/bin/python
#   PARTS="throughput sweep"  (one of them alone: e.g. two shorter commands on a lent machine)
#   ALLOW_CPU=0  (1: run even though jax sees no GPU, e.g. the test)
#   PLASTICINE_JAX_CACHE_DIR=off  (cold compiles, so compile times are real; a cache dir
#   reuses compiled programs, and JAX_COMPILATION_CACHE_DIR, when set, wins)
set -euo pipefail

die() { echo "gpu.sh: error: $*" >&2; exit 1; }
trap 'echo "gpu.sh: FAILED (line $LINENO, exit $?)" >&2' ERR

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STAMP=$(date +%Y%m%d-%H%M%S)
SEEDS=${SEEDS:-"1 32 256"}
ENVS=${ENVS:-"breakout cartpole"}
UPDATES=${UPDATES:-10}
REPEATS=${REPEATS:-5}
SWEEP_SEEDS=${SWEEP_SEEDS:-32}
STEPS=${STEPS:-10000000}
SWEEP_CONFIG=${SWEEP_CONFIG:-configs/experiments/breakout_methods.yaml}
SWEEP_EXTRA=${SWEEP_EXTRA:-}
OUT=${OUT:-$ROOT/runs/gpu-$STAMP}
PY=${PY:-$ROOT/.venv/bin/python}
ALLOW_CPU=${ALLOW_CPU:-0}
PARTS=${PARTS:-"throughput sweep"}
export PLASTICINE_JAX_CACHE_DIR=${PLASTICINE_JAX_CACHE_DIR:-off}

# The 8 method lists (YAML flow): every one only wraps the optimizer or adds a penalty, so
# all 8 x SWEEP_SEEDS members share one program (a member runs the others at identity).
METHODS='[[], [{name: l2, hp: {coef: 1.0e-4}}], [{name: l2_init, hp: {coef: 1.0e-2}}],
 [{name: shrink_perturb}], [{name: parseval}], [{name: trac}], [{name: weight_clipping}],
 [{name: sam}]]'
N_LISTS=8

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)  # absolute, before leaving the caller's directory
cd "$ROOT"
[[ -x "$PY" ]] || die "no python at $PY: run \`make setup EXTRAS=dev,all\` first (or set PY)"
[[ "$UPDATES" =~ ^[0-9]+$ && $((UPDATES % 10)) -eq 0 && "$UPDATES" -gt 0 ]] \
    || die "UPDATES=$UPDATES must be a positive multiple of 10 (throughput.py needs it)"
read -r -a sweep_extra <<< "$SWEEP_EXTRA"
read -r -a parts <<< "$PARTS"
[[ ${#parts[@]} -gt 0 ]] || die "PARTS is empty: give throughput, sweep or both"
for p in "${parts[@]}"; do
    [[ "$p" == throughput || "$p" == sweep ]] || die "PARTS has '$p': give throughput, sweep or both"
done
want() { [[ " ${parts[*]} " == *" $1 "* ]]; }
RESULTS="$OUT/gpu_results.md"

# --- machine ---------------------------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1 && GPUS=$(nvidia-smi -L 2>&1) && [[ -n "$GPUS" ]]; then
    HAVE_GPU=1
else
    HAVE_GPU=0
    GPUS="no GPU (nvidia-smi not found, or it lists none)"
fi
JAXINFO=$("$PY" -c 'import jax; print(jax.default_backend()); print(jax.__version__); print(jax.devices())') \
    || die "jax does not import with $PY"
BACKEND=$(sed -n 1p <<< "$JAXINFO")
JAXVER=$(sed -n 2p <<< "$JAXINFO")
DEVICES=$(sed -n 3p <<< "$JAXINFO")
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi
DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
echo "date:     $DATE"
echo "commit:   $COMMIT"
echo "nvidia-smi -L:"
sed 's/^/  /' <<< "$GPUS"
echo "jax $JAXVER, backend $BACKEND, jax.devices(): $DEVICES"
if [[ "$BACKEND" == cpu && "$ALLOW_CPU" != 1 ]]; then
    if [[ "$HAVE_GPU" == 1 ]]; then
        die "nvidia-smi sees a GPU but jax runs on CPU: install the CUDA plugin, e.g." \
            "$PY -m pip install \"jax[cuda12]==$JAXVER\" (or unset JAX_PLATFORMS)"
    fi
    die "jax sees no GPU; set ALLOW_CPU=1 (and small sizes, see the header) to run on CPU"
fi
echo "sizes:    SEEDS='$SEEDS' ENVS='$ENVS' UPDATES=$UPDATES REPEATS=$REPEATS" \
     "SWEEP_SEEDS=$SWEEP_SEEDS STEPS=$STEPS SWEEP_EXTRA='$SWEEP_EXTRA' PARTS='$PARTS'"
echo "results:  $RESULTS"

{
    echo "## GPU benchmarks (\`benchmarks/gpu.sh\`), $DATE"
    echo
    echo "Machine: $(tr '\n' ';' <<< "$GPUS" | sed 's/;$//; s/;/; /g'). jax $JAXVER," \
         "\`jax.devices()\`: \`$DEVICES\`. Commit \`$COMMIT\`."
    echo "Compilation cache: ${JAX_COMPILATION_CACHE_DIR:-$PLASTICINE_JAX_CACHE_DIR}."
    echo
} > "$RESULTS"

# --- 1. PPO throughput ------------------------------------------------------------------
if want throughput; then
THR_CMD="python benchmarks/throughput.py --envs $ENVS --seeds $SEEDS --updates $UPDATES --repeats $REPEATS"
echo; echo "== 1. throughput: $THR_CMD"
t0=$(date +%s.%N)
# shellcheck disable=SC2086  # ENVS and SEEDS split into separate arguments
"$PY" benchmarks/throughput.py --envs $ENVS --seeds $SEEDS --updates "$UPDATES" \
    --repeats "$REPEATS" | tee "$OUT/throughput.txt"
THR_S=$("$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f}')" \
    "$t0" "$(date +%s.%N)")
for s in $SEEDS; do
    for e in $ENVS; do
        grep -q "^| $e | $s |" "$OUT/throughput.txt" || die "throughput.py printed no row for $e, $s seeds"
    done
done
{
    echo "### PPO throughput (\`benchmarks/throughput.py\`)"
    echo
    echo "Command: \`$THR_CMD\` ($THR_S s in all). 8 envs x 128 steps per seed."
    echo
    grep -v '^#' "$OUT/throughput.txt"
    echo
} >> "$RESULTS"
fi

# --- 2. method sweep --------------------------------------------------------------------
if want sweep; then
RUN_NAME=sweep
SWEEP_ARGS=("sweep.methods=$METHODS" "run.num_seeds=$SWEEP_SEEDS" "run.total_timesteps=$STEPS"
            "run.out_dir=$OUT" "run.name=$RUN_NAME" "run.report=false"
            ${sweep_extra[@]+"${sweep_extra[@]}"})
SWEEP_CMD="plasticine-jax run $SWEEP_CONFIG 'sweep.methods=<the 8 lists>' run.num_seeds=$SWEEP_SEEDS run.total_timesteps=$STEPS run.report=false${SWEEP_EXTRA:+ $SWEEP_EXTRA}"
echo; echo "== 2. method sweep: $N_LISTS method lists x $SWEEP_SEEDS seeds, $STEPS env steps each"
[[ ! -e "$OUT/$RUN_NAME" ]] || die "$OUT/$RUN_NAME exists already; give a fresh OUT"
t0=$(date +%s.%N)
"$PY" -m plasticine_jax.cli run "$SWEEP_CONFIG" "${SWEEP_ARGS[@]}" | tee "$OUT/sweep.log"
t1=$(date +%s.%N)
SWEEP_ROW=$("$PY" - "$OUT/$RUN_NAME/summary.json" "$t0" "$t1" "$STEPS" "$N_LISTS" \
            "$SWEEP_SEEDS" <<'EOF'
import json, sys
path, t0, t1, steps, lists, seeds = sys.argv[1:]
s = json.load(open(path))
steps, lists, seeds = int(steps), int(lists), int(seeds)
if s["status"] != "finished":
    sys.exit(f"sweep status {s['status']!r}, not finished")
if s["members"] != lists * seeds:
    sys.exit(f"sweep has {s['members']} members, expected {lists} x {seeds}")
cmd, loop = float(t1) - float(t0), s["wall_seconds"]
rate = s["members"] * steps / loop
per_1e7 = loop * 1e7 / steps
scaled = "" if steps == 10_000_000 else " (scaled)"
print(f"| {lists} | {seeds} | {s['members']} | {steps:,} | {s['programs_compiled']} | "
      f"{cmd:,.0f} | {loop:,.0f} | {rate:,.0f} | {per_1e7:,.0f}{scaled} |")
EOF
) || die "the sweep did not finish as expected (see $OUT/sweep.log)"
{
    echo "### Method sweep on Breakout-MinAtar (\`plasticine-jax run\`)"
    echo
    echo "Command: \`$SWEEP_CMD\`; the 8 lists: vanilla, l2 (coef 1e-4), l2_init (coef 1e-2),"
    echo "shrink_perturb, parseval, trac, weight_clipping, sam (all batchable: one program)."
    echo "Wall times: the whole command, and its training loop (compile, chunks, metrics.csv,"
    echo "checkpoints; summary.json's \`wall_seconds\`). \"Loop s per 1e7\" scales the loop"
    echo "linearly to 1e7 env steps per member when STEPS differs (compile included)."
    echo
    echo "| method lists | seeds | members | env steps per member | programs compiled |" \
         "command wall (s) | loop wall (s) | env steps/s, all members | loop s per 1e7 steps per member |"
    echo "|---|---|---|---|---|---|---|---|---|"
    echo "$SWEEP_ROW"
    echo
} >> "$RESULTS"
fi

echo
echo "== done; results in $RESULTS"
cat "$RESULTS"
