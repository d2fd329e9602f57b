#!/usr/bin/env python
"""The v22 recipe (Fisher -> AWQ -> outliers -> selective 3:4 -> Fisher-guided groups -> INT4 -> packed checkpoint -> PPL)
on a Mistral-7B-shaped model (transformers' default `MistralConfig`, 7.24B parameters, random bf16 weights) on one GPU,
in default mode (model on the GPU) and streaming mode (model on the CPU, one decoder block at a time on the GPU).

    python scripts/scale_7b.py --out DIR [--mode default|streaming|both] [--calib 16] [--fisher 16]
                               [--eval-windows 16] [--seqlen 2048] [--awq-grid 10] [--smoke]

Prints per-stage wall time and peak GPU memory, packed size vs accounting, PPL-eval throughput (compressed and the
uncompressed reference), a markdown table last and one line per target; writes everything to DIR/scale_7b.json
(rewritten after every stage, so a run cut short still leaves its numbers). `--smoke` runs a tiny config on the CPU.

No real weights or text exist on the GPU machine: weights are random (std 0.02, norms 1) and token windows are random
token ids (seeded; calibration, Fisher and evaluation windows are disjoint draws). Perplexities are therefore only a
consistency check (finite; the same in both modes), not a quality measure.

Time budget for `--mode both` (<= 8 min on an H100). Known H100 numbers (shared/DESIGN.md): forward of 2048 tokens 71 ms;
forward + backward with checkpointing and a bf16 accumulator 0.25 s per 2048-token window at 40.2 GiB. Per mode:
  build ~5 s (random init on the GPU; streaming copies 14.5 GB to the CPU) | reference PPL, 16 x 2048 tokens ~1.5 s
  (+ one warm-up window; streaming adds ~2 weight passes over PCIe, ~3 s) | Fisher, 16 windows x 0.25 s ~4 s + 29 GB of
  float32 statistics to the CPU | plan ~3 s (CPU means over 7.2B Fisher values) | AWQ + compression: 32 blocks x
  (grid x ~0.15 s + ~0.5 s): ~65 s at grid 10 | pack: ~4.4 GB safetensors + SHA-256, ~30 s | compressed PPL as reference.
So ~2 min per mode. The recipe's own settings (32 calibration windows, AWQ grid 20) would roughly double the
compression stage; `--calib 32 --awq-grid 20 --mode default` measures the recipe exactly. Stages that would start after
`--deadline` seconds are skipped (recorded as such) so the summary always prints.
"""
from __future__ import annotations
import argparse, gc, json, shutil, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
from tenpak.zoo import random_model
from tenpak.recipe import BUILTINS
from tenpak.eval import perplexity
from tenpak.fisher import fisher_diag
from tenpak.plan import build_plan
from tenpak.accounting import model_bits
from tenpak.log import environment
from tenpak.apply import compress_model
from tenpak.stream import Stages, fisher_diag_streaming, perplexity_streaming, GiB

TARGETS = dict(v22_minutes=10.0, gpu_gb_default=60.0, gpu_gb_streaming=24.0, ref_tok_s=25_000)
NOTE = 'random weights (std 0.02) and random token windows: no real weights or text exist here; PPL is a consistency check only'


def config(smoke: bool):
    "transformers' default MistralConfig (7.24B), or a tiny one for --smoke."
    from transformers import MistralConfig
    if not smoke: return MistralConfig()
    return MistralConfig(vocab_size=1024, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)


def safetensors_sizes(path: Path) -> tuple[int, int]:
    "(file bytes, JSON header bytes incl. its 8-byte length) of a safetensors file."
    with open(path, 'rb') as f: n = int.from_bytes(f.read(8), 'little')
    return path.stat().st_size, n + 8


def run_mode(mode: str, args, cfg, data: dict, device, rec: dict, save, deadline: float) -> None:
    "One pass of the pipeline in `mode`; fills `rec['modes'][mode]`."
    stream = mode == 'streaming'
    home = 'cpu' if stream else device
    st = Stages(device)
    r = rec['modes'][mode] = dict(mode=mode, model_home=str(home), skipped={}, errors={})
    ctx = {}
    prog = not args.quiet

    def stage(name, fn, needs=()):
        missing = [k for k in needs if ctx.get(k) is None]
        if missing: r['skipped'][name] = f"needs {', '.join(missing)}"; print(f"[{mode}] {name}: skipped ({r['skipped'][name]})", flush=True); return
        if time.perf_counter() > deadline: r['skipped'][name] = 'deadline'; print(f"[{mode}] {name}: skipped (deadline)", flush=True); return
        try:
            with st(name): fn()
            g = st.gpu_peak.get(name)
            print(f"[{mode}] {name}: {st.seconds[name]:.1f} s" + (f", peak GPU {g:.2f} GiB" if g is not None else ''), flush=True)
        except Exception as e:
            r['errors'][name] = f"{type(e).__name__}: {e}"
            print(f"[{mode}] {name}: FAILED {type(e).__name__}: {e}", flush=True); traceback.print_exc()
            gc.collect()
            if torch.cuda.is_available(): torch.cuda.empty_cache()
        finally:
            r['stages'] = st.record(); save()

    def ppl(model, key):
        kw = dict(batch_size=args.eval_batch, device=device, progress=prog)
        f = (lambda ids, **k: perplexity_streaming(model, ids, offload='cpu', **kw, **k)) if stream else (lambda ids, **k: perplexity(model, ids, **kw, **k))
        w = f(data['eval'][:1])                                                # warm-up (kernels, allocator, first transfer)
        p = f(data['eval'])
        r[key] = dict(ppl=p.ppl, nll=p.nll, windows=p.windows, seqlen=p.seqlen, seconds=round(p.seconds, 3),
                      warmup_seconds=round(w.seconds, 3),
                      tok_s=round(p.windows * p.seqlen / p.seconds, 1))

    def build():
        ctx['model'] = random_model(cfg, home=home, init_device=device, dtype=data['dtype'], seed=args.seed)
        r['params'] = sum(p.numel() for p in ctx['model'].parameters())
        r['attn_implementation'] = getattr(ctx['model'].config, '_attn_implementation', None)

    def fisher():
        if stream: f = fisher_diag_streaming(ctx['model'], data['fisher'], device=device, offload='cpu', progress=prog)
        else: f = fisher_diag(ctx['model'], data['fisher'], batch_size=1, device=device, accum_dtype=torch.bfloat16,
                              checkpointing=True, progress=prog)
        ctx['fisher'] = f.diag
        r['fisher'] = dict(windows=f.n_windows, seqlen=f.seqlen, accum='float32 per block' if stream else 'bfloat16, checkpointing')

    def plan():
        ctx['plan'] = build_plan(ctx['model'], data['recipe'], ctx['fisher'], progress=prog)
        r['plan_summary'] = ctx['plan'].summary()
        r['plan'] = {n: lp.describe() for n, lp in ctx['plan']}

    def compress():
        p = ctx['plan']
        ctx['applied'] = compress_model(ctx['model'], p, calib=data['calib'], fisher=ctx['fisher'], awq=any(lp.awq for _, lp in p),
                                        awq_grid=args.awq_grid, batch_size=args.calib_batch, device=device, offload='cpu',
                                        keep_parts=True, progress=prog)
        ctx['fisher'] = None                                                   # 29 GB of CPU memory at 7B
        r['outliers'] = sum(ctx['applied'].outlier_counts.values())

    def pack():
        from tenpak.pack import save_packed
        model, p, a = ctx['model'], ctx['plan'], ctx['applied']
        mb = model_bits(model, p, a.outlier_counts)
        acct = (mb.linear_bits + mb.other_bits) / 8
        root = Path(tempfile.mkdtemp(prefix='tenpak-scale-', dir=args.pack_dir))
        try:
            d = save_packed(model, p, a.parts, root / 'packed', device=device)
            size, header = safetensors_sizes(d / 'model.safetensors')
            folder = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
            r['pack'] = dict(file_bytes=size, header_bytes=header, tensor_bytes=size - header, folder_bytes=folder,
                             accounting_bytes=int(acct), tensor_minus_accounting=int(size - header - acct),
                             file_over_accounting=size / acct, linear_bpw=mb.linear_bpw, model_bpw=mb.model_bpw,
                             ratio_fp16=mb.ratio(16), ratio_fp32=mb.ratio(32), path=str(d) if args.keep_packed else None)
        finally:
            if not args.keep_packed: shutil.rmtree(root, ignore_errors=True)
            a.parts.clear()

    stage('build', build)
    stage('ref_ppl', lambda: ppl(ctx['model'], 'ref_ppl'), needs=('model',))
    stage('fisher', fisher, needs=('model',))
    stage('plan', plan, needs=('model', 'fisher'))
    stage('compress', compress, needs=('model', 'plan'))
    stage('pack', pack, needs=('model', 'applied'))
    stage('ppl', lambda: ppl(ctx['model'], 'ppl'), needs=('model', 'applied'))
    secs = st.record()['seconds']
    warm = sum(r.get(k, {}).get('warmup_seconds', 0.0) for k in ('ref_ppl', 'ppl'))   # the benchmark's, not the pipeline's
    r['v22_seconds'] = round(sum(secs.get(k, 0.0) for k in ('ref_ppl', 'fisher', 'plan', 'compress', 'pack', 'ppl')) - warm, 3)
    r['complete'] = not r['errors'] and not r['skipped']
    save()
    ctx.clear(); gc.collect()
    if torch.cuda.is_available(): torch.cuda.empty_cache()


def summary(rec: dict) -> str:
    "The closing report: measured values, a markdown stage table, one line per target."
    modes, lines = rec['modes'], []
    f = lambda v, p=2: '-' if v is None else f"{v:.{p}f}"
    for m, r in modes.items():
        pk = r.get('pack')
        if pk: lines.append(f"{m}: packed {pk['file_bytes'] / 1e9:.3f} GB (tensors {pk['tensor_bytes'] / 1e9:.3f} GB) vs accounting "
                            f"{pk['accounting_bytes'] / 1e9:.3f} GB: x{pk['file_over_accounting']:.5f}, tensors - accounting = "
                            f"{pk['tensor_minus_accounting']} B; {pk['linear_bpw']:.3f} bpw over Linears, {pk['ratio_fp16']:.2f}x vs fp16")
        for k, what in (('ref_ppl', 'uncompressed (reference) PPL eval'), ('ppl', 'compressed (fake-quant) PPL eval')):
            if r.get(k): lines.append(f"{m}: {what}: {r[k]['tok_s']:,.0f} tokens/s at seqlen {r[k]['seqlen']} "
                                      f"({r[k]['windows']} windows, {r[k]['seconds']:.2f} s), PPL {r[k]['ppl']:.4g}")
        for k, v in {**r.get('errors', {}), **{s: 'skipped: ' + w for s, w in r.get('skipped', {}).items()}}.items():
            lines.append(f"{m}: {k}: {v}")
        sg = r.get('stages', {})
        lines.append(f"{m}: peak GPU allocated {f(sg.get('gpu_peak_gib_max'))} GiB, reserved {f(sg.get('gpu_reserved_peak_gib_max'))} GiB; "
                     f"peak process RSS {f(sg.get('rss_peak_gib_max'))} GiB")
    if 'default' in modes and 'streaming' in modes:
        d, s = modes['default'], modes['streaming']
        cmp = {}
        for k in ('ref_ppl', 'ppl'):
            if d.get(k) and s.get(k): cmp[k + '_rel_diff'] = s[k]['ppl'] / d[k]['ppl'] - 1
        if d.get('plan') and s.get('plan'): cmp['plan_layers_differing'] = sum(d['plan'][n] != s['plan'].get(n) for n in d['plan'])
        rec['streaming_vs_default'] = cmp
        lines.append('streaming vs default: ' + ', '.join(f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}" for k, v in cmp.items()))
    names = []
    for r in modes.values():
        for k in r.get('stages', {}).get('seconds', {}):
            if k != 'total' and k not in names: names.append(k)
    hdr = '| stage | ' + ' | '.join(f"{m} s | {m} peak GPU GiB" for m in modes) + ' |'
    rows = [hdr, '|---|' + '---:|---:|' * len(modes)]
    for k in names + ['total']:
        cells = []
        for r in modes.values():
            sg = r.get('stages', {})
            cells += [f(sg.get('seconds', {}).get(k), 1), f(sg.get('gpu_peak_gib_max') if k == 'total' else sg.get('gpu_peak_gib', {}).get(k))]
        rows.append(f"| {k} | " + ' | '.join(cells) + ' |')
    lines += ['', *rows, '']
    t = {}
    for m, r in modes.items():
        t[f'{m}: v22 pipeline <= {TARGETS["v22_minutes"]:g} min'] = (r.get('v22_seconds', 0) / 60, r.get('complete', False) and r['v22_seconds'] <= 60 * TARGETS['v22_minutes'], 'min')
        lim = TARGETS['gpu_gb_streaming' if m == 'streaming' else 'gpu_gb_default']
        pk = r.get('stages', {}).get('gpu_peak_gib_max')
        t[f'{m}: peak GPU memory <= {lim:g} GB'] = (None if pk is None else pk * GiB / 1e9, pk is not None and r.get('complete', False) and pk * GiB / 1e9 <= lim, 'GB')
    if 'default' in modes:
        ref = modes['default'].get('ref_ppl')
        t[f'default: reference PPL eval >= {TARGETS["ref_tok_s"]:,} tokens/s'] = (ref and ref['tok_s'], bool(ref) and ref['tok_s'] >= TARGETS['ref_tok_s'], 'tok/s')
    rec['targets'] = {k: dict(value=v, met=bool(ok)) for k, (v, ok, _) in t.items()}
    for k, (v, ok, u) in t.items(): lines.append(f"target {k}: {'MET' if ok else 'NOT MET' if v is not None else 'n/a'} ({f(v)} {u})")
    return '\n'.join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True, help='folder for scale_7b.json')
    ap.add_argument('--mode', choices=('default', 'streaming', 'both'), default='both')
    ap.add_argument('--calib', type=int, default=None, help='calibration windows for AWQ / compression (default 16; smoke 4)')
    ap.add_argument('--fisher', type=int, default=None, help='Fisher windows (default 16; smoke 4)')
    ap.add_argument('--eval-windows', type=int, default=None, help='evaluation windows (default 16; smoke 4)')
    ap.add_argument('--seqlen', type=int, default=None, help='tokens per window (default 2048; smoke 64)')
    ap.add_argument('--awq-grid', type=int, default=None, help='AWQ alpha grid points (default 10, the recipe has 20; smoke 4)')
    ap.add_argument('--calib-batch', type=int, default=8)
    ap.add_argument('--eval-batch', type=int, default=8)
    ap.add_argument('--dtype', choices=('bf16', 'fp16'), default='bf16')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default=None, help='compute device (default: cuda if available; --smoke: cpu without a GPU)')
    ap.add_argument('--pack-dir', default=None, help='where the packed checkpoint is written (default: system temp dir)')
    ap.add_argument('--keep-packed', action='store_true')
    ap.add_argument('--deadline', type=float, default=None, help='skip stages starting after this many seconds (default 420; smoke 600)')
    ap.add_argument('--quiet', action='store_true', help='no tqdm progress bars')
    ap.add_argument('--smoke', action='store_true', help='tiny config (2 layers, hidden 256) to check the script')
    args = ap.parse_args(argv)
    sm = args.smoke
    for k, full, small in (('calib', 16, 4), ('fisher', 16, 4), ('eval_windows', 16, 4), ('seqlen', 2048, 64),
                           ('awq_grid', 10, 4), ('deadline', 420.0, 600.0)):
        if getattr(args, k) is None: setattr(args, k, small if sm else full)
    t0 = time.perf_counter()
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and device.index is None: device = torch.device('cuda', torch.cuda.current_device())
    if device.type != 'cuda' and not sm: sys.exit("scale_7b.py needs a GPU for the 7B model (use --smoke to check it on the CPU)")
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    cfg = config(sm)
    recipe, rsrc = BUILTINS['v22'], 'tenpak.recipe.BUILTINS'
    g = torch.Generator().manual_seed(args.seed + 1)
    n = args.calib + args.fisher + args.eval_windows
    toks = torch.randint(0, cfg.vocab_size, (n, args.seqlen), generator=g)    # disjoint rows: calib | fisher | eval
    data = dict(calib=toks[:args.calib], fisher=toks[args.calib: args.calib + args.fisher], eval=toks[args.calib + args.fisher:],
                recipe=recipe, dtype=torch.bfloat16 if args.dtype == 'bf16' else torch.float16)
    rec = dict(script='scripts/scale_7b.py', note=NOTE, smoke=sm, args=vars(args), env=environment(device),
               model=dict(config='MistralConfig()' if not sm else 'tiny MistralConfig (smoke)', hidden=cfg.hidden_size,
                          layers=cfg.num_hidden_layers, intermediate=cfg.intermediate_size, vocab=cfg.vocab_size, dtype=args.dtype),
               recipe=recipe.to_dict(), recipe_source=rsrc,
               windows=dict(calib=args.calib, fisher=args.fisher, eval=args.eval_windows, seqlen=args.seqlen,
                            recipe_calib_samples=recipe.calib_samples, recipe_fisher_samples=recipe.fisher_samples,
                            awq_grid=args.awq_grid, recipe_awq_grid=recipe.awq_grid),
               targets_spec=TARGETS, modes={})
    path = out / 'scale_7b.json'
    save = lambda: path.write_text(json.dumps(rec, indent=1, default=str))
    print(f"scale_7b: {rec['model']['config']} on {rec['env'].get('gpu', device)}; {NOTE}", flush=True)
    print(f"windows: calib {args.calib}, fisher {args.fisher}, eval {args.eval_windows} x {args.seqlen} tokens; "
          f"AWQ grid {args.awq_grid}; recipe v22 from {rsrc}", flush=True)
    for mode in (('default', 'streaming') if args.mode == 'both' else (args.mode,)):
        run_mode(mode, args, cfg, data, device, rec, save, t0 + args.deadline)
    rec['wall_seconds'] = round(time.perf_counter() - t0, 1)
    text = summary(rec)
    save()
    print(f"\n## scale_7b ({rec['env'].get('gpu', device)}, torch {rec['env']['torch']}, transformers {rec['env']['transformers']}, "
          f"{rec['wall_seconds']:.0f} s wall; {path})\n" + text, flush=True)


if __name__ == '__main__':
    main()
