"""Ablations on the first N held-out windows (results/rotation.md, results/metadata.md): the float PPL (with its
summary, so every run also reports KL and top-1 agreement) before and after `tenpak.rotate.rotate_model`, then built-in
recipes on a plain and/or on a rotated copy of the model, with `tenpak.recipe.run` and the float pass as baseline.
One JSON line per run is appended to --out. (`--modes plain` with `rot-*` recipes rotates inside `run`, as users do.)

    python bench/rotation_ablation.py --model smollm2-135m --recipes gptq-int3-g128,rtn-int3-g128 --modes rot,plain \
        --massive 100 --windows 16 --out results/rotation_ablation.jsonl
    python bench/rotation_ablation.py --model smollm2-135m --modes plain --windows 16 --out results/metadata_ablation.jsonl \
        --recipes gptq-budget-2.5,dq8-gptq-budget-2.5,rot-gptq-budget-2.5,dq8-rot-gptq-budget-2.5
"""
import sys, json, time, copy, argparse, torch
from tenpak.zoo import load_model
from tenpak.recipe import run, get_recipe
from tenpak.core import Recipe
from tenpak.rotate import rotate_model
from tenpak.eval import perplexity, as_windows
from tenpak.data import load_corpus, tokenize
from tenpak.arch import bos_id
from tenpak import log as rlog
ap = argparse.ArgumentParser()
ap.add_argument('--model', default='smollm2-135m'); ap.add_argument('--recipes', default='rtn-int4-g128')
ap.add_argument('--windows', type=int, default=64); ap.add_argument('--threads', type=int, default=1)
ap.add_argument('--modes', default='rot,plain'); ap.add_argument('--heads', type=int, default=1)
ap.add_argument('--massive', type=float, default=None); ap.add_argument('--out', default='rotation_ablation.jsonl'); ap.add_argument('--seqlen', type=int, default=None)
ap.add_argument('--log', default='results/log.jsonl', help="also append each run's full record to this results log (kind 'ablation'); '' for none")
ap.add_argument('--tune', default=None, metavar='JSON', help='override every recipe\'s block tuning (`Recipe.tune`), e.g. \'{"steps": 60}\'; the recipe is renamed with the setting')
ap.add_argument('--table', default=None, metavar='JSONL', help='print a markdown table of the records in JSONL and exit')
a = ap.parse_args()
if a.table:
    rows = [json.loads(l) for l in open(a.table) if l.strip()]
    f = lambda v, fmt: '—' if v is None else format(v, fmt)
    print('| model | recipe | bits/weight | PPL Δ | KL mean (p99) | top-1 | time (s) | commit |\n|---|---|---:|---:|---:|---:|---:|---|')
    for r in rows:
        print(f"| {r['model']} | `{r['recipe']}`{'' if r['mode'] == 'plain' else ' (' + r['mode'] + ')'} | {r['bpw']:.3f} | {r['delta']:+,.2f}% | "
              f"{f(r.get('kl_mean'), '.3f')} ({f(r.get('kl_p99'), '.2f')}) | {f(None if r.get('top1_agree') is None else 100 * r['top1_agree'], '.1f')}% | "
              f"{r['s']:.0f} | {r.get('commit', '—')} |")
    sys.exit(0)
torch.set_num_threads(a.threads)
COMMIT = __import__('subprocess').run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()   # the code this process imported
base_model, tok = load_model(a.model)
from tenpak.zoo import default_seqlen
seqlen = a.seqlen or default_seqlen(a.model)
corpus = load_corpus('embedded')
test = as_windows(tokenize(tok, corpus.test), seqlen, bos_id(base_model, tok))[:a.windows]
t = time.time(); base = perplexity(base_model, test, batch_size=8, progress=False, summarize=True); p0 = base.ppl
print(f'float PPL {p0:.4f} ({time.time()-t:.0f} s)', flush=True)
for mode in a.modes.split(','):
    for r in a.recipes.split(','):
        m = copy.deepcopy(base_model)
        info = None
        if mode == 'rot':
            from tenpak.data import calib_windows
            cal = calib_windows(tokenize(tok, corpus.train), 32, seqlen, seed=1)
            info = rotate_model(m, {'seed': 0, 'heads': bool(a.heads), 'massive': a.massive}, calib=cal)
            print('keep', info.get('keep'), flush=True)
            pr = perplexity(m, test, batch_size=8, progress=False).ppl
            print(f'rotated float PPL {pr:.4f} (rel diff {pr/p0-1:+.2e})', flush=True)
        t = time.time()
        rr = get_recipe(r)
        if a.tune:
            tn = json.loads(a.tune)
            rr = Recipe.from_dict({**rr.to_dict(), 'name': f"{r}+tune{a.tune.replace(' ', '')}", 'tune': tn})
        res = run(rr, model=m, tokenizer=tok, model_name=a.model, eval_windows=a.windows, baseline=base if mode == 'plain' else p0, log=False, progress=False, seqlen=seqlen)
        rec = res.record
        out = dict(model=a.model, recipe=rr.name, mode=mode, heads=a.heads, massive=a.massive, bpw=rec['linear_bpw'], ppl=rec['ppl'], delta=rec['ppl_delta_pct'], kl_mean=rec.get('kl_mean'), kl_p99=rec.get('kl_p99'),
                   top1_agree=rec.get('top1_agree'), s=time.time()-t, rotation=info or rec.get('rotation'),
                   plan_digest=rec.get('plan_digest'), commit=COMMIT)
        print(json.dumps(out), flush=True)
        open(a.out, 'a').write(json.dumps(out) + '\n')
        if a.log: rlog.append({**rec, 'kind': 'ablation', 'ablation': a.out, 'mode': mode, 'rotation_applied': info}, a.log)   # the one results log
