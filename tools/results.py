#!/usr/bin/env python
"""Every committed results file, regenerated from the one results log (results/log.jsonl).

    python tools/results.py            # rewrite results/RESULTS.md, results/pareto.png, results/quality.md and
                                       # results/quality_<model>.{json,png} from results/log.jsonl
    python tools/results.py --check    # change nothing; exit 1 naming each committed file (or results block) that disagrees
                                       # with the log
    python tools/results.py --import-quality results/quality_X.json --commit SHA
                                       # move a bench report written before the log held sessions into the log (once)
    python tools/results.py --import-decode results/cpu_decode.json --commit SHA
                                       # the same for a CPU decode run of bench/decode.py --cpu

What comes from where (`tenpak.log` describes the record kinds):
  * RESULTS.md, pareto.png: the newest `run` record of each (recipe, model, corpus, seqlen) -- `tenpak run` and the
    TenPak rows of bench/quality.py alike -- with their sources, then the newest CPU decode run (`decode` records);
  * quality.md, quality_<model>.json / .png: per model, the newest bench/quality.py `session` and its points (TenPak's
    `run` records and the peers' `peer` records of that session), laid out by bench/quality.py's own table code.
  * the `<!-- results:NAME -->` blocks of nbs/index.ipynb (then README.md, through tools/sync_readme.py),
    results/rotation.md, lowbit.md and cpu_decode.md: BLOCKS[NAME](records) below. README.md may quote a PPL change
    (`+12.0%`) only inside such a block; --check fails on one outside them.
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


def as_builtin(r: dict) -> dict:
    """A run's point, named by the built-in recipe it ran when it was given as a file (`bench/recipes/X.yaml`) whose recipe, name
    and strategy aside, is that built-in as defined now (files leave the tree once they become built-ins); a run of a built-in
    that has been redefined since is named with what it set differently (`recipe.spec_changes`), so it is never taken for
    today's built-in."""
    p = r['point']
    if rlog.kind(r) != 'run' or not r.get('recipe_spec'): return p
    from tenpak.recipe import builtin_of, run_name
    name = str(p.get('name', ''))
    if name.endswith(('.yaml', '.yml', '.toml')):
        b = builtin_of(r['recipe_spec'])
        return {**p, 'name': b, 'ran_as': name} if b is not None and b == r.get('recipe') else p
    if name == r.get('recipe') and (shown := run_name(name, r['recipe_spec'])) != name: return {**p, 'name': shown, 'ran_as': name}
    return p


def quality_reports(records: list[dict]) -> dict[str, dict]:
    "Per model, its newest bench/quality.py session as the report bench/quality.py lays out (session fields + points + derived parts)."
    Q = _quality()
    last = {}
    for r in records:
        if rlog.kind(r) == 'session' and r.get('bench') == 'bench/quality.py': last[r['model']] = r
    out = {}
    for model, s in last.items():
        rep = {k: v for k, v in s.items() if k not in ('kind', 'bench', 'provenance')}
        rep['points'] = [as_builtin(r) for r in records if r.get('session') == s['session'] and rlog.kind(r) in ('run', 'peer')]
        for r in records:                  # later runs that joined the session (bench/quality.py --join)
            if rlog.kind(r) != 'session-part' or r.get('part_of') != s['session']: continue
            rep.setdefault('parts', []).append({k: r.get(k) for k in ('command', 'date', 'git', 'machine', 'timings', 'methods', 'attached_from')})
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


# ------------------------------------------------------------------------------- numbers in README and results/*.md
# A number quoted in README.md (nbs/index.ipynb) or in a hand-written report lives in a marked block:
#     <!-- results:NAME -->
#     ...generated text...
#     <!-- /results:NAME -->
# `python tools/results.py` rewrites every block's text from the log (BLOCKS[NAME](records)); `--check` fails when a
# block's committed text differs, when a block has no generator, and when README.md quotes a signed percentage
# (`+12.0%`, a measured PPL change) outside every block: such a number is not tied to the log.
MARKED = ('nbs/index.ipynb', 'README.md', 'results/rotation.md', 'results/lowbit.md', 'results/cpu_decode.md')
BLOCK_RE = re.compile(r'<!-- results:(?P<name>[\w.:-]+) -->\n(?P<body>.*?)\n?<!-- /results:(?P=name) -->', re.S)
LOOSE_PCT = re.compile(r'(?<![\w.])[+−][0-9][0-9,]*(?:\.[0-9]+)?%')


def pct(d, nd=2) -> str:
    "A PPL change as the front page prints it: +0.08%, +12.0%, +3,029% (from 1,000% on: commas, no decimals)."
    if d is None: return '—'
    return f'{d:+,.0f}%' if abs(d) >= 1000 else f'{d:+,.{nd}f}%'


def _one(recs: list[dict], what: str) -> dict:
    if not recs: raise KeyError(f'results log has no record for {what}')
    return recs[-1]                                        # the newest (the log is append-only)


def abl(records, model, recipe, mode='plain', massive=None, source=None, method='tenpak') -> dict:
    """The newest `ablation` record of `recipe` on `model` (imported ones and those bench/rotation_ablation.py writes have
    different field names: this gives both as one dict: bpw, delta, kl, top1, s, massive)."""
    out = []
    for r in records:
        if rlog.kind(r) != 'ablation' or r.get('model') != model or r.get('recipe') != recipe: continue
        if r.get('mode', 'plain') != mode or r.get('method', 'tenpak') != method: continue
        src = r.get('ablation') or (r.get('imported_from') or '').split(' at commit')[0]
        if source and src != source: continue
        m = r.get('massive') if 'massive' in r else ((r.get('rotation_applied') or {}).get('massive'))
        if massive != 'any' and (m or None) != massive: continue
        out.append(dict(model=model, recipe=recipe, mode=mode, source=src, massive=m, method=r.get('method', 'tenpak'),
                        bpw=r['linear_bpw'] if 'linear_bpw' in r else r['bpw'],
                        delta=r['ppl_delta_pct'] if 'ppl_delta_pct' in r else r['delta'], kl=r.get('kl_mean'),
                        top1=r.get('top1_agree'),
                        s=r['seconds'].get('total') if isinstance(r.get('seconds'), dict) else r.get('s')))
    return _one(out, f"ablation {model} {recipe} ({mode}, massive={massive}, source={source})")


def gguf(records, model, method) -> dict:
    return _one([r for r in records if rlog.kind(r) == 'gguf' and r['model'] == model and r['method'] == method],
                f'gguf {model} {method}')


def decode_rows(records, model) -> list[dict]:
    recs = [r for r in records if rlog.kind(r) == 'decode' and r.get('model') == model and 'error' not in r]
    if not recs: raise KeyError(f'results log has no decode record for {model}')
    return [r for r in recs if r['session'] == recs[-1]['session']]


def bold_min(cells: list[tuple]) -> list[str]:
    "cells: (delta, text); the smallest delta's text in bold."
    ds = [d for d, _ in cells if d is not None]
    return [f'**{t}**' if d is not None and d == min(ds) else t for d, t in cells]


# -- README: the quality tables, one per model, from that model's newest bench/quality.py session
def front_quality(records, model) -> str:
    Q = _quality()
    rep = quality_reports(records)[model]
    b, pts, cols = rep['baseline'], rep['points'], rep['columns']
    peers = [m for m in Q.METHODS if m != 'tenpak' and any(p['method'] == m for p in pts)]
    kl = any(p.get('kl_mean') is not None for p in pts)
    head = (f"*{model}*: session `{rep['session']}` of `results/log.jsonl` ({rep['date'][:10]}, commit "
            f"{(rep.get('git') or {}).get('head', '?')[:7]}): {b['windows']} held-out windows x {b['seqlen']} tokens "
            f"({b['tokens']:,} predicted), float PPL {b['ppl']:.2f}, calibration {rep.get('calib_windows')} train windows. "
            f"Each cell: PPL Δ; TenPak's cell names its best recipe at that size (its own bpw in brackets when off the column)"
            + (", then KL(float ‖ compressed) in nats per token and top-1 agreement with the float model" if kl else
               "; KL and top-1 were not measured in this session") + ". Every recipe: `results/quality.md`.")
    lines = ['| bits/weight (vs FP32) | TenPak, best recipe | ' + ' | '.join(Q.PEER_LABEL[m] for m in peers) + ' |',
             '|---|---|' + '---:|' * len(peers)]
    for c in cols:
        at = [p for p in pts if Q.col_of(p['bpw'], cols) == c]
        tp = [p for p in at if p['method'] == 'tenpak']
        best = min(tp, key=lambda p: p['delta_pct']) if tp else None
        cells = []
        if best:
            t = f"{pct(best['delta_pct'])} `{best['name']}`" + (f" ({best['bpw']:.3g})" if abs(best['bpw'] - c) > 0.005 and '@' not in best['name'] else '')
            if best.get('kl_mean') is not None: t += f" (KL {best['kl_mean']:.4f}, {100 * best['top1_agree']:.1f}%)"
            cells.append((best['delta_pct'], t))
        else: cells.append((None, '—'))
        for m in peers:
            pp = [p for p in at if p['method'] == m]
            cells.append((pp[0]['delta_pct'], pct(pp[0]['delta_pct']) + (' (mix)' if '+' in pp[0]['name'] else ''))
                         if pp else (None, '—'))
        lines.append(f'| {c:.2f} ({32 / c:.1f}x) | ' + ' | '.join(bold_min(cells)) + ' |')
    same = []
    for p in pts:
        mm = re.fullmatch(r'gptq-int(\d)-g(\d+)', p['name']) if p['method'] == 'tenpak' else None
        q = [x for x in pts if mm and x['method'] == 'llmc-gptq' and x['name'] == f'int{mm[1]}-g{mm[2]}']
        if q: same.append(f"INT{mm[1]} g{mm[2]} {pct(p['delta_pct'])} vs {pct(q[0]['delta_pct'])}")
    out = [head, '', *lines, '']
    if same: out.append("Same uniform config, TenPak's GPTQ vs llm-compressor's act-order GPTQ: " + '; '.join(same) + '.')
    out += [f'- {s}' for s in rep.get('sentences') or []]
    hit = [p for p in pts if p['method'] == 'tenpak' and 32 / p['bpw'] >= 13.95]
    if hit:
        bst = min(hit, key=lambda p: p['delta_pct'])
        out.append(f"- The seed's target, 14x vs FP32 at < 2% PPL: {'met' if bst['delta_pct'] < 2 else 'not met'}; best TenPak "
                   f"recipe at ≥ 14x: `{bst['name']}`, {pct(bst['delta_pct'])} at {bst['bpw']:.3g} bpw.")
    return '\n'.join(out)


# -- rotation on SmolLM2 (results/rotation.md, README): one quality-bench run (imported as ablation records from
#    results/rotation_smollm2-135m.json) and bench/rotation_ablation.py's runs, same 16 windows
ROT_SRC = 'results/rotation_smollm2-135m.json'
ROT_ROWS = ((4, 128), (3, 128), (2, 64))


def rotation_cells(records, b, g, every_channel=False):
    R = lambda name, mode='plain', src=ROT_SRC, massive=None, method='tenpak': abl(records, 'smollm2-135m', name, mode, massive, src, method)
    cells = [R(f'gptq-int{b}-g{g}')]
    if every_channel: cells.append(R(f'rot-gptq-int{b}-g{g}'))
    cells += [R(f'gptq-int{b}-g{g}', 'rot', 'results/rotation_ablation.jsonl', 100.0),
              R(f'int{b}-g{g}', method='llmc-gptq'), R(f'int{b}-g{g}', method='llmc-spinquant')]
    return cells


def rotation_table(records, full=False) -> str:
    if full:
        lines = ['| bpw (vs FP32) | TenPak `gptq-int*` (act-order) | TenPak rotated, every channel | TenPak rotated, massive '
                 'channel kept (`rot-gptq-*`) | llm-compressor GPTQ (act-order `static`) | llm-compressor SpinQuant R1+R2 + GPTQ |',
                 '|---|---:|---:|---:|---:|---:|']
    else:
        lines = ['| bits/weight | TenPak GPTQ | TenPak rotated GPTQ | GPTQ (llm-compressor, act-order) | SpinQuant + GPTQ (llm-compressor) |',
                 '|---|---:|---:|---:|---:|']
    for b, g in ROT_ROWS:
        cs = rotation_cells(records, b, g, every_channel=full)
        nd = 2 if full else 1
        txt = bold_min([(c['delta'], f"{c['delta']:+,.2f}%" if full else pct(c['delta'], 1)) for c in cs])
        bpw = cs[0]['bpw']
        lines.append(f"| {bpw:.2f}" + (f" ({32 / bpw:.1f}x)" if full else '') + ' | ' + ' | '.join(txt) + ' |')
    return '\n'.join(lines)


def rotation_rtn(records) -> str:
    lines = ['| RTN, same windows | plain | rotated, every channel | rotated, massive channel kept |', '|---|---:|---:|---:|']
    S = 'results/rotation_ablation.jsonl'
    for name in ('rtn-int4-g128', 'rtn-int3-g128'):
        plain = abl(records, 'smollm2-135m', name, 'plain', 100.0, S)
        try: every = f"{abl(records, 'smollm2-135m', name, 'rot', None, S)['delta']:+,.2f}%"
        except KeyError: every = '—'
        kept = abl(records, 'smollm2-135m', name, 'rot', 100.0, S)
        lines.append(f"| `{name}` ({plain['bpw']:.2f}) | {plain['delta']:+,.2f}% | {every} | {kept['delta']:+,.2f}% |")
    return '\n'.join(lines)


# -- low bits (results/lowbit.md, README): bench/rotation_ablation.py's records, same 16 windows
LOWBIT_ROWS = (  # (size: configuration, recipe), in the order of results/lowbit.md
    ('3.31 / 3.13: GPTQ INT3 g128, 8-bit scales, packed zeros', 'dq8-gptq-int3-g128'),
    ('3.31 / 3.13: GPTQ INT3 g128 tuned (20 steps)', 'tune-gptq-int3-g128'),
    ('3.31 / 3.13: … tuned (60 steps; 2 threads, machine otherwise quiet)', 'gptq-int3-g128+tune{"steps":60}'),
    ('3.31 / 3.13: GPTQ INT3 g128 rotated (residual + heads, massive channel kept)', 'rot-gptq-int3-g128', 'results/online_ablation.jsonl'),
    ('3.31 / 3.13: … rotated + online Hadamard on down_proj', 'rot-online-gptq-int3-g128'),
    ('4.31: GPTQ INT4 g128 rotated + online Hadamard', 'rot-online-gptq-int4-g128'),
    ('3.25 budget: Hessian-scored budget, 8-bit scales, tuned', 'tune-dq8-gptq-budget-3.25'),
    ('3.25 budget: … rotated + online Hadamard too', 'tune-dq8-rot-online-gptq-budget-3.25'),
    ('2.50 budget: Hessian-scored budget (fp16 metadata)', 'gptq-budget-2.5'),
    ('2.50 budget: … 8-bit scales, packed zeros', 'dq8-gptq-budget-2.5'),
    ('2.50 budget: … tuned', 'tune-dq8-gptq-budget-2.5'),
    ('2.50 budget: … rotated + online Hadamard, 8-bit scales, tuned', 'tune-dq8-rot-online-gptq-budget-2.5'),
    ('2.29 (14x) budget: 8-bit scales, tuned', 'tune-dq8-gptq-budget-2.29'),
    ('3.19: GPTQ INT3 against one fitted table of 8 fp16 values per row (non-uniform codes alone)', 'gptq-table-int3-row', 'results/table_ablation.jsonl'),
    ('2.62: GPTQ INT2 against a fitted table of 4 values per group (of 96 on 576-wide inputs; codes alone)', 'gptq-table-int2-g128', 'results/table_ablation.jsonl'))


def lowbit_table(records) -> str:
    lines = ['| size: configuration | recipe | bits/weight | PPL Δ · KL · top-1 | wall s |', '|---|---|---:|---|---:|']
    for label, name, *src in LOWBIT_ROWS:
        r = abl(records, 'smollm2-135m', name, source=src[0] if src else None)
        lines.append(f"| {label} | `{name}` | {r['bpw']:.3f} | {r['delta']:+,.2f}% · KL {r['kl']:.3f} · {100 * r['top1']:.1f}% | {r['s']:.0f} |")
    return '\n'.join(lines)


def lowbit_tune_tiny(records) -> str:
    lines = ['| recipe | PPL Δ | KL mean | top-1 |', '|---|---:|---:|---:|']
    for name in ('gptq-int2-g64', 'tune-gptq-int2-g64', 'gptq-int2-g64+tune{"steps":60}', 'gptq-int2-g64+tune{"target":"float"}', 'gptq-int2-g64+tune{"e2e_steps":30}'):
        r = abl(records, 'ref-tiny', name)
        lines.append(f"| `{name}` | {r['delta']:+.2f}% | {r['kl']:.4f} | {100 * r['top1']:.1f}% |")
    return '\n'.join(lines)


GGUF_ROWS = (('smollm2-135m', 'Q4_0'), ('ref-tiny', 'Q4_1'))


def gguf_table(records) -> str:
    lines = ['| model | GGUF type | what | PPL Δ | KL | top-1 | bits/weight |', '|---|---|---|---:|---:|---:|---:|']
    for model, qt in GGUF_ROWS:
        for r in (r for r in records if rlog.kind(r) == 'gguf' and r['model'] == model and r['qtype'] == qt):
            bpw = '' if r.get('bpw') is None else f"{r['bpw']:.1f}"
            lines.append(f"| {model} | {qt} | {r['method']} | {r['delta']:+.3f}% | {r['kl_mean']:.4f} | {100 * r['top1_agree']:.2f}% | {bpw} |")
    return '\n'.join(lines)


def front_lowbit(records) -> str:
    S = lambda n: abl(records, 'smollm2-135m', n)
    rot = {b: rotation_cells(records, b, g) for b, g in ROT_ROWS}
    lines = ['| bits/weight | TenPak, before (above) | TenPak now | best peer (above) |', '|---|---:|---:|---:|']
    lab = {'llmc-gptq': 'GPTQ', 'llmc-spinquant': 'SpinQuant + GPTQ'}
    for size, b, name in (('4.31', 4, 'rot-online-gptq-int4-g128'), ('3.25–3.31', 3, 'tune-dq8-rot-online-gptq-budget-3.25'),
                          ('2.50', 2, 'tune-dq8-rot-online-gptq-budget-2.5'), ('2.29 (14x)', None, 'tune-dq8-gptq-budget-2.29')):
        now = S(name)
        if b is None:
            lines.append(f"| {size} | — | {pct(now['delta'], 1)} `{name}` | — |"); continue
        before = min(c['delta'] for c in rot[b][:2])
        peer = min(rot[b][2:], key=lambda c: c['delta'])
        cells = bold_min([(before, pct(before, 1)), (now['delta'], pct(now['delta'], 1)), (peer['delta'], pct(peer['delta'], 1))])
        cells[1] += f" `{name}`" + (f" ({now['bpw']:.2f})" if abs(now['bpw'] - rot[b][0]['bpw']) > 0.02 else '')
        cells[2] += f" ({lab[peer['method']]})"
        lines.append(f"| {size} | " + ' | '.join(cells) + ' |')
    b25 = [S(n)['delta'] for n in ('gptq-budget-2.5', 'dq8-gptq-budget-2.5', 'tune-dq8-gptq-budget-2.5', 'tune-dq8-rot-online-gptq-budget-2.5')]
    lines += ['', f"At 2.5 bpw the metadata alone takes the Hessian-scored budget from {pct(b25[0], 1)} to {pct(b25[1], 1)}, "
                  f"tuning to {pct(b25[2], 1)}, and the rotations to {pct(b25[3], 1)}."]
    return '\n'.join(lines)


def front_gguf(records) -> str:
    t, r = gguf(records, 'smollm2-135m', 'tenpak gguf-q4_0 -> GGUF, read by transformers'), gguf(records, 'smollm2-135m', 'gguf round-to-nearest Q4_0')
    return (f"`tenpak export --format gguf` of the `gguf-q4_0` recipe (GPTQ written block for block as llama.cpp's Q4_0) reads back "
            f"in transformers at {t['delta']:+.2f}% against {r['delta']:+.2f}% for round-to-nearest Q4_0 on the same {t['windows']} windows.")


# -- CPU decode (README, results/cpu_decode.md): the newest bench/decode.py --cpu run
def front_decode(records, model='smollm2-135m') -> str:
    rows = {r['variant']: r for r in decode_rows(records, model)}
    f = rows['float32']
    lab = {'float32': 'float32', 'bf16': 'bf16', 'int4-g128-bf16': 'packed INT4 g128, bf16 model (torch CPU INT4 kernel)',
           'int4-g128-ref': 'packed INT4 g128, float32 model (dequantize + matmul, the exact path)'}
    lines = ['| variant | tokens/s | vs float32 | weights in memory |', '|---|---:|---:|---:|']
    for v in ('float32', 'bf16', 'int4-g128-bf16', 'int4-g128-ref'):
        r = rows[v]; tk, sp = f"{r['decode_tok_s']:.1f}", f"{r['speedup_vs_float32']:.2f}x"
        if v == 'int4-g128-bf16': tk, sp = f'**{tk}**', f'**{sp}**'
        w = f"{r['weights_mib']:.0f} MiB" + (f" + {r['cpu_kernel_cache_mib']:.0f} MiB kernel copy" if r['cpu_kernel_cache_mib'] else '')
        lines.append(f"| {lab[v]} | {tk} | {sp} | {w} |")
    a, pb = rows['int4-g128'], rows['int4-g128-bf16']
    mem = (pb['weights_mib'] + pb['cpu_kernel_cache_mib']) / f['weights_mib']
    lines += ['', f"A float32 model keeps the exact path unless `PackedLinear.cpu_kernel = 'always'` ({a['decode_tok_s']:.1f} tokens/s, "
                  f"{a['speedup_vs_float32']:.2f}x). INT2/3, N:M, grouped INT8 and groups the kernel cannot take fall back to dequantize "
                  f"+ matmul, and each `PackedLinear` says so. Weights in memory: {mem:.2f}x float32 "
                  + ("(the issue's bound is 0.3x)." if mem <= 0.3 else "(above the issue's 0.3x: the embeddings stay float and the kernel keeps its own copy of the codes).")]
    return '\n'.join(lines)


def decode_full(records) -> str:
    lines = ['| model | variant | decode tok/s | vs float32 | weights MiB (+ CPU-kernel copy) | RSS MiB (growth from load + decode) | first token differing from float32 |',
             '|---|---|---:|---:|---:|---:|---:|']
    for model in ('ref-tiny', 'smollm2-135m'):
        for r in decode_rows(records, model):
            fd = r.get('first_divergence_vs_float32')
            fd = fd if fd is not None else f"none in {r['tokens']}"
            lines.append(f"| {model} | {r['what']} | {r['decode_tok_s']:.2f} | {r['speedup_vs_float32']:.2f}x | {r['weights_mib']:.1f} "
                         f"(+{r['cpu_kernel_cache_mib']:.1f}) | {r['rss_mib']:.0f} (+{r['rss_mib'] - r['rss_before_load_mib']:.0f}) | {fd} |")
    return '\n'.join(lines)


BLOCKS = {
    'quality:ref-tiny': lambda R: front_quality(R, 'ref-tiny'),
    'quality:smollm2-135m': lambda R: front_quality(R, 'smollm2-135m'),
    'rotation:front': rotation_table,
    'rotation:table': lambda R: rotation_table(R, full=True),
    'rotation:rtn': rotation_rtn,
    'lowbit:front': front_lowbit,
    'lowbit:table': lowbit_table,
    'lowbit:tune-ref-tiny': lowbit_tune_tiny,
    'gguf:front': front_gguf,
    'gguf:table': gguf_table,
    'decode:front': front_decode,
    'decode:table': decode_full,
}


def fill_blocks(text: str, records: list[dict], cache: dict | None = None) -> tuple[str, list[str]]:
    "`text` with every marked block's body regenerated from the log, and the problems (unknown blocks, failed look-ups)."
    cache = {} if cache is None else cache
    errs = []
    def sub(m):
        name = m['name']
        if name not in BLOCKS: errs.append(f'block results:{name} has no generator in tools/results.py'); return m[0]
        if name not in cache:
            try: cache[name] = BLOCKS[name](records).rstrip('\n')
            except KeyError as e: errs.append(f'block results:{name}: {e}'); return m[0]
        return f'<!-- results:{name} -->\n{cache[name]}\n<!-- /results:{name} -->'
    return BLOCK_RE.sub(sub, text), errs


def loose_numbers(text: str) -> list[str]:
    "Signed percentages outside every marked block (and outside code): numbers that no block ties to the log."
    text = BLOCK_RE.sub('', text)
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    return LOOSE_PCT.findall(text)


def _nb_markdown(nb: dict) -> list[tuple[int, str]]:
    return [(i, ''.join(c['source'])) for i, c in enumerate(nb['cells']) if c['cell_type'] == 'markdown']


def marked(records: list[dict], root=ROOT, write_files=False) -> list[str]:
    """Regenerate (write_files) or check every marked block of MARKED under `root`; the problems, one line each ([] when
    all agree). README.md is checked as committed and, when written, rendered from nbs/index.ipynb by tools/sync_readme.py."""
    root, probs, cache = Path(root), [], {}
    for rel in MARKED:
        p = root / rel
        if not p.exists(): continue
        if rel.endswith('.ipynb'):
            nb = json.loads(p.read_text())
            changed = False
            for i, src in _nb_markdown(nb):
                new, errs = fill_blocks(src, records, cache)
                probs += [f'{rel}: {e}' for e in errs]
                if new != src:
                    if write_files: nb['cells'][i]['source'] = new.splitlines(keepends=True); changed = True
                    else: probs.append(f'{rel}: a results block in markdown cell {i} disagrees with the log')
            if changed: p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
            continue
        if rel == 'README.md' and write_files:
            sys.path.insert(0, str(ROOT / 'tools'))
            import sync_readme
            p.write_text(sync_readme.render(str(root / 'nbs' / 'index.ipynb')))
        txt = p.read_text()
        new, errs = fill_blocks(txt, records, cache)
        probs += [f'{rel}: {e}' for e in errs]
        if new != txt:
            if write_files: p.write_text(new)
            else:
                bad = [m['name'] for m in BLOCK_RE.finditer(txt) if m[0] not in new]
                probs.append(f"{rel}: results block(s) {', '.join(bad) or '?'} disagree with the log")
        if rel == 'README.md':
            probs += [f'README.md: {n} is quoted outside every results block (put it in one, or drop it)' for n in loose_numbers(txt)]
    return probs


def import_ablation_session(path: Path, commit: str) -> list[dict]:
    """A bench/quality.py report run as an ablation (e.g. results/rotation_smollm2-135m.json: 16 windows, not the
    committed quality table) as `ablation` records, one per point: kind `ablation`, so neither RESULTS.md nor quality.md
    takes them; `method` says whose point it is (tenpak or the peer), `recipe` the point's name."""
    rep = json.loads(Path(path).read_text())
    src = f"{path} at commit {commit[:7]}"
    prov = dict(command=rep['command'], git=rep.get('git') or {}, machine=rep['machine'])
    b = rep['baseline']
    return [dict(kind='ablation', ablation=str(path), mode='plain', method=p['method'], model=rep['model'], recipe=p['name'],
                 bpw=p['bpw'], ppl=p['ppl'], ppl_base=b['ppl'], delta=p['delta_pct'], kl_mean=p.get('kl_mean'),
                 kl_p99=p.get('kl_p99'), top1_agree=p.get('top1_agree'), s=p.get('seconds'), windows=b['windows'],
                 tokens=b['tokens'], seqlen=rep['seqlen'], date=rep['date'], versions=rep.get('versions'),
                 peers=(rep.get('peers') or {}).get(p['method']), imported_from=src, provenance=prov)
            for p in rep['points']]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.split('\n')[1:]))
    p.add_argument('--log', default=str(ROOT / 'results' / 'log.jsonl'), help='the results log (default results/log.jsonl)')
    p.add_argument('--out-dir', default=None, help='where the files are (default: the log\'s folder)')
    p.add_argument('--check', action='store_true', help='change nothing: list the files that disagree with the log, exit 1 if any')
    p.add_argument('--import-quality', default=None, metavar='JSON', help='append an older quality_<model>.json to the log')
    p.add_argument('--import-decode', default=None, metavar='JSON', help='append an older cpu_decode.json to the log')
    p.add_argument('--import-ablation', default=None, metavar='JSON',
                   help="append a bench/quality.py report run as an ablation (not a quality table) as kind 'ablation' records")
    p.add_argument('--root', default=None, help='where README.md, nbs/index.ipynb and results/*.md with results blocks are '
                   '(default: this checkout when --log is results/log.jsonl; with another --log, no blocks are touched)')
    p.add_argument('--commit', default=None, help='the commit the imported file was written at (required with an import)')
    a = p.parse_args(argv)
    log_path = Path(a.log)
    out_dir = Path(a.out_dir) if a.out_dir else log_path.parent
    if a.import_quality or a.import_decode or a.import_ablation:
        if not a.commit: p.error('an import needs --commit (the commit the file was written at)')
        recs = (import_quality(Path(a.import_quality), a.commit) if a.import_quality else
                import_decode(Path(a.import_decode), a.commit) if a.import_decode else
                import_ablation_session(Path(a.import_ablation), a.commit))
        for r in recs: rlog.append(r, log_path)
        print(f"appended {len(recs)} records to {log_path}")
        return 0
    records = rlog.load(log_path)
    outs = outputs(records)
    root = a.root or (ROOT if log_path.resolve() == (ROOT / 'results' / 'log.jsonl').resolve() else None)
    if a.check:
        bad = check(outs, out_dir)
        for b in bad: print(b)
        print(f"{len(outs) - len(bad)} of {len(outs)} results files agree with {log_path}")
        probs = marked(records, root) if root else []
        for b in probs: print(b)
        if root: print(f"results blocks of {', '.join(MARKED)}: {'all agree with the log' if not probs else f'{len(probs)} problem(s)'}")
        return 1 if bad or probs else 0
    written = write(outs, out_dir)
    print(f"regenerated from {log_path}: {', '.join(str(out_dir / w) for w in written)}")
    probs = marked(records, root, write_files=True) if root else []
    for b in probs: print(b)
    if root: print(f"results blocks rewritten in {', '.join(MARKED)}" + (f'; {len(probs)} problem(s)' if probs else ''))
    return 1 if probs else 0


if __name__ == '__main__':
    sys.exit(main())
