#!/usr/bin/env python
"""Check and time the fitted-table GEMV (`tenpak.table_kernel.table_linear`) on a GPU: batch 1 and 4, Mistral-7B shapes,
INT2/3/4 codes with one table per row, against cuBLAS fp16 on the dense weight and against dequantize + matmul.

GPU run (about 1 minute):   python bench/table_kernel_times.py --out $OUT/table_kernel.json
CPU check of this script (tiny shapes, Triton interpreter, timings meaningless):   python bench/table_kernel_times.py --smoke

Every configuration is first checked against the float32 reference (the dequantized weight, then a matmul) on the same
device; a mismatch is recorded and the configuration is not timed. Timing: median of CUDA-event-timed calls after
warm-up, weights cycled over several copies so they do not sit in L2. Needs only torch and triton.
"""
import argparse, json, os, statistics, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=None)
    p.add_argument('--smoke', action='store_true')
    p.add_argument('--budget', type=float, default=90.)
    return p.parse_args(argv)


def layer(N, K, bits, device, seed=0):
    "Stored tensors of a random (N, K) Linear with per-row fitted tables, and its dense float32 weight."
    import torch
    from tenpak.core import LayerPlan
    from tenpak.quant import quantize
    from tenpak.formats import pack_layer, dequantize_layer, Compressed
    w = torch.randn(N, K, generator=torch.Generator().manual_seed(seed)) * 0.02
    lp = LayerPlan(bits=bits, group_size=1 << 16, codebook='table')
    t = pack_layer(Compressed(lp, quantize(w, bits, 1 << 16, codebook='table'), None, None, None))
    return {k: v.to(device) for k, v in t.items()}, dequantize_layer(lp, N, K, t).to(device)


def main(argv=None):
    a = parse_args(argv)
    if a.smoke: os.environ['TRITON_INTERPRET'] = '1'
    import torch
    from tenpak.table_kernel import table_linear, table_weight
    dev = 'cpu' if a.smoke else 'cuda'
    shapes = [(64, 128)] if a.smoke else [(4096, 4096), (14336, 4096), (4096, 14336)]
    batches = [1] if a.smoke else [1, 4]
    dt = torch.float32 if a.smoke else torch.float16
    out = dict(device=torch.cuda.get_device_name() if dev == 'cuda' else 'cpu (interpreter)', torch=torch.__version__, rows=[])
    try:
        import triton; out['triton'] = triton.__version__
    except ImportError: out['triton'] = None
    t_end = time.perf_counter() + a.budget

    def timed(fn, n=20):
        if dev != 'cuda':
            t0 = time.perf_counter(); fn(); return (time.perf_counter() - t0) * 1e6
        for _ in range(3): fn()
        ts = []
        for _ in range(n):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record(); fn(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e) * 1e3)
        return statistics.median(ts)

    for N, K in shapes:
        for bits in (2, 3, 4):
            if time.perf_counter() > t_end: break
            t, W = layer(N, K, bits, dev)
            codes = {k: t[k] for k in ('qweight', 'qbits') if k in t}
            for M in batches:
                x = torch.randn(M, K, device=dev, dtype=dt)
                y = table_linear(x, codes, t['table'], bits, K, backend='triton').float()
                ref = x.float() @ W.T
                err = ((y - ref).norm() / ref.norm()).item()
                row = dict(N=N, K=K, bits=bits, M=M, rel_error=err, ok=err < 1e-2)
                if row['ok']:
                    Wh = W.to(dt)
                    row['table_gemv_us'] = timed(lambda: table_linear(x, codes, t['table'], bits, K, backend='triton'))
                    row['dequant_matmul_us'] = timed(lambda: table_linear(x, codes, t['table'], bits, K, backend='torch'))
                    row['fp16_matmul_us'] = timed(lambda: x @ Wh.T)
                out['rows'].append(row)
                print(json.dumps(row), flush=True)
    path = Path(a.out or ('/tmp/table_kernel_smoke.json' if a.smoke else ROOT / 'results' / 'table_kernel.json'))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print('| N x K | bits | M | rel. error | table GEMV µs | dequant+matmul µs | fp16 matmul µs |\n|---|---:|---:|---:|---:|---:|---:|')
    for r in out['rows']:
        f = lambda k: f"{r[k]:.1f}" if k in r else '-'
        print(f"| {r['N']}x{r['K']} | {r['bits']} | {r['M']} | {r['rel_error']:.1e} | {f('table_gemv_us')} | {f('dequant_matmul_us')} | {f('fp16_matmul_us')} |")


if __name__ == '__main__':
    main()
