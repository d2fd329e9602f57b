"""Write README.md from nbs/index.ipynb (markdown cells verbatim, code cells as python blocks).

nbdev renders the README with Quarto, which is not installable offline; this keeps the two in step
without it. Run from the repository root: `python tools/sync_readme.py` (add `--check` to fail when stale).
"""
import json, sys
from pathlib import Path

def render(nb_path='nbs/index.ipynb') -> str:
    cells = json.loads(Path(nb_path).read_text())['cells']
    out = []
    for c in cells:
        src = ''.join(c['source']).strip()
        if not src or src.startswith('#| hide'): continue
        if c['cell_type'] == 'markdown': out.append(src)
        else: out.append('```python\n' + '\n'.join(l for l in src.splitlines() if not l.startswith('#|')) + '\n```')
    return '<!-- generated from nbs/index.ipynb by tools/sync_readme.py: edit the notebook -->\n\n' + '\n\n'.join(out) + '\n'

if __name__ == '__main__':
    txt, readme = render(), Path('README.md')
    if '--check' in sys.argv:
        sys.exit(0 if readme.exists() and readme.read_text() == txt else 'README.md is out of step with nbs/index.ipynb')
    readme.write_text(txt)
