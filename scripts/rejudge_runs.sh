#!/usr/bin/env bash
# Judge the answers of finished runs again with another judge, each into a new run folder <run><suffix>.
#
#   scripts/rejudge_runs.sh SUFFIX RUN_FOLDER... -- JUDGE ARGS...
#   scripts/rejudge_runs.sh -uniform leaderboards/runs/quick-mosr -- --judge keyword --judge-set rule=refusal_direction_substring
#
# The new run has the source run's defense, model, seed and defense config (read from its manifest.json) and the
# source's suite name (from the manifest). Its defense/ folder and capability.json are copied in, since neither
# depends on the judge, so nothing is trained again; the answers come from the response cache when the source run
# filled it on this machine (otherwise they are generated again, greedy, so the same). The source is only read.
# Extra environment: HARNESS (default .venv/bin/harness), DATA_DIR (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,5p "$0" >&2; exit 2; }
suffix=$1; shift
runs=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do runs+=("$1"); shift; done
[ "${1:-}" = "--" ] || { echo "error: put -- before the judge arguments" >&2; exit 2; }
shift
harness=${HARNESS:-.venv/bin/harness}
data_dir=${DATA_DIR:-../shared/data}
runfile=$(mktemp --suffix=.json)
trap 'rm -f "$runfile"' EXIT  # also when a run fails
for src in "${runs[@]}"; do
    src=${src%/}
    [ -f "$src/manifest.json" ] || { echo "error: $src has no manifest.json (not a run folder)" >&2; exit 1; }
    dst=$src$suffix
    if [ -f "$dst/metrics.json" ]; then echo "skip $dst (already judged)"; continue; fi
    mkdir -p "$dst"
    [ -d "$src/defense" ] && cp -rn "$src/defense" "$dst/"
    [ -f "$src/capability.json" ] && cp -n "$src/capability.json" "$dst/"
    suite=$(python3 - "$src/manifest.json" "$runfile" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
json.dump({"defense": m["defense"]["name"], "model": m["model"]["spec"], "seed": m["seed"],
           "config": m["defense"]["config"]}, open(sys.argv[2], "w"))
print(m["suite"]["name"])
PY
)
    echo "== $src -> $dst"
    "$harness" run --config "$runfile" --suite "$suite" --data-dir "$data_dir" --out "$dst" --no-progress "$@"
done
