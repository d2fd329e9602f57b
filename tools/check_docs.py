"""Run nbdev's docs preprocessing on every notebook, without Quarto, and fail on any error.

`nbdev-docs` = (1) `_quarto.yml` / `nbdev.yml` / `sidebar.yml`, the module index, (2) every notebook through
nbdev's processors (`FilterDefaults`: front matter, `show_doc` cells, execution of the exported and import cells,
...) into `_proc/`, then (3) Quarto renders `_proc/` to `_docs/`. Steps 1-2 need no Quarto; this runs them with
the same functions `nbdev-docs` calls (`nbdev.serve_drv.main` is what `nbdev.serve.proc_nbs` runs per file),
one notebook at a time, so that one broken notebook does not hide the others. A notebook fails when a processor
raises (e.g. `NameError` from a cell that mixes imports with code that needs non-exported cells) or when nbdev warns
"Found cells containing imports and other code" (the cause of such errors).

Run from the repository root: `python tools/check_docs.py [notebook ...]`. Writes only ignored files
(`_proc/`, `nbs/_quarto.yml`, `nbs/nbdev.yml`, `nbs/sidebar.yml`).
"""
import os, sys, time, warnings
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('TQDM_DISABLE', '1')

def main(argv):
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
    from nbdev.doclinks import nbglob, _build_modidx
    from nbdev.processors import FilterDefaults
    import nbdev.serve_drv
    cfg = get_config()
    os.chdir(cfg.config_path)          # as nbdev's _pre_docs does
    refresh_quarto_yml()
    _build_modidx()
    nbdev_sidebar.__wrapped__()
    nbs = [Path(p).absolute() for p in argv] or sorted(nbglob(cfg.nbs_path, as_path=True))
    cache = cfg.config_path/'_proc'
    failed, t_all = [], time.time()
    for nb in nbs:
        dst = cache/nb.relative_to(cfg.nbs_path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter('always')
            try: nbdev.serve_drv.main((nb, dst, FilterDefaults)); err = None
            except Exception as e: err = f'{type(e).__name__}: {e}'
        mixed = [str(w.message) for w in ws if 'Found cells containing imports and other code' in str(w.message)]
        if mixed and not err: err = mixed[0]
        status = 'ok' if not err else 'FAIL'
        print(f'{status:4s} {nb.name:24s} {time.time()-t0:6.1f}s', flush=True)
        if err:
            failed.append(nb.name)
            print('     ' + err.strip().replace('\n', '\n     ')[:3000], flush=True)
    print(f'docs preprocessing: {len(nbs)-len(failed)} passed, {len(failed)} failed ({time.time()-t_all:.0f}s)'
          + (f': {", ".join(failed)}' if failed else ''))
    return 1 if failed else 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
