#!/usr/bin/env bash
# All GPU measurements of issues 4 and 5 in as few device calls as a 15-minute device session allows.
#
#   OUT=/some/dir bash scripts/gpu_session.sh kernels   # bench/kernel_times.py, bench/decode.py, bench/table_kernel_times.py (<= 560 s)
#   OUT=/some/dir bash scripts/gpu_session.sh scale     # scripts/scale_7b.py --mode both                 (<= 330 s)
#   OUT=/some/dir bash scripts/gpu_session.sh all       # both parts in one go (longer than one 10-minute device call)
#   SMOKE=1 OUT=/tmp/s bash scripts/gpu_session.sh all  # CPU check of this wrapper (each script's --smoke mode)
#
# Each part fits one device call (10-minute cap; run it with timeout_s 600). With a machine start of 1-2 minutes
# both parts just fit one 15-minute device session: run `kernels` first, and `scale` only if at least 6 minutes
# of device time are left. Every script has its own time budget, so it stops early and
# still writes its JSON, and `timeout` backs that up. Everything lands in $OUT: JSON per script, session.log,
# nvidia-smi and versions (the static bench/sass.py report for the GPU image's Triton 3.6 needs no GPU: it is
# results/kernel_sass_triton36.md). Commit those files
# under results/ with the markdown tables the scripts print last.
# Needs only what the GPU image has (torch, triton, transformers, safetensors, accelerate, tqdm, pyyaml).
set -uo pipefail
part=${1:-kernels}
: "${OUT:?set OUT to the output folder}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TRITON_DEFAULT_FP_FUSION=1 TOKENIZERS_PARALLELISM=false
{ nvidia-smi || true; python -c "import sys, torch, triton, transformers; print('python', sys.version.split()[0], '| torch', torch.__version__, '| triton', triton.__version__, '| transformers', transformers.__version__)"; } > "$OUT/env_$part.txt" 2>&1
smoke=${SMOKE:+--smoke}
run() { local limit=$1; shift; echo "== $* $smoke (limit ${limit}s)"; timeout --kill-after=10 "$limit" "$@" $smoke; echo "== exit $?"; }
case $part in
  kernels|all)
    run 260 python bench/kernel_times.py --out "$OUT/kernel_bench.json" --budget 220 2>&1 | tee -a "$OUT/session.log"
    run 200 python bench/decode.py --out "$OUT/decode_bench.json" --budget 170 2>&1 | tee -a "$OUT/session.log"
    run 100 python bench/table_kernel_times.py --out "$OUT/table_kernel.json" --budget 70 2>&1 | tee -a "$OUT/session.log" ;;&
  scale|all)
    run 330 python scripts/scale_7b.py --out "$OUT" --mode both --deadline 270 2>&1 | tee -a "$OUT/session.log" ;;
  kernels) ;;
  *) echo "usage: OUT=dir bash scripts/gpu_session.sh kernels|scale|all" >&2; exit 2 ;;
esac
