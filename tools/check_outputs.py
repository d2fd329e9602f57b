"""Check the committed notebook outputs: no progress bars or warnings on stderr, no error outputs, no huge outputs.

Run from the repository root: `python tools/check_outputs.py` (after `scripts/render_nbs.sh`). Prints each notebook's
size and image count; exits 1 listing the offending cells.
"""
import json, sys
from pathlib import Path

MAX_OUTPUT = 400_000     # characters of one output (a base64 PNG of ~300 KB)
MAX_TEXT_LINES = 60      # lines of one text output
NOISE = ('it/s]', 's/it]', '%|', 'TqdmWarning', 'IProgress')

def check(path: Path) -> tuple[list[str], int]:
    bad, images = [], 0
    for i, c in enumerate(json.loads(path.read_text())['cells']):
        for o in c.get('outputs', []):
            where = f'{path.name} cell {i} ({c.get("id")})'
            if o['output_type'] == 'error': bad.append(f'{where}: error output {o.get("ename")}')
            if o['output_type'] == 'stream':
                text = ''.join(o.get('text', ''))
                if o.get('name') == 'stderr' and any(k in text for k in NOISE): bad.append(f'{where}: progress bar / warning on stderr')
                if text.count('\n') > MAX_TEXT_LINES: bad.append(f'{where}: {text.count(chr(10))} lines of text')
            data = o.get('data', {})
            images += 'image/png' in data
            for k, v in data.items():
                n = len(v) if isinstance(v, str) else len(''.join(v))
                if n > MAX_OUTPUT: bad.append(f'{where}: {k} output of {n:,} characters')
    return bad, images

if __name__ == '__main__':
    bad = []
    for p in sorted(Path('nbs').glob('*.ipynb')):
        b, img = check(p)
        print(f'{p.name:24s} {p.stat().st_size / 1024:7.0f} KiB  {img} image(s)')
        bad += b
    print('\n'.join(bad) or 'outputs: clean')
    sys.exit(1 if bad else 0)
