#!/usr/bin/env bash
# The operating-point study behind leaderboards/operating-points/: each configuration trained once on the default
# model and scored on the validation suite, with its trajectory (loss terms, cosines, gradient norms, behaviour
# probe) logged; `harness compare` then says whether it beats the undefended run on the same prompts.
#
#   bash scripts/operating_points.sh OUT_DIR [NAME ...]     (no NAME: every configuration below)
#   MODEL=qwen2.5-coder-0.5b-instruct bash scripts/operating_points.sh OUT_DIR ...   (another model preset)
#
# Resumable: a killed run resumes from its checkpoint when the same command runs again, and a finished one is
# left as it is. One configuration takes 15-40 minutes on two CPU cores (MOSR's are the slow ones); run at most
# two at once (OMP_NUM_THREADS=1 each).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/operating_points.sh OUT_DIR [NAME ...]}
shift
HARNESS=".venv/bin/harness"
MODEL_ARGS=()
[ -z "${MODEL:-}" ] || MODEL_ARGS=(--model "$MODEL")
DATA=${HARNESS_DATA_DIR:-../shared/data}
# squared retain distance (retain_power=2) with the retain weight from step 1 (schedule=constant): the change
# to the paper's objective that opens the window on this model (see leaderboards/operating-points/README.md)
CB="--defense circuit-breakers --set steps=150 --set schedule=constant --set retain_power=2"
MOSR="--defense mosr --set steps=80 --set schedule=constant --set caa_ce_weight=0.367"
declare -A CONFIGS=(
  [none]="--defense none"
  [cb-sq-c1-lr1e-3]="$CB --set retain_coef=1 --set lr=1e-3"
  [cb-sq-c05-lr1e-3]="$CB --set retain_coef=0.5 --set lr=1e-3"
  [cb-sq-c1-lr3e-4]="$CB --set retain_coef=1 --set lr=3e-4"
  [mosr-rce1]="$MOSR --set lr=2.8e-4 --set retain_coef=2.98 --set retain_ce_weight=1"
  [mosr-sq-rce1-lr1e-3]="$MOSR --set retain_power=2 --set retain_coef=1 --set lr=1e-3 --set retain_ce_weight=1"
  [mosr-sq-rce1-lr1e-3-s50]="$MOSR --set retain_power=2 --set retain_coef=1 --set lr=1e-3 --set retain_ce_weight=1 --set steps=50"
  [mosr-sq-rce2-lr1e-3]="$MOSR --set retain_power=2 --set retain_coef=1 --set lr=1e-3 --set retain_ce_weight=2"
  [mosr-no-caa-sq-rce1-lr1e-3]="--defense mosr-no-caa --set steps=80 --set schedule=constant --set retain_power=2 --set retain_coef=1 --set lr=1e-3 --set retain_ce_weight=1"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(none cb-sq-c1-lr1e-3 cb-sq-c1-lr3e-4 mosr-rce1 mosr-sq-rce1-lr1e-3
                                 mosr-sq-rce1-lr1e-3-s50 mosr-sq-rce2-lr1e-3 mosr-no-caa-sq-rce1-lr1e-3
                                 cb-sq-c05-lr1e-3)
for name in "${names[@]}"; do
  [ -n "${CONFIGS[$name]:-}" ] || { echo "unknown configuration $name; known: ${!CONFIGS[*]}" >&2; exit 2; }
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 $HARNESS run --suite validation --data-dir "$DATA" --out "$OUT/$name" --no-progress "${MODEL_ARGS[@]}" \
    --probe-every 10 ${CONFIGS[$name]}
  [ "$name" = none ] || $HARNESS compare "$OUT/$name" "$OUT/none"
done
