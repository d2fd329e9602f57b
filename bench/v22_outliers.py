"""gptq-v22 vs v22 on SmolLM2: do the outliers (or AWQ) make GPTQ lose? 16 evaluation windows, 1 thread.

    python bench/v22_outliers.py v22,gptq-v22,gptq-v22+noout,v22+noout     # +noout: outlier_frac 0; +noawq: no AWQ

Prints bpw, PPL delta and the outlier slots used of the budget, per variant (results/NOTES.md quotes them)."""
import copy, dataclasses, sys, time
import torch
torch.set_num_threads(1)
from tenpak.recipe import run, get_recipe
from tenpak.outliers import n_outliers
from tenpak.zoo import load_model
model, tok = load_model('smollm2-135m', device='cpu')
base = None
variants = sys.argv[1].split(',')
for v in variants:
    name, *mods = v.split('+')
    r = get_recipe(name)
    for mdf in mods:
        if mdf == 'noout': r = dataclasses.replace(r, defaults={**r.defaults, 'outlier_frac': 0.0})
        if mdf == 'noawq': r = dataclasses.replace(r, awq=False)
    r = dataclasses.replace(r, name=v)
    t = time.time()
    res = run(r, copy.deepcopy(model), tokenizer=tok, model_name='smollm2-135m', eval_windows=16, log=False, progress=False, baseline=base)
    base = res.record['ppl_base']
    used = sum(res.applied.outlier_counts.values()) if res.applied else -1
    budget = sum(n_outliers(res.model.get_submodule(n).weight.numel(), lp.outlier_frac) for n, lp in res.plan if not lp.keep)
    print(f"{v:24s} bpw {res.record['linear_bpw']:.4f} PPL {res.record['ppl']:.4f} ({res.record['ppl_delta_pct']:+.2f}%) outliers {used}/{budget} {time.time()-t:.0f}s", flush=True)
    del res
