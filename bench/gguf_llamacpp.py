#!/usr/bin/env python
"""llama.cpp runs TenPak's GGUF export (issue 23): a `gguf-q4_0` recipe of a model, packed, exported with `tenpak export
--format gguf`, then read by llama.cpp itself (`llama-cpp-python`, built from source in its own venv) and by transformers'
GGUF loader; perplexity of both on the same held-out windows as `bench/gguf_quality.py` (embedded corpus, the model's
window length, the first --windows windows), and llama.cpp's greedy decode tokens/s at batch 1. A benchmark, not a test.

    python -m venv /work/llama && CMAKE_BUILD_PARALLEL_LEVEL=1 /work/llama/bin/pip install llama-cpp-python==0.3.36
    OMP_NUM_THREADS=1 python bench/gguf_llamacpp.py --model smollm2-135m --windows 16 --llama-python /work/llama/bin/python \
        --out results/gguf_llamacpp.json

The llama.cpp side runs in a worker process of --llama-python (the venv with llama-cpp-python; it needs only numpy),
which gets the token windows and prints one JSON line. --also-gguf adds a row for another GGUF file read the same way
(default for smollm2-135m: the Q4_1 file SmolLM2 ships as, which the zoo loads).
"""
import argparse, datetime, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = 'The history of the city begins with a small settlement on the river, where'     # bench/decode.py's

WORKER = r'''
import json, sys, time, numpy as np
from llama_cpp import Llama, __version__
job = json.load(open(sys.argv[1]))
llm = Llama(model_path=job['gguf'], n_ctx=job['seqlen'], n_batch=job['seqlen'], n_threads=job['threads'],
            n_threads_batch=job['threads'], logits_all=True, verbose=False, seed=0)
nll, n, t0 = 0.0, 0, time.perf_counter()
for w in job['windows']:
    llm.reset(); llm.eval(w)
    s = np.asarray(llm.scores[:len(w) - 1], dtype=np.float64)               # logits of positions 0..T-2
    m = s.max(-1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(s - m).sum(-1)))
    nll += float((lse - s[np.arange(len(w) - 1), w[1:]]).sum()); n += len(w) - 1
ppl_s = time.perf_counter() - t0
ids = job['prompt_ids']
llm.reset()
t1 = time.perf_counter(); llm.eval(ids); prefill = time.perf_counter() - t1
out, t2 = [], time.perf_counter()
for _ in range(job['tokens']):
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1])); out.append(tok); llm.eval([tok])
dec = time.perf_counter() - t2
print(json.dumps(dict(ppl=float(np.exp(nll / n)), tokens=n, ppl_seconds=ppl_s, prefill_s=prefill, decode_tok_s=job['tokens'] / dec,
                      generated=out, llama_cpp_python=__version__)))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='smollm2-135m'); ap.add_argument('--recipe', default='gguf-q4_0')
    ap.add_argument('--windows', type=int, default=16); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--tokens', type=int, default=128, help='greedy decode steps timed in llama.cpp')
    ap.add_argument('--llama-python', default='/work/llama/bin/python', help='a Python with llama-cpp-python installed')
    ap.add_argument('--also-gguf', default=None, help="another .gguf read the same way ('' for none; default: smollm2-135m's shipped Q4_1)")
    ap.add_argument('--work', default=None, help='folder for the packed checkpoint and the GGUF (default: a temporary one)')
    ap.add_argument('--out', default=str(ROOT / 'results' / 'gguf_llamacpp.json'))
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    sys.path.insert(0, str(ROOT))
    from tenpak.zoo import load_model, default_seqlen, EXTERNAL
    from tenpak.recipe import run, get_recipe
    from tenpak.export import export_gguf
    from tenpak.eval import perplexity, as_windows
    from tenpak.data import load_corpus, tokenize
    from tenpak.arch import bos_id
    from tenpak.log import environment
    t_start = time.perf_counter()
    log = lambda *x: print(f"[{time.perf_counter() - t_start:6.1f}s]", *x, flush=True)

    model, tok = load_model(a.model)
    seqlen = default_seqlen(a.model)
    test = as_windows(tokenize(tok, load_corpus('embedded').test), seqlen, bos_id(model, tok))[:a.windows]
    base = perplexity(model, test, batch_size=8, progress=False, summarize=True)
    log(f"float PPL {base.ppl:.4f} on {base.tokens} tokens ({len(test)} windows of {seqlen})")
    work = Path(a.work or tempfile.mkdtemp(prefix='tenpak_llamacpp_'))
    res = run(get_recipe(a.recipe), model=model, tokenizer=tok, model_name=a.model, baseline=base, log=False, progress=False,
              pack=True, save_dir=work / 'run', eval_windows=a.windows)
    log(f"{a.recipe}: fake-quant PPL {res.record['ppl']:.4f} ({res.record['ppl_delta_pct']:+.2f}%), {res.record['linear_bpw']} bpw")
    cmd = [sys.executable, '-m', 'tenpak.cli', 'export', str(work / 'run' / 'packed'), str(work / 'gguf'), '--format', 'gguf']
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)}, capture_output=True)
    f = work / 'gguf' / 'model.gguf'
    log(f"exported {f} ({f.stat().st_size / 2**20:.1f} MiB): {' '.join(cmd[2:])}")
    del model
    back, _ = load_model(str(f))
    tf = perplexity(back.float(), test, batch_size=8, progress=False)
    del back
    log(f"transformers reads the GGUF: PPL {tf.ppl:.4f}")
    files = {f'tenpak {a.recipe} -> tenpak export --format gguf': f}
    also = a.also_gguf if a.also_gguf is not None else (str(EXTERNAL[a.model].path()) if a.model in EXTERNAL else '')
    if also: files['as shipped: ' + Path(also).name] = Path(also)
    prompt_ids = tok(PROMPT).input_ids
    rows = []
    for name, path in files.items():
        job = dict(gguf=str(path), seqlen=seqlen, threads=a.threads, windows=[w.tolist() for w in test], prompt_ids=prompt_ids, tokens=a.tokens)
        with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as jf: json.dump(job, jf)
        p = subprocess.run([a.llama_python, '-c', WORKER, jf.name], capture_output=True, text=True,
                           env={**os.environ, 'OMP_NUM_THREADS': str(a.threads)})
        os.unlink(jf.name)
        if p.returncode: log(f"{name}: llama.cpp failed\n{p.stderr[-3000:]}"); rows.append(dict(file=name, error=p.stderr[-3000:])); continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r.update(file=name, file_mib=path.stat().st_size / 2**20, delta_pct=(r['ppl'] / base.ppl - 1) * 100)
        rows.append(r)
        log(f"{name}: llama.cpp PPL {r['ppl']:.4f} ({r['delta_pct']:+.2f}%) on {r['tokens']} tokens, decode {r['decode_tok_s']:.1f} tok/s")
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    out = dict(script='bench/gguf_llamacpp.py', command=' '.join(['python'] + sys.argv), commit=head, env=dict(environment(), threads=a.threads),
               date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'), machine=platform.processor() or platform.machine(),
               model=a.model, recipe=a.recipe, windows=len(test), seqlen=seqlen, tokens=base.tokens, ppl_float=base.ppl,
               tenpak_fake_quant=dict(ppl=res.record['ppl'], delta_pct=res.record['ppl_delta_pct'], bpw=res.record['linear_bpw']),
               transformers_gguf=dict(ppl=tf.ppl, delta_pct=(tf.ppl / base.ppl - 1) * 100), llama_cpp=rows, decode_tokens=a.tokens,
               notes=["PPL: exp(mean NLL) of every next token of each window (the windows of bench/gguf_quality.py); llama.cpp's logits "
                      "from llm.eval over the whole window (logits_all), log-softmax in float64",
                      "decode tok/s: --tokens greedy llm.eval calls of one token after the prompt (prefill excluded), one thread"])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    log(f"wrote {a.out}")


if __name__ == '__main__':
    main()
