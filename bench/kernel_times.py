#!/usr/bin/env python
"""Time TenPak's packed INT4 kernels (dense g128, 2:4, 3:4) against cuBLAS fp16 and torch's int4 tinygemm.

GPU run (about 4-6 minutes on an H100):   python bench/kernel_times.py --out $OUT/kernel_bench.json
CPU check of this script (tiny shapes, Triton interpreter, timings meaningless):   python bench/kernel_times.py --smoke

Shapes are Mistral-7B's Linears (N x K = out x in): q/o 4096x4096, k/v 1024x4096, gate/up 14336x4096,
down 4096x14336, at batch 1, 16 and 64. Before timing, every TenPak kernel is checked against the float32
reference (`tenpak.kernel.ref_linear`) on the same GPU. Each TenPak kernel is tuned on its shape
(`tenpak.kernel.tune_config`) and timed with both the tuned and the heuristic default tiling.

Timing: CUDA graphs holding many calls (all batch sizes; --no-graph for eager launches), median over
replays measured with CUDA events. To keep weights out of the 50 MB L2, every call in a graph uses the next
of several weight copies (together more than 3x the L2). Bandwidth = bytes of weights + scales + zeros +
metadata + activations + outputs, each moved once, over the time, as a fraction of a device-to-device copy
(2 GiB clone, read + write) measured in the same run.

The full numbers go to the JSON file (--out); a markdown table is printed last.
"""
import argparse, json, math, os, statistics, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(4096, 14336), (14336, 4096), (4096, 4096), (1024, 4096)]   # the target shapes first: a budget cut drops the small ones
BATCHES = [1, 16, 64]
METHODS = ['fp16', 'tinygemm', 'dense', '2:4', '3:4']
NM = {'dense': None, '2:4': '2:4', '3:4': '3:4'}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=None, help='JSON output (default results/kernel_bench.json; /tmp/... with --smoke)')
    p.add_argument('--smoke', action='store_true', help='tiny shapes on CPU through TRITON_INTERPRET (checks the script)')
    p.add_argument('--shapes', default=None, help="override shapes, e.g. '4096x4096,1024x4096' (N x K)")
    p.add_argument('--batches', default=None, help="override batch sizes, e.g. '1,16'")
    p.add_argument('--group-size', type=int, default=128)
    p.add_argument('--no-tune', action='store_true', help='time the default tiling only')
    p.add_argument('--no-graph', action='store_true', help='time eager launches instead of CUDA graphs')
    p.add_argument('--reps', type=int, default=15, help='timed graph replays per measurement')
    p.add_argument('--budget', type=float, default=420., help='seconds; tuning stops at 60%%, measuring at 100%%')
    return p.parse_args(argv)


class Timer:
    "Median microseconds per call of a list of closures (one per weight copy), CUDA graphs or wall clock."

    def __init__(self, torch, dev, graph=True, reps=15, min_calls=64):
        self.torch, self.dev, self.graph, self.reps, self.min_calls = torch, dev, graph, reps, min_calls

    def __call__(self, fns):
        torch = self.torch
        if self.dev.type != 'cuda':                                        # smoke: one pass, wall clock
            for f in fns: f()
            t = time.perf_counter()
            for f in fns: f()
            return dict(median_us=(time.perf_counter() - t) / len(fns) * 1e6, min_us=None, calls=len(fns), graph=False)
        inner = max(1, math.ceil(self.min_calls / len(fns)))
        for f in fns: f()                                                   # compile, allocate, warm up
        torch.cuda.synchronize()
        def run():
            for _ in range(inner):
                for f in fns: f()
        graph_error = None
        if self.graph:
            try:
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for f in fns: f()
                torch.cuda.current_stream().wait_stream(s)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    run()
                run = g.replay
            except Exception as e:                                          # time eager launches instead
                graph_error = f"{type(e).__name__}: {str(e)[:200]}"
                torch.cuda.synchronize()
        run(); torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ts = []
        for _ in range(self.reps):
            e0.record(); run(); e1.record(); e1.synchronize()
            ts.append(e0.elapsed_time(e1) * 1e3 / (inner * len(fns)))
        r = dict(median_us=statistics.median(ts), min_us=min(ts), calls=inner * len(fns), graph=self.graph and not graph_error)
        if graph_error: r['graph_error'] = graph_error
        return r


def copy_bandwidth(torch, dev, nbytes):
    "Device-to-device copy bandwidth in bytes/s, counting the read and the write."
    a = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    b = torch.empty_like(a)
    b.copy_(a)
    if dev.type != 'cuda':
        t = time.perf_counter(); b.copy_(a)
        return 2 * nbytes / (time.perf_counter() - t)
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(10):
        e0.record(); b.copy_(a); e1.record(); e1.synchronize()
        ts.append(e0.elapsed_time(e1) * 1e-3)
    del a, b
    return 2 * nbytes / statistics.median(ts)


def tinygemm_pack(torch, codes, scales, zeros, g, even_high=True):
    "torch's tinygemm format (torch >= 2.5): uint8 [N, K/2] (even k in the high nibble) -> int4pack; (q - 8) s + zero."
    lo, hi = (codes[:, 1::2], codes[:, ::2]) if even_high else (codes[:, ::2], codes[:, 1::2])
    w = (hi.to(torch.uint8) << 4) | lo.to(torch.uint8)
    wp = torch.ops.aten._convert_weight_to_int4pack(w.contiguous(), 8)
    s, z = scales.float(), zeros.float()
    sz = torch.stack([s, (8 - z) * s], dim=-1).to(torch.bfloat16).contiguous()     # [K/g, N, 2]
    return wp, sz


def layer_bytes(method, N, K, M, g):
    "Bytes a call must move at least: weights, group parameters, metadata, x and y (2-byte activations)."
    act = 2 * M * K + 2 * M * N
    groups = (K // g) * N * 2 * 2                                                  # scale + zero, 16 bits each
    return act + {'fp16': 2 * N * K, 'tinygemm': N * K // 2 + groups, 'dense': N * K // 2 + groups,
                  '2:4': N * K // 4 + N * K // 8 + groups, '3:4': 3 * N * K // 8 + N * K // 16 + groups}[method]


def main(argv=None):
    args = parse_args(argv)
    if args.smoke: os.environ['TRITON_INTERPRET'] = '1'                      # before Triton is imported
    sys.path.insert(0, str(ROOT))
    import torch
    import torch.nn.functional as F
    from tenpak import kernel as TK
    from tenpak.log import environment

    t_start = time.perf_counter()
    elapsed = lambda: time.perf_counter() - t_start
    log = lambda *a: print(f"[{elapsed():6.1f}s]", *a, flush=True)
    dev = torch.device('cpu' if args.smoke else 'cuda')
    if dev.type == 'cuda' and not torch.cuda.is_available(): sys.exit('no CUDA device: use --smoke for a CPU check')
    out = Path(args.out or ('/tmp/kernel_bench_smoke.json' if args.smoke else ROOT / 'results' / 'kernel_bench.json'))
    out.parent.mkdir(parents=True, exist_ok=True)
    shapes = [tuple(int(v) for v in s.split('x')) for s in args.shapes.split(',')] if args.shapes else \
             ([(72, 128), (40, 256)] if args.smoke else SHAPES)
    batches = [int(b) for b in args.batches.split(',')] if args.batches else ([1, 20] if args.smoke else BATCHES)
    g = 32 if args.smoke and args.group_size == 128 else args.group_size
    dt = torch.float16
    timer = Timer(torch, dev, graph=not args.no_graph and dev.type == 'cuda', reps=args.reps)
    tune_kw = dict(warmup_ms=5, rep_ms=20)

    info = environment(dev)
    log('device:', info.get('gpu', info.get('device')), '| driver', info.get('driver'), '| torch', info.get('torch'), '| triton', info.get('triton'))
    copy_bw = copy_bandwidth(torch, dev, 2 * 2**30 if dev.type == 'cuda' else 2**26)
    log(f"device copy bandwidth {copy_bw / 1e12:.3f} TB/s (read + write)")
    l2 = info.get('l2_bytes') or 50 * 2**20
    res = dict(env=info, copy_bandwidth_Bps=copy_bw, group_size=g, dtype=str(dt), graph=timer.graph,
               notes=["times in microseconds per call; tinygemm runs bf16 activations (its CUDA kernel takes bf16 only)",
                      "bandwidth counts weights, scales/zeros, metadata, x and y once; copy bandwidth counts read + write"],
               checks={}, rows=[], skipped=[])

    def save():
        res['elapsed_s'] = elapsed()
        out.write_text(json.dumps(res, indent=1, default=str))

    for N, K in shapes:
        if elapsed() > args.budget:
            res['skipped'].append(f"{N}x{K}: time budget"); log(f"skip {N}x{K}: over budget"); continue
        log(f"shape N x K = {N} x {K}")
        gen = torch.Generator(device='cpu').manual_seed(N + K)
        xs = {M: torch.randn(M, K, generator=gen).to(dev, dt) for M in batches}
        layers = {name: TK.random_layer(N, K, g, nm, dtype=dt, device=dev, seed=N + K) for name, nm in NM.items()}

        def copies_for(nbytes):                                                   # enough copies to defeat L2
            return 1 if dev.type != 'cuda' else max(2, math.ceil(3 * l2 / nbytes))

        # --- correctness on this device (before any timing) ---
        checks = {}
        for name, L in layers.items():
            for M, x in xs.items():
                ref = TK.ref_linear(x, **TK.layer_args(L)).float()
                try:
                    y = TK.int4_linear(x, **TK.layer_args(L), backend='triton').float()
                    err = float((y - ref).abs().max())
                    checks[(name, M)] = dict(max_abs_err=err, rel_err=err / max(float(ref.abs().max()), 1e-30))
                except Exception as e:                                              # report and go on
                    checks[(name, M)] = dict(error=f"{type(e).__name__}: {str(e)[:300]}")
                c = checks[(name, M)]
                log(f"  check {name:5s} M={M:<3d} " + (f"max |err| {c['max_abs_err']:.3g} (rel {c['rel_err']:.2e})"
                                                     if 'error' not in c else c['error']))
        tg = None
        if dev.type == 'cuda':
            try:
                L = layers['dense']
                x = xs[batches[0]].to(torch.bfloat16)
                ref = (x.float() @ TK.dequantize_packed(**TK.layer_args(L)).T)
                for even_high in (True, False):                                   # nibble order: check, don't assume
                    tg = tinygemm_pack(torch, L['codes'], L['scales'], L['zeros'], g, even_high)
                    y = torch.ops.aten._weight_int4pack_mm(x, tg[0], g, tg[1]).float()
                    err = float((y - ref).abs().max())
                    checks[('tinygemm', batches[0])] = dict(max_abs_err=err, rel_err=err / float(ref.abs().max()),
                                                            even_k_high_nibble=even_high)
                    if err < 0.05 * float(ref.abs().max()): break
                log(f"  check tinygemm M={batches[0]}: max |err| {err:.3g} (rel {checks[('tinygemm', batches[0])]['rel_err']:.2e})")
            except Exception as e:
                tg = f"n/a ({type(e).__name__}: {str(e)[:200]})"
                log('  tinygemm', tg)
        else:
            tg = 'n/a (needs CUDA)'
        res['checks'][f"{N}x{K}"] = {f"{k[0]} M={k[1]}": v for k, v in checks.items()}

        # --- timing ---
        W16 = None
        for M in batches:
            if elapsed() > args.budget:
                res['skipped'].append(f"{N}x{K} M={M}: time budget"); continue
            x = xs[M]
            row = dict(N=N, K=K, M=M, methods={})
            # cuBLAS fp16
            if W16 is None:
                W16 = TK.dequantize_packed(**TK.layer_args(layers['dense']), dtype=dt)
            ws = [W16] + [W16.clone() for _ in range(copies_for(W16.numel() * 2) - 1)]
            r = timer([lambda w=w: F.linear(x, w) for w in ws])
            row['methods']['fp16'] = dict(r, copies=len(ws))
            del ws
            # torch tinygemm (bf16)
            if isinstance(tg, tuple):
                xb = x.to(torch.bfloat16)
                cps = [tg] + [(tg[0].clone(), tg[1].clone()) for _ in range(copies_for(N * K // 2) - 1)]
                try:
                    r = timer([lambda c=c: torch.ops.aten._weight_int4pack_mm(xb, c[0], g, c[1]) for c in cps])
                    row['methods']['tinygemm'] = dict(r, copies=len(cps))
                except Exception as e:
                    row['methods']['tinygemm'] = dict(error=f"{type(e).__name__}: {str(e)[:200]}")
                del cps
            else:
                row['methods']['tinygemm'] = dict(error=tg)
            # TenPak kernels
            for name, L in layers.items():
                m = row['methods'][name] = dict(check=checks.get((name, M)))
                if 'error' in (m['check'] or {}):
                    continue
                keep = TK.nm_keep(L['nm'])
                default = TK.default_config(M, N, K, keep, TK.num_sms(dev))
                try:
                    if not args.no_tune and elapsed() < 0.6 * args.budget:
                        cands = TK.candidate_configs(M, N, K, keep, TK.num_sms(dev))
                        if args.smoke: cands = cands[:2]
                        best, times = TK.tune_config(x, **TK.layer_args(L), candidates=cands, **tune_kw)
                        m['tuning'] = [dict(config=vars(c), us=t * 1e6) for c, t in times]
                        m['rejected'] = [vars(c) for c, t in times if t == float('inf')]   # failed or wrong
                        if m['rejected']: log(f"  {name} M={M}: rejected configs {m['rejected']}")
                    else:
                        best = default
                    args_ = TK.layer_args(L)
                    nb = layer_bytes(name, N, K, M, g)
                    cps = [args_] + [{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in args_.items()}
                                     for _ in range(copies_for(nb) - 1)]
                    for tag, cfg in (('tuned', best), ('default', default)):
                        if tag == 'default' and cfg == best: m['default'] = dict(same_as='tuned'); continue
                        r = timer([lambda c=c, cfg=cfg: TK.int4_linear(x, **c, backend='triton', config=cfg) for c in cps])
                        m[tag] = dict(r, config=vars(cfg), copies=len(cps))
                    m.update(m['tuned'])
                    del cps
                except Exception as e:
                    m['error'] = f"{type(e).__name__}: {str(e)[:300]}"
                    log(f"  {name} M={M} failed: {m['error']}")
            # bandwidth and speedups
            base = row['methods']['fp16'].get('median_us')
            for name, m in row['methods'].items():
                if m.get('median_us'):
                    nb = layer_bytes(name, N, K, M, g)
                    m['bytes'] = nb
                    m['bandwidth_Bps'] = nb / (m['median_us'] * 1e-6)
                    m['frac_of_copy_bw'] = m['bandwidth_Bps'] / copy_bw
                    m['speedup_vs_fp16'] = base / m['median_us'] if base else None
            res['rows'].append(row)
            log(f"  M={M:<3d} " + '  '.join(f"{k} {v['median_us']:.1f}us" if v.get('median_us') else f"{k} n/a"
                                          for k, v in row['methods'].items()))
            save()
        del layers, W16, xs
        if dev.type == 'cuda': torch.cuda.empty_cache()

    # --- static profile of the batch-1 kernels that were timed: registers, occupancy, issue vs DRAM bound ---
    # (bench/sass.py in a fresh process: this one's Triton may be the interpreter)
    try:
        import subprocess, tempfile
        props = torch.cuda.get_device_properties(dev) if dev.type == 'cuda' else None
        clock = getattr(props, 'clock_rate', 0) * 1e3 or 1.755e9                   # kHz when torch reports it
        todo = [(row, name, m) for row in res['rows'] if row['M'] == min(batches)
                for name, m in row['methods'].items() if name in NM and m.get('median_us')]
        jobs = [dict(M=row['M'], N=row['N'], K=row['K'], keep=TK.nm_keep(NM[name]), g=g, cfg=m['config'],
                     dram_us=m['bytes'] / copy_bw * 1e6, sms=TK.num_sms(dev), clock_hz=clock) for row, name, m in todo]
        with tempfile.NamedTemporaryFile('w', suffix='.json') as f:
            json.dump(jobs, f); f.flush()
            env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
            r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'sass.py'), '--jobs', f.name], capture_output=True,
                               text=True, env=env,
                               timeout=max(20., args.budget + 30. - elapsed()))   # inside gpu_session.sh's limit
        if r.returncode: raise RuntimeError(r.stderr[-300:])
        for (row, name, m), p in zip(todo, json.loads(r.stdout.strip().splitlines()[-1])):
            if isinstance(p, dict): p.pop('loop_ops', None)
            m['profile'] = p
        res['profile_clock_hz'] = clock
        log(f"static profile of {len(todo)} kernels")
    except Exception as e:
        res['profile_error'] = f"{type(e).__name__}: {str(e)[:300]}"
        log(f"static profile failed: {res['profile_error']}")
    res['elapsed_s'] = elapsed()
    bad = {f"{shape} {k}": c for shape, cs in res['checks'].items() for k, c in cs.items()
           if not k.startswith('tinygemm') and ('error' in c or c['rel_err'] > 2e-2)}
    res['failed_checks'] = bad
    save()
    log(f"wrote {out}")
    print(table(res))
    if bad:                                                    # numbers are still written; the run is not a pass
        print(f"\nFAILED correctness checks: {json.dumps(bad, default=str)[:2000]}", flush=True)
        sys.exit(1)


def table(res) -> str:
    "Markdown summary: microseconds (speedup vs fp16) and, for TenPak, the fraction of copy bandwidth."
    def cell(m, bw=False):
        if not m or not m.get('median_us'): return 'n/a' if str((m or {}).get('error', 'n/a')).startswith('n/a') else 'error'
        s = f"{m['median_us']:.1f}"
        if m.get('speedup_vs_fp16'): s += f" ({m['speedup_vs_fp16']:.2f}x)"
        if bw: s += f" {100 * m['frac_of_copy_bw']:.0f}%"
        return s
    env = res['env']
    lines = [f"\n{env.get('gpu', env.get('device'))} | driver {env.get('driver')} | torch {env.get('torch')} | triton {env.get('triton')} | "
             f"copy {res['copy_bandwidth_Bps'] / 1e12:.2f} TB/s | g{res['group_size']} | "
             f"{'CUDA graphs' if res['graph'] else 'eager'} | us per call (speedup vs fp16) [% of copy BW]\n",
             "| N x K | M | fp16 cuBLAS | tinygemm int4 | TenPak dense | TenPak 2:4 | TenPak 3:4 |",
             "|---|---|---|---|---|---|---|"]
    for r in res['rows']:
        m = r['methods']
        lines.append(f"| {r['N']}x{r['K']} | {r['M']} | {cell(m.get('fp16'))} | {cell(m.get('tinygemm'))} | "
                     f"{cell(m.get('dense'), True)} | {cell(m.get('2:4'), True)} | {cell(m.get('3:4'), True)} |")
    if res.get('skipped'): lines.append(f"\nskipped: {', '.join(res['skipped'])}")
    prof = [(r, k, m) for r in res['rows'] for k, m in r['methods'].items() if isinstance(m.get('profile'), dict)]
    if prof:
        lines += ["\nTenPak kernels at batch 1 against their lower bounds (bench/sass.py's model at the device's SM count and "
                  "clock; DRAM bound at the measured copy bandwidth):\n",
                  "| N x K | kernel | us | DRAM bound us | issue bound us | instr / code | regs | warps / SM | time / max(bounds) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r, k, m in prof:
            p = m['profile']
            lines.append(f"| {r['N']}x{r['K']} | {k} | {m['median_us']:.1f} | {p['dram_bound_us']:.1f} | {p['issue_bound_us']:.1f} | "
                         f"{p['instr_per_code']} | {p['regs']} | {p['warps_per_sm']} | "
                         f"{m['median_us'] / max(p['dram_bound_us'], p['issue_bound_us']):.2f} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
