#!/usr/bin/env bash
# The benchmark runs behind the README's figures, on the shared data, at default settings.
# Each run is niced and timed; reports go to bench/results/<run>/ (questions.jsonl there
# holds benchmark text and is not committed). Usage: bench/eval_figures.sh [run ...]
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/datasets}
OUT=${OUT:-bench/results}
export MEDCHAT_HOME=${MEDCHAT_HOME:-/tmp/medchat-bench}
MEDCHAT="nice -n 10 .venv/bin/medchat"
runs=("$@")
[ ${#runs[@]} -eq 0 ] && runs=(medquad covidqa pubmedqa mirage)
for run in "${runs[@]}"; do
  case $run in
    medquad)  args=(eval medquad "$DATA/medquad" --corpus-limit 2000 --limit 300) ;;
    covidqa)  args=(eval covidqa "$DATA/covidqa/covidqa.json" --limit 300) ;;
    covidqa30) args=(eval covidqa "$DATA/covidqa/covidqa.json" --corpus-limit 30 --limit 200) ;;
    pubmedqa) args=(eval pubmedqa "$DATA/pubmedqa/pqal_dev.json" --limit 100) ;;
    mirage)   args=(eval mirage "$DATA/mirage-dev/benchmark_dev.json" \
                    --corpus "$MEDCHAT_HOME/eval/corpora/medquad-2000-s0.jsonl") ;;
    *) echo "unknown run $run"; continue ;;
  esac
  mkdir -p "$OUT/$run"
  start=$(date +%s)
  $MEDCHAT "${args[@]}" -o "$OUT/$run" 2>&1 | tee "$OUT/$run/run.log"
  echo "wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/$run/run.log"
done
