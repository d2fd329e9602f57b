#!/usr/bin/env bash
# Regenerate the committed results: every built-in recipe on ref-tiny (embedded corpus, seqlen 256),
# appended to results/log.jsonl, then results/RESULTS.md and results/pareto.png from that log.
# Usage: bash scripts/results.sh [recipe ...]   (default: all built-ins)
set -euo pipefail
cd "$(dirname "$0")/.."
export TENPAK_LOG=${TENPAK_LOG:-results/log.jsonl}
recipes=("$@")
if [ ${#recipes[@]} -eq 0 ]; then
  mapfile -t recipes < <(tenpak recipes | awk '{print $1}')
fi
for r in "${recipes[@]}"; do
  echo "== $r"
  tenpak run --model ref-tiny --recipe "$r" --data embedded --seqlen 256
done
python tools/results.py      # RESULTS.md, pareto.png and the quality tables, all from results/log.jsonl
