#!/usr/bin/env bash
# Execute the notebooks on ref-tiny and write their outputs (plots, tables, printed numbers) back into them:
# exactly the cells `nbdev-test` runs (the `slow` and `gpu` cells keep whatever outputs they have), then nbdev-clean.
# About 3-4 minutes on 2 CPU cores. Usage: bash scripts/render_nbs.sh [notebook ...]   (default: all of nbs/)
#   RENDER_FLAGS="slow" bash scripts/render_nbs.sh nbs/09_fisher.ipynb   also runs (and saves) that notebook's slow cells
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"      # this checkout's tenpak, whatever is installed
if [ $# -eq 0 ]; then set -- nbs; fi
for p in "$@"; do
  nbdev-test "$p" --save --timing --flags "${RENDER_FLAGS:-}"
done
nbdev-clean
# outputs that must not be committed: progress bars, warnings on stderr, huge images
python tools/check_outputs.py
