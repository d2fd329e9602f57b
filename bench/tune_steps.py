#!/usr/bin/env python
"""What a tuning step costs in float32 and in bfloat16 (`BlockTune.step_dtype`), and how far apart their gradients are.

    python bench/tune_steps.py --threads 1 --bits 3        # SmolLM2, every Linear at INT{bits} g64 (round to nearest)

Prints: one 512 x 576 x 1536 matrix product in each dtype; then, on the model with every Linear rounded, one end-to-end
step (forward, coarse KL to the float model's top-32, backward to every log-scale) in each dtype, twice each (the
second is the steady state), and the cosine / relative error of the bfloat16 gradient against the float32 one.
Nothing is written; the numbers are for the notes (a benchmark, not a test).
"""
import argparse, time
import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('--model', default='smollm2-135m')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--bits', type=int, default=3)
    ap.add_argument('--group', type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from torch.func import functional_call
    from tenpak.zoo import load_model
    from tenpak.data import load_corpus, tokenize, calib_windows
    from tenpak.apply import compress_model
    from tenpak.plan import Plan, LayerPlan, find_linears
    from tenpak.tune import teacher_topk, coarse_kl, _Tunable

    x, w = torch.randn(512, 576), torch.randn(1536, 576)
    for dt in (torch.float32, torch.bfloat16):
        xa, wa = x.to(dt), w.to(dt)
        for _ in range(3): xa @ wa.T
        t = time.perf_counter()
        for _ in range(50): xa @ wa.T
        s = (time.perf_counter() - t) / 50
        print(f"matmul 512x576x1536 {str(dt).removeprefix('torch.'):9s} {s * 1e3:6.2f} ms  {2 * 512 * 576 * 1536 / s / 1e9:6.1f} GFLOP/s")

    m, tok = load_model(a.model)
    cal = calib_windows(tokenize(tok, load_corpus('embedded').train), 2, 512, seed=1)
    tk = teacher_topk(m, cal, 32)
    res = compress_model(m, Plan({n: LayerPlan(bits=a.bits, group_size=a.group) for n in find_linears(m)}), keep_parts=True, progress=False)
    tv = _Tunable(res.parts, torch.device('cpu'))
    for p in m.parameters(): p.requires_grad_(False)
    grads = {}
    for dt in (torch.float32, torch.bfloat16) * 2:
        t = time.perf_counter()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dt == torch.bfloat16):
            over = {f'{r}.weight': tv.weight(r) for r in res.parts}
            loss = coarse_kl(functional_call(m, over, (cal[:1],)).logits, tk[0][:1], tk[1][:1]).mean()
        loss.backward()
        print(f"end-to-end step {str(dt).removeprefix('torch.'):9s} loss {loss.item():.5f}  {time.perf_counter() - t:6.2f} s")
        grads[dt] = torch.cat([th.grad.flatten() for th in tv.theta.values()]).clone()
        for th in tv.theta.values(): th.grad = None
    g32, g16 = grads[torch.float32], grads[torch.bfloat16]
    print(f"bfloat16 vs float32 gradient: cosine {torch.nn.functional.cosine_similarity(g32, g16, 0).item():.4f}, "
          f"relative error {((g32 - g16).norm() / g32.norm()).item():.4f} (INT{a.bits} g{a.group}, {a.threads} thread(s))")


if __name__ == '__main__':
    main()
