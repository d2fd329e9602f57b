#!/usr/bin/env python
"""Every committed results file, regenerated from the one results log (results/log.jsonl).

    python tools/results.py            # rewrite results/RESULTS.md, results/pareto.png, results/quality.md and
                                       # results/quality_<model>.{json,png} from results/log.jsonl
    python tools/results.py --check    # change nothing; exit 1 naming each committed file that disagrees with the log
    python tools/results.py --import-quality results/quality_X.json --commit SHA
                                       # move a bench report written before the log held sessions into the log (once)
    python tools/results.py --import-decode results/cpu_decode.json --commit SHA
                                       # the same for a CPU decode run of bench/decode.py --cpu

What comes from where (`tenpak.log` describes the record kinds):
  * RESULTS.md, pareto.png: the newest `run` record of each (recipe, model, corpus, seqlen) -- `tenpak run` and the
    TenPak rows of bench/quality.py alike -- with their sources, then the newest CPU decode run (`decode` records);
  * quality.md, quality_<model>.json / .png: per model, the newest bench/quality.py `session` and its points (TenPak's
    `run` records and the peers' `peer` records of that session), laid out by bench/quality.py's own table code.
A plot carries the digest of the data it draws (`tenpak.log.save_png`), which --check compares with the log's.
Imports copy numbers, never change them: they add `imported_from` (file and commit) and recompute only what follows from
the file's own numbers (ratios = 32 / bpw and 16 / bpw, status).
"""
from __future__ import annotations
import argparse, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / 'bench'):
    if str(p) not in sys.path: sys.path.insert(0, str(p))

from tenpak import log as rlog  # noqa: E402

FILES = ('RESULTS.md', 'pareto.png', 'quality.md')        # always written; plus quality_<model>.{json,png} per model


def _quality():
    import quality                                     # bench/quality.py: the quality tables' layout
    return quality


def safe(model: str) -> str: return re.sub(r'[^A-Za-z0-9_.-]+', '_', model)


def quality_reports(records: list[dict]) -> dict[str, dict]:
    "Per model, its newest bench/quality.py session as the report bench/quality.py lays out (session fields + points + derived parts)."
    Q = _quality()
    last = {}
    for r in records:
        if rlog.kind(r) == 'session' and r.get('bench') == 'bench/quality.py': last[r['model']] = r
    out = {}
    for model, s in last.items():
        rep = {k: v for k, v in s.items() if k not in ('kind', 'bench', 'provenance')}
        rep['points'] = [r['point'] for r in records if r.get('session') == s['session'] and rlog.kind(r) in ('run', 'peer')]
        for r in records:                  # later runs that joined the session (bench/quality.py --join)
            if rlog.kind(r) != 'session-part' or r.get('part_of') != s['session']: continue
            rep.setdefault('parts', []).append({k: r.get(k) for k in ('command', 'date', 'git', 'machine', 'timings', 'methods')})
            rep['skipped'] = rep.get('skipped', []) + r.get('skipped', [])
            rep['notes'] = rep.get('notes', []) + r.get('notes', [])
            rep['peers'] = (rep.get('peers') or {}) | (r.get('peers') or {})
        out[model] = Q.finish(rep)
    return out


def plot_digest(rep: dict) -> str:
    "The data a quality plot draws."
    return rlog.digest([rep['model'], rep['baseline'], rep['seqlen'], rep.get('caveat'),
                        [[p['method'], p['name'], p['bpw'], p['delta_pct']] for p in rep['points']]])


def outputs(records: list[dict]) -> dict[str, tuple]:
    "Every results file the log gives: relative path -> ('text', content) or ('png', data digest, draw() -> figure)."
    Q = _quality()
    records = list(records)
    out = {'RESULTS.md': ('text', rlog.report(records)),
           'pareto.png': ('png', rlog.digest(rlog.pareto_data(records)), lambda: rlog.plot_pareto(records))}
    reps, sections = quality_reports(records), {}
    for model, rep in reps.items():
        png = f'quality_{safe(model)}.png'
        out[f'quality_{safe(model)}.json'] = ('text', json.dumps(rep, indent=1, default=str) + '\n')
        out[png] = ('png', plot_digest(rep), lambda rep=rep: Q.plot(rep, None))
        sections[model] = Q.section(rep, png)
    out['quality.md'] = ('text', Q.quality_md(sections))
    return out


def write(outs: dict, out_dir) -> list[str]:
    "Write `outputs` under `out_dir`; the paths written."
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    for rel, o in outs.items():
        if o[0] == 'text': (out_dir / rel).write_text(o[1])
        else:
            import matplotlib
            matplotlib.use('Agg')
            import matplotlib.pyplot as plt
            fig = o[2]()
            rlog.save_png(fig, out_dir / rel, o[1], dpi=130 if rel.startswith('quality_') else 120)
            plt.close(fig)
    return list(outs)


def check(outs: dict, out_dir) -> list[str]:
    "The committed files of `out_dir` that disagree with `outputs` (one line each; [] when all agree)."
    return rlog.diff_files({rel: (o[1] if o[0] == 'text' else ('png', o[1])) for rel, o in outs.items()}, out_dir)


# ------------------------------------------------------------------------------------------- imports of older files
def import_quality(path: Path, commit: str) -> list[dict]:
    """A bench/quality.py report (quality_<model>.json) written before the bench logged its runs, as log records: its
    session, TenPak's points as `run` records, the peers' as `peer` records. KL was not measured then (n/m). Before
    2026-12-07 llm-compressor's GPTQ ran without act-order (its `peers` info has no `actorder`): those points are filed
    under the no-act-order method, which is what they measured."""
    Q = _quality()
    rep = json.loads(Path(path).read_text())
    src = f"{path} at commit {commit[:7]}"
    sid = f"quality/{rep['model']}/{rep['date']}"
    peers = rep.get('peers') or {}
    flat = peers and 'versions' in peers                      # one llm-compressor run, before per-method peers info
    noact = flat and 'actorder' not in peers
    note = f"imported from {src}: KL and top-1 agreement were not measured by bench/quality.py then"
    prov = dict(command=rep['command'], git=rep.get('git') or {}, machine=rep['machine'])
    sess = {k: v for k, v in rep.items() if k not in ('points', 'columns', 'best_per_column', 'sentences')}
    if flat: sess['peers'] = {('llmc-gptq-noact' if noact else 'llmc-gptq'): peers}
    sess.update(kind='session', session=sid, bench='bench/quality.py', imported_from=src, provenance=prov,
                notes=list(rep.get('notes') or []) + ([f"llm-compressor's GPTQ ran without act-order in this run (its default "
                                                        f"since 2026-12-07 is act-order 'static'): filed as the no-act-order ablation"]
                                                       if noact and any(p['method'] == 'llmc-gptq' for p in rep['points']) else []))
    b = rep['baseline']
    out = [sess]
    for p in rep['points']:
        p = dict(p)
        if noact and p['method'] == 'llmc-gptq': p['method'] = 'llmc-gptq-noact'
        for k in Q.KL_KEYS: p.setdefault(k, None)
        if p['kl_mean'] is None: p.setdefault('kl_note', f"run of {rep['date'][:10]}, before the bench measured KL")
        common = dict(model=rep['model'], data=rep.get('corpus', 'embedded'), seqlen=rep['seqlen'], tokens=b['tokens'],
                      windows=b['windows'], linear_bpw=p['bpw'], ppl_base=b['ppl'], ppl=p['ppl'], ppl_delta_pct=p['delta_pct'],
                      **{k: p[k] for k in Q.KL_KEYS}, session=sid, point=p, date=rep['date'], versions=rep.get('versions'),
                      imported_from=src, provenance=prov)
        if p['method'] == 'tenpak':
            r = dict(kind='run', recipe=p['name'], strategy=p.get('strategy') or p['name'], ratio_fp32=32 / p['bpw'],
                     ratio_fp16=16 / p['bpw'], status=rlog.status(p['delta_pct'], 32 / p['bpw']), model_bpw=p.get('model_bpw'),
                     seconds=p.get('stage_seconds'), calib_samples=rep.get('calib_windows'), **common)
        else:
            m = p['method']
            ver = (peers.get('versions') or {}).get('llmcompressor') if flat else (((peers.get(m) or {}).get('versions') or {}).get('llmcompressor'))
            if m == 'hqq': ver = (rep.get('versions') or {}).get('hqq')
            r = dict(kind='peer', recipe=p['name'], strategy=Q.PEER_LABEL[m], calib_samples=rep.get('calib_windows'),
                     peer=dict(method=m, label=Q.PEER_LABEL[m], library=Q.PEER_LIBRARY[m], version=ver), **common)
        out.append(r)
    return out


def import_decode(path: Path, commit: str) -> list[dict]:
    "A bench/decode.py --cpu report (cpu_decode.json) as `decode` records, one per variant."
    res = json.loads(Path(path).read_text())
    env = res['env']
    src = f"{path} at commit {commit[:7]}"
    date = env['time'].replace(' ', 'T') + '+00:00'
    sid = f"decode/{date}"
    prov = dict(command=res.get('command') or f"{res['script']} (full command in results/cpu_decode.md)", git=dict(head=commit),
                machine={k: env.get(k) for k in ('host', 'cpu', 'cpu_count', 'ram_gib', 'threads')})
    return [dict(kind='decode', session=sid, date=date, config=res['config'], env=env, imported_from=src, provenance=prov,
                 **{k: v for k, v in r.items() if k != 'generated'}, generated=r.get('generated'))
            for r in res['results']]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.split('\n')[1:]))
    p.add_argument('--log', default=str(ROOT / 'results' / 'log.jsonl'), help='the results log (default results/log.jsonl)')
    p.add_argument('--out-dir', default=None, help='where the files are (default: the log\'s folder)')
    p.add_argument('--check', action='store_true', help='change nothing: list the files that disagree with the log, exit 1 if any')
    p.add_argument('--import-quality', default=None, metavar='JSON', help='append an older quality_<model>.json to the log')
    p.add_argument('--import-decode', default=None, metavar='JSON', help='append an older cpu_decode.json to the log')
    p.add_argument('--commit', default=None, help='the commit the imported file was written at (required with an import)')
    a = p.parse_args(argv)
    log_path = Path(a.log)
    out_dir = Path(a.out_dir) if a.out_dir else log_path.parent
    if a.import_quality or a.import_decode:
        if not a.commit: p.error('an import needs --commit (the commit the file was written at)')
        recs = import_quality(Path(a.import_quality), a.commit) if a.import_quality else import_decode(Path(a.import_decode), a.commit)
        for r in recs: rlog.append(r, log_path)
        print(f"appended {len(recs)} records to {log_path}")
        return 0
    outs = outputs(rlog.load(log_path))
    if a.check:
        bad = check(outs, out_dir)
        for b in bad: print(b)
        print(f"{len(outs) - len(bad)} of {len(outs)} results files agree with {log_path}")
        return 1 if bad else 0
    written = write(outs, out_dir)
    print(f"regenerated from {log_path}: {', '.join(str(out_dir / w) for w in written)}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
