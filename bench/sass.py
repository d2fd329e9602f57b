#!/usr/bin/env python
"""Static look at TenPak's Triton kernels as an H100 would run them, on a machine without a GPU.

    python bench/sass.py [--out results/kernel_sass.md] [--arch 90] [--batches 1,16,64] [--no-json] [--smoke]

For each Mistral-7B Linear shape, batch 1 / 16 / 64 and dense / 2:4 / 3:4 INT4 (g=128), the kernel that
`int4_linear` would launch with its default tiling is compiled ahead of time for sm_90 (`tenpak.kernel.compile_kernel`,
Triton's bundled ptxas) and its machine code read (`sass_stats`): registers, spill bytes, resident warps per SM,
barriers per main-loop step (shared-memory round trips), and the main loop's instructions per weight code each thread
handles. `--jobs FILE` profiles given configurations instead (used by `bench/kernel_times.py` for its tuned kernels).

Two lower bounds on the time of one call then follow, both models, not measurements:
- issue bound: warp instructions of the main loops / (SMs x 4 schedulers x clock), i.e. every scheduler issuing
  one instruction per cycle with no stall;
- DRAM bound: bytes the call must move (`bench/kernel_times.py`'s `layer_bytes`) / peak HBM bandwidth.
The larger one says which resource limits the kernel; a GPU run (`bench/kernel_times.py`) gives the real time.
"""
import argparse, json, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / 'bench')]
SHAPES = [(4096, 4096), (1024, 4096), (14336, 4096), (4096, 14336)]
H100 = dict(name='H100 SXM', sms=132, clock_hz=1.755e9, dram_bytes_s=3.35e12)   # spec-sheet figures


def occupancy_warps(regs: int, num_warps: int, shared: int, regs_per_sm=65536, max_warps=64, smem_per_sm=228 * 1024) -> int:
    "Resident warps per SM that registers, shared memory and the warp limit allow (Hopper: 64K registers, 64 warps)."
    per_warp = -(-regs * 32 // 256) * 256                                      # registers are allocated per warp, in 256s
    blocks = min(regs_per_sm // (per_warp * num_warps), max_warps // num_warps, smem_per_sm // max(shared, 1), 32)
    return blocks * num_warps


def static_profile(M, N, K, keep, g, cfg, dram_us, arch=90, sms=H100['sms'], clock_hz=H100['clock_hz']) -> dict:
    "Compile the kernel for `cfg` (no GPU needed) and model it: registers, spills, occupancy, issue bound vs DRAM bound."
    import torch
    from tenpak.kernel import compile_kernel, sass_stats
    st = sass_stats(compile_kernel(M, N, K, keep, g, torch.float16, config=cfg, arch=arch))
    if cfg.path == 'gemv': codes_iter = cfg.block_k * (3 if keep == 3 else 1) * 8 * cfg.block_n
    else: codes_iter = cfg.block_k * keep // 4 * cfg.block_n                       # gemm: block_k dense k
    per_code = st['loop_instructions'] * cfg.num_warps * 32 / codes_iter
    tiles_m = 1 if cfg.path == 'gemv' else -(-M // cfg.block_m)                   # gemm decodes per M-tile
    issue_us = N * K * keep / 4 * tiles_m * per_code / 32 / (sms * 4 * clock_hz) * 1e6
    return dict(regs=st['regs'], spill_bytes=st['spill_bytes'], shared=st['shared'],
                warps_per_sm=occupancy_warps(st['regs'], cfg.num_warps, st['shared']),
                loop_instructions=st['loop_instructions'], loop_barriers=st['loop_ops'].get('BAR', 0),
                instr_per_code=round(per_code, 2),
                issue_bound_us=round(issue_us, 2), dram_bound_us=round(dram_us, 2), loop_ops=st['loop_ops'])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=str(ROOT / 'results' / 'kernel_sass.md'), help='markdown report (a .json beside it)')
    p.add_argument('--arch', type=int, default=90)
    p.add_argument('--batches', default='1,16,64')
    p.add_argument('--group-size', type=int, default=128)
    p.add_argument('--no-json', action='store_true', help='write the markdown report only')
    p.add_argument('--smoke', action='store_true', help='one shape at batch 1 (checks the script)')
    p.add_argument('--jobs', default=None, help='JSON list of static_profile keyword sets: print their profiles as JSON')
    args = p.parse_args(argv)
    warnings.filterwarnings('ignore')
    if args.jobs:                                       # used by bench/kernel_times.py, whose own Triton may be interpreted
        from tenpak.kernel import KernelConfig
        jobs = json.loads(Path(args.jobs).read_text())
        out = []
        for j in jobs:
            try: out.append(static_profile(**dict(j, cfg=KernelConfig(**j['cfg']))))
            except Exception as e: out.append(f"n/a ({type(e).__name__}: {str(e)[:200]})")
        print(json.dumps(out))
        return
    import torch, triton
    from tenpak.kernel import default_config
    from kernel_times import layer_bytes

    g, rows, t0 = args.group_size, [], time.perf_counter()
    for N, K in SHAPES[:1] if args.smoke else SHAPES:
        for M in [1] if args.smoke else map(int, args.batches.split(',')):
            for method, keep in (('dense', 4), ('2:4', 2), ('3:4', 3)):
                cfg = default_config(M, N, K, keep, H100['sms'])
                r = static_profile(M, N, K, keep, g, cfg, layer_bytes(method, N, K, M, g) / H100['dram_bytes_s'] * 1e6,
                                   arch=args.arch)
                rows.append(dict(shape=f"{N}x{K}", M=M, method=method, path=cfg.path, config=vars(cfg), **r))
                print(f"{N}x{K} M={M} {method}: {r['instr_per_code']:.2f} instr/code, issue {r['issue_bound_us']:.1f} us, "
                      f"DRAM {r['dram_bound_us']:.1f} us", flush=True)
    env = dict(torch=torch.__version__, triton=triton.__version__, arch=f"sm_{args.arch}", model=H100,
               compile_seconds=round(time.perf_counter() - t0, 1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not args.no_json: out.with_suffix('.json').write_text(json.dumps(dict(env=env, rows=rows), indent=1))
    lines = [f"# Kernel machine code, sm_{args.arch} (static: compiled without a GPU)", "",
             f"`python bench/sass.py` on a CPU machine; torch {env['torch']}, Triton {env['triton']}. "
             f"Issue and DRAM bounds are models on {H100['name']} spec figures ({H100['sms']} SMs, "
             f"{H100['clock_hz'] / 1e9:.3f} GHz, {H100['dram_bytes_s'] / 1e12:.2f} TB/s): they bound the time from "
             "below and say which resource limits the kernel; only a GPU run measures it.", "",
             "| shape (N x K) | batch | pattern | path | regs | spills | warps / SM | barriers / step | loop instr / code | issue bound us | DRAM bound us | bound by |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lim = 'issue' if r['issue_bound_us'] > r['dram_bound_us'] else 'DRAM'
        lines.append(f"| {r['shape']} | {r['M']} | {r['method']} | {r['path']} | {r['regs']} | {r['spill_bytes']} | "
                     f"{r['warps_per_sm']} | {r['loop_barriers']} | {r['instr_per_code']} | {r['issue_bound_us']} | "
                     f"{r['dram_bound_us']} | {lim} |")
    out.write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
