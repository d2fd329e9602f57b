#!/usr/bin/env python
"""GGUF quality (issue 23): a TenPak recipe that targets a GGUF block type exactly, exported with `tenpak export --format
gguf` and read back by transformers' own GGUF loader, against plain round-to-nearest into the same type by the `gguf`
package (llama.cpp's reference quantizer), on the same held-out windows. Prints one JSON line per row and appends it to
--out.

    python bench/gguf_quality.py --model smollm2-135m --qtype Q4_0 --recipe gguf-q4_0 --windows 16 --out results/gguf_quality.jsonl
    python bench/gguf_quality.py --model ref-tiny --qtype Q4_1 --recipe gguf-q4_1 --out results/gguf_quality.jsonl

Q4_0 (symmetric) for SmolLM2: its weights come from a Q4_1 file, so round-to-nearest Q4_1 would rebuild them for free.
"""
import argparse, copy, datetime, json, platform, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

ap = argparse.ArgumentParser()
ap.add_argument('--model', default='ref-tiny'); ap.add_argument('--qtype', default='Q4_1'); ap.add_argument('--recipe', default='gguf-q4_1')
ap.add_argument('--windows', type=int, default=None); ap.add_argument('--threads', type=int, default=1)
ap.add_argument('--out', default='gguf_quality.jsonl')
ap.add_argument('--log', default='results/log.jsonl', help="also append each row to this results log (kind 'gguf'); '' for none")
a = ap.parse_args()
torch.set_num_threads(a.threads)
import gguf
from tenpak.zoo import load_model, default_seqlen
from tenpak.recipe import run, get_recipe
from tenpak.export import export_gguf
from tenpak.eval import perplexity, as_windows
from tenpak.data import load_corpus, tokenize
from tenpak.arch import bos_id, find_linears
from tenpak import log as rlog

model, tok = load_model(a.model)
seqlen = default_seqlen(a.model)
test = as_windows(tokenize(tok, load_corpus('embedded').test), seqlen, bos_id(model, tok))
if a.windows: test = test[:a.windows]
base = perplexity(model, test, batch_size=8, progress=False, summarize=True)
print(f"float PPL {base.ppl:.4f} on {base.tokens} tokens", flush=True)
commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
common = dict(model=a.model, qtype=a.qtype, windows=len(test), tokens=base.tokens, ppl_base=base.ppl, commit=commit, threads=a.threads,
              machine=f"{platform.machine()} {platform.node()}", torch=torch.__version__, gguf=__import__('importlib.metadata').metadata.version('gguf'),
              date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'), command=' '.join(sys.argv))

def emit(row):
    row = {**common, **row}
    print(json.dumps(row), flush=True)
    with open(a.out, 'a') as f: f.write(json.dumps(row) + '\n')
    if a.log: rlog.append({**row, 'kind': 'gguf'}, a.log)

def score(m, name, **extra):
    r = perplexity(m, test, batch_size=8, progress=False, reference=base)
    emit(dict(method=name, ppl=r.ppl, delta=(r.ppl / base.ppl - 1) * 100, kl_mean=r.kl_mean, kl_p99=r.kl_p99, top1_agree=r.top1_agree, **extra))

# 1. round-to-nearest into the GGUF type by the gguf package, every decoder Linear (llama.cpp's quantizer)
t = time.time()
rtn = copy.deepcopy(model)
qt = gguf.GGMLQuantizationType[a.qtype]
with torch.no_grad():
    for n, lin in find_linears(rtn).items():
        W = lin.weight.detach().float().numpy()
        back = np.asarray(gguf.quants.dequantize(gguf.quants.quantize(W, qt), qt), dtype=np.float32).reshape(W.shape)
        lin.weight.data.copy_(torch.from_numpy(back))
score(rtn, f'gguf round-to-nearest {a.qtype}', seconds=time.time() - t)
del rtn

# 2. the TenPak recipe, packed, exported to GGUF, read by transformers' GGUF loader
with tempfile.TemporaryDirectory() as d:
    t = time.time()
    res = run(get_recipe(a.recipe), model=copy.deepcopy(model), tokenizer=tok, model_name=a.model, baseline=base, log=False, progress=False,
              pack=True, save_dir=Path(d) / 'run', eval_windows=a.windows)
    f = export_gguf(Path(d) / 'run' / 'packed', Path(d) / 'm.gguf', verbose=False)
    rep = export_gguf.report
    types = sorted({r['type'] for r in rep.values()}); twins = sum(r['exact_twin'] for r in rep.values())
    emit(dict(method=f'tenpak {a.recipe} (fake-quant, in TenPak)', ppl=res.record['ppl'], delta=res.record['ppl_delta_pct'],
              kl_mean=res.record['kl_mean'], kl_p99=res.record['kl_p99'], top1_agree=res.record['top1_agree'], bpw=res.record['linear_bpw'],
              seconds=time.time() - t))
    back, _ = load_model(str(f))
    score(back.float(), f'tenpak {a.recipe} -> GGUF, read by transformers', gguf_types=types, exact_twins=f"{twins}/{len(rep)}",
          max_twin_rel_error=max((r['rel_error'] for r in rep.values() if r['exact_twin']), default=None), file_bytes=f.stat().st_size)
