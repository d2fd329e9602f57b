#!/usr/bin/env python
"""Do GPTVQ-style vector codes pay at 2-2.5 bits per weight on SmolLM2-135M? A layer-level measurement (issue 22, item 2).

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/vector_codes.py            # Hessians (cached in /tmp) + all quantizers
    python bench/vector_codes.py --check                                    # the self-checks only (seconds)

Protocol
  * model: `tenpak.zoo.load_model('smollm2-135m')`, float32, CPU;
  * calibration: as `tenpak.recipe.run` draws it: `calib_windows(tokenize(tok, load_corpus('embedded').train), 32, 512,
    seed=1, bos=bos_id(model, tok))`; the float model's own activations (no layer is quantized while collecting);
  * H = E[x x^T] of the input of q_proj, o_proj, up_proj, down_proj in blocks 0, 10, 20, 29 (forward pre-hooks, float64
    sums over all 32 x 512 tokens; the forward stops after block 29);
  * metric: relative output error tr(E H E^T) / tr(W H W^T), E = W - W_hat (`tenpak.gptq.output_error`);
  * bits per weight: every stored bit. TenPak's schemes from `tenpak.accounting.linear_bits` (= `formats.stored_tensors`),
    with the group fitted as recipes fit it (`tenpak.quant.fit_group`: g128 is g96 on 576-wide inputs). Vector codes:
    N*K*b bits of codes (one d*b-bit index per d weights) + per codebook 2^(d*b) entries x d x 16 bits (+ the column
    permutation, K*ceil(log2 K) bits, when act-order is used);
  * TenPak quantizers: `tenpak.gptq.gptq` with act-order (as the built-in recipes run them), damp 0.01;
  * vector quantizer (`vq_gptq` below, GPTVQ, van Baalen et al. 2024): d-dimensional codes of b bits per weight; a codebook
    of 2^(d*b) fp16 d-vectors per block of R rows x C columns; when the pass reaches a column group its codebooks are fitted
    on the current (already compensated) weights by H_jj-weighted k-means (init: the product of d fitted 1-D tables,
    `tenpak.quant.fit_table`, then Lloyd until no assignment changes, at most 25 steps); then the d columns of each code
    are assigned together to the codeword nearest under the metric ||(w - c) U_SS^-1|| (U: upper Cholesky factor of the
    damped H^-1, S: the d columns; the exact OBS loss of fixing them) or plain Euclidean, and the error err = (w - c) U_SS^-1
    is propagated to the remaining columns as GPTQ's block update does (W_rest -= err U_S,rest, lazy batches of C columns).
"""
from __future__ import annotations
import argparse, json, math, os, platform, subprocess, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tenpak.core import LayerPlan                                     # noqa: E402
from tenpak.gptq import gptq, GPTQOptions, hinv_cholesky, output_error  # noqa: E402
from tenpak.quant import fit_table, fit_group                         # noqa: E402
from tenpak.accounting import linear_bits                             # noqa: E402

BLOCKS = (0, 10, 20, 29)
LINEARS = ('self_attn.q_proj', 'self_attn.o_proj', 'mlp.up_proj', 'mlp.down_proj')
ROW = 1 << 16
CACHE = Path('/tmp/vq_hessians_smollm2.pt')


# ----------------------------------------------------------------------------------------------------------- Hessians
class _Stop(Exception): pass

@torch.no_grad()
def collect(cache: Path = CACHE, batch: int = 4) -> dict:
    "Full Linear name -> (W float32 (N, K), H float64 (K, K)) for `BLOCKS` x `LINEARS`, cached in `cache`."
    if cache.exists(): return torch.load(cache)
    from tenpak.zoo import load_model, default_seqlen
    from tenpak.data import load_corpus, tokenize, calib_windows
    from tenpak.arch import bos_id
    t0 = time.perf_counter()
    model, tok = load_model('smollm2-135m')
    model.eval()
    seqlen = default_seqlen('smollm2-135m')
    corpus = load_corpus('embedded')
    ids = calib_windows(tokenize(tok, corpus.train), 32, seqlen, seed=1, bos=bos_id(model, tok))
    layers = model.model.layers
    sums, hooks = {}, []
    def add(name):
        def hook(mod, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
            s = sums.setdefault(name, [torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64), 0])
            s[0].addmm_(x.T, x); s[1] += x.shape[0]
        return hook
    for b in BLOCKS:
        for ln in LINEARS: hooks.append(layers[b].get_submodule(ln).register_forward_pre_hook(add(f'model.layers.{b}.{ln}')))
    def stop(mod, args, out): raise _Stop
    hooks.append(layers[max(BLOCKS)].register_forward_hook(stop))
    for i in range(0, ids.shape[0], batch):
        try: model(ids[i:i + batch])
        except _Stop: pass
    for h in hooks: h.remove()
    out = {n: (layers[int(n.split('.')[2])].get_submodule(n.split('.', 3)[3]).weight.detach().float().clone(), s / c)
           for n, (s, c) in sums.items()}
    out = {n: out[n] for n in sorted(out, key=lambda n: (int(n.split('.')[2]), LINEARS.index(n.split('.', 3)[3])))}
    torch.save({'layers': out, 'tokens': int(ids.numel()), 'seconds': time.perf_counter() - t0,
                'windows': list(ids.shape)}, cache)
    return torch.load(cache)


# ------------------------------------------------------------------------------------------------------ vector codes
def kmeans(X: torch.Tensor,         # (B, P, d) points of B independent problems
           Wt: torch.Tensor,        # (B, P, d) weight of each coordinate's squared error
           b: int,                  # bits per dimension: 2^(d*b) centroids
           iters: int = 25,
          ) -> tuple[torch.Tensor, torch.Tensor]:
    "Weighted Lloyd: centroids (B, 2^(db), d) rounded to fp16 and the final weighted distortion per problem (B,)."
    B, P, d = X.shape
    n = 2 ** (d * b)
    # init: the product of per-dimension fitted 1-D tables (TenPak's fit_table, weighted the same way)
    tabs = [fit_table(X[..., k].float(), b, P, Wt[..., k].float())[:, 0].double() for k in range(d)]   # d x (B, 2^b)
    grids = torch.meshgrid(*[torch.arange(2 ** b)] * d, indexing='ij')
    C = torch.stack([tabs[k][:, grids[k].flatten()] for k in range(d)], -1)                          # (B, n, d)
    WX, WX2 = Wt * X, (Wt * X * X).sum(-1)
    A = torch.cat([WX, Wt], -1)                                                                          # (B, P, 2d)
    def assign(C):             # sum_k w_k (x_k - c_k)^2 = sum w x^2 - 2 (w x) . c + w . c^2, one batched matmul
        D = A @ torch.cat([-2 * C, C * C], -1).transpose(1, 2)                                          # (B, P, n)
        m, i = D.min(-1)
        return m + WX2, i
    _, idx = assign(C)
    for _ in range(iters):
        num = torch.zeros(B, n, d, dtype=X.dtype).scatter_add_(1, idx[..., None].expand(-1, -1, d), WX)
        den = torch.zeros(B, n, d, dtype=X.dtype).scatter_add_(1, idx[..., None].expand(-1, -1, d), Wt)
        C = torch.where(den > 0, num / den.clamp_min(1e-300), C)                                        # an empty one stays
        _, new = assign(C)
        if torch.equal(new, idx): break
        idx = new
    C = C.half().double()
    dist, _ = assign(C)
    return C, dist.clamp_min(0).sum(1)


def vq_gptq(W: torch.Tensor, H: torch.Tensor,
            d: int = 2,               # code dimension (columns quantized together)
            b: int = 2,               # bits per weight: 2^(d*b) codewords
            R: int = 16,              # rows per codebook
            C: int = 64,              # columns per codebook (>= K: the whole row width, fitted once on the original W)
            metric: str = 'hinv',     # 'hinv': ||(w - c) U_SS^-1||, the OBS loss; 'euclid': ||w - c||
            comp: bool = True,        # GPTQ error compensation (False: nearest codeword to the original W)
            act_order: bool = False,  # process columns by decreasing H_jj (the permutation is then stored)
            damp: float = 0.01, iters: int = 25,
           ) -> dict:
    "GPTVQ: returns W_hat (float64), the stored bits, and the summed k-means distortion of the fitted codebooks."
    N, K = W.shape
    C = min(C, K)
    assert K % C == 0 and C % d == 0 and N % R == 0, (N, K, d, R, C)
    W, H = W.double().clone(), H.double()
    dead = torch.diagonal(H) == 0
    W[:, dead] = 0
    perm = torch.argsort(torch.diagonal(H), descending=True) if act_order else torch.arange(K)
    W, H = W[:, perm], H[perm][:, perm]
    U = hinv_cholesky(H, damp) if comp else torch.eye(K, dtype=H.dtype)
    hd = torch.diagonal(H).clone(); hd[dead[perm]] = 1
    nb, n = N // R, 2 ** (d * b)
    Q = torch.zeros_like(W)
    distortion = 0.
    for c0 in range(0, K, C):                          # a column group = a lazy batch
        c1 = c0 + C
        X = W[:, c0:c1].reshape(nb, R, C // d, d).reshape(nb, R * C // d, d)
        Wt = hd[c0:c1].reshape(1, 1, C // d, d).expand(nb, R, C // d, d).reshape(nb, R * C // d, d)
        books, dist = kmeans(X, Wt, b, iters)          # (nb, n, d)
        distortion += float(dist.sum())
        W1, U1 = W[:, c0:c1].clone(), U[c0:c1, c0:c1]
        Err1 = torch.zeros_like(W1)
        for i in range(0, C, d):
            w = W1[:, i:i + d]
            A = torch.linalg.inv(U1[i:i + d, i:i + d]) if metric == 'hinv' else torch.eye(d, dtype=W.dtype)
            D = torch.cdist((w @ A).reshape(nb, R, d), books @ A)        # (nb, R, n)
            q = books.gather(1, D.argmin(-1)[..., None].expand(-1, -1, d)).reshape(N, d)
            Q[:, c0 + i:c0 + i + d] = q
            if comp:
                err = (w - q) @ torch.linalg.inv(U1[i:i + d, i:i + d])
                W1[:, i + d:] -= err @ U1[i:i + d, i + d:]
                Err1[:, i:i + d] = err
        if comp: W[:, c1:] -= Err1 @ U[c0:c1, c1:]
    Q = Q[:, torch.argsort(perm)]
    bits = N * K * b + (N // R) * (K // C) * n * d * 16 + (K * math.ceil(math.log2(K)) if act_order else 0)
    return dict(w_hat=Q, bits=bits, distortion=distortion)


# -------------------------------------------------------------------------------------------------------- self-checks
def self_check():
    torch.manual_seed(0)
    N, K = 64, 128
    W = torch.randn(N, K, dtype=torch.float64) * 0.05
    # 1. identity Hessian, no compensation, Euclidean metric: the squared error is the k-means distortion
    for d, R, C in ((2, 16, 64), (2, 8, 128), (4, 64, 128)):
        r = vq_gptq(W, torch.eye(K, dtype=torch.float64), d=d, b=2, R=R, C=C, metric='euclid', comp=False)
        e = float(((W - r['w_hat']) ** 2).sum())
        assert math.isclose(e, r['distortion'], rel_tol=1e-9), (d, e, r['distortion'])
        print(f"check 1 (d={d}, R={R}, C={C}): ||W - W_hat||^2 = {e:.6e} = k-means distortion {r['distortion']:.6e}")
    # 2. d=1, one codebook per row, no extra Lloyd: exactly TenPak's GPTQ against a per-row fitted table (no act-order)
    X = torch.randn(4 * K, K, dtype=torch.float64) @ (torch.eye(K, dtype=torch.float64) + 0.3 * torch.randn(K, K, dtype=torch.float64))
    H = X.T @ X / X.shape[0]
    for metric in ('hinv', 'euclid'):
        r = vq_gptq(W, H, d=1, b=2, R=1, C=K, metric=metric, iters=0)
        c = gptq(W, H, LayerPlan(method='gptq', bits=2, group_size=ROW, codebook='table'), GPTQOptions(act_order=False))
        diff = float((r['w_hat'] - c.w_hat.double()).abs().max())
        assert diff < 1e-6, diff
        print(f"check 2 ({metric}): d=1 vector GPTQ = tenpak.gptq per-row table, max |diff| = {diff:.2e}; "
              f"rel. output error {output_error(W, r['w_hat'], H) / output_error(W, 0 * W, H):.4f}")
    # 3. compensation lowers the output error (both metrics)
    r0 = vq_gptq(W, H, d=2, R=16, C=64, comp=False)
    r1, r2 = vq_gptq(W, H, d=2, R=16, C=64, metric='euclid'), vq_gptq(W, H, d=2, R=16, C=64, metric='hinv')
    e0, e1, e2 = (output_error(W, r['w_hat'], H) for r in (r0, r1, r2))
    assert e2 < e0 and e1 < e0, (e0, e1, e2)
    print(f"check 3: d=2 output error: no compensation {e0:.4e}, GPTQ + Euclidean {e1:.4e}, GPTQ + OBS metric {e2:.4e}")


# ------------------------------------------------------------------------------------------------------- experiment
def tenpak_point(W, H, lp):
    t = time.perf_counter()
    c = gptq(W, H, lp, GPTQOptions(**lp.opts))
    dt = time.perf_counter() - t
    lb = linear_bits(tuple(W.shape), lp)
    return c.w_hat.double(), lb.total, dt

def configs(N, K):
    "name -> ('tenpak', LayerPlan) | ('vq', kwargs); vector configs sized to land exactly on a TenPak scheme's bpw."
    g128, g256 = fit_group(128, K), fit_group(256, K)
    A = {'act_order': True}
    out = {
        'U2-row':  ('tenpak', LayerPlan(method='gptq', bits=2, group_size=ROW, opts=A)),
        'U2-g128': ('tenpak', LayerPlan(method='gptq', bits=2, group_size=g128, opts=A)),
        'U2-g64':  ('tenpak', LayerPlan(method='gptq', bits=2, group_size=64, opts=A)),
        'T2-row':  ('tenpak', LayerPlan(method='gptq', bits=2, group_size=ROW, codebook='table', opts=A)),
        'T2-g256': ('tenpak', LayerPlan(method='gptq', bits=2, group_size=g256, codebook='table', opts=A)),
        'T2-g128': ('tenpak', LayerPlan(method='gptq', bits=2, group_size=g128, codebook='table', opts=A)),
        # 16 2-D fp16 codewords = 512 bits: per 8 rows = a 4-value table per row; per 16 rows = scale + zero per row
        'VQ2-row-R16':  ('vq', dict(d=2, R=16, C=K)),
        'VQ2-row-R8':   ('vq', dict(d=2, R=8, C=K)),
        'VQ2-row-R8-act': ('vq', dict(d=2, R=8, C=K, act_order=True)),
        'VQ2-g128-R16': ('vq', dict(d=2, R=16, C=g128)),
        'VQ2-g64-R16':  ('vq', dict(d=2, R=16, C=64)),
        'VQ2-g64-R16-act': ('vq', dict(d=2, R=16, C=64, act_order=True)),
        'VQ2-g64-R16-euclid': ('vq', dict(d=2, R=16, C=64, metric='euclid')),
        'VQ2-g64-R16-nocomp': ('vq', dict(d=2, R=16, C=64, comp=False)),
        'VQ2-g128-R8':  ('vq', dict(d=2, R=8, C=g128)),
    }
    # 256 4-D fp16 codewords = 16384 bits per codebook, whole row width: the fewest rows at or under 2.25 / 2.5 bpw
    for tgt in (2.25, 2.5):
        R = min(r for r in range(1, N + 1) if N % r == 0 and 2 + 16384 / (r * K) <= tgt + 1e-12)
        out[f'VQ4-row-{tgt}'] = ('vq', dict(d=4, R=R, C=K))
    return out

# the comparisons at equal bits (each a set of points with identical bpw on every Linear)
LEVELS = [('2 + 64/K (one 4-value table per row)', ['T2-row', 'VQ2-row-R8', 'VQ2-row-R8-act']),
          ('2 + 32/K (scale + zero per row)', ['U2-row', 'VQ2-row-R16']),
          ('2 + 32/g128 (2.25; 2.333 on 576-wide, g96)', ['U2-g128', 'T2-g256', 'VQ2-g128-R16']),
          ('2.5 (2 + 32/64)', ['U2-g64', 'VQ2-g64-R16', 'VQ2-g64-R16-act', 'VQ2-g64-R16-euclid', 'VQ2-g64-R16-nocomp']),
          ('2 + 64/g128 (2.5; 2.667 on 576-wide, g96)', ['T2-g128', 'VQ2-g128-R8']),
          ('4-D codes, at or under 2.25 / 2.5', ['VQ4-row-2.25', 'VQ4-row-2.5'])]


def table(res: dict) -> str:
    "Markdown: per comparison level, relative output error per Linear and config (bpw in the header), mean; then times."
    rows = res['rows']
    at = {(r['linear'], r['config']): r for r in rows}
    lins = list(dict.fromkeys(r['linear'] for r in rows))
    short = lambda n: n.replace('model.layers.', 'L').replace('self_attn.', '').replace('mlp.', '')
    out = []
    for title, names in LEVELS:
        names = [c for c in names if any((l, c) in at for l in lins)]
        if not names: continue
        out += [f'#### {title}', '', '| Linear (N x K) | ' + ' | '.join(names) + ' |', '|---' * (len(names) + 1) + '|']
        for l in lins:
            cells = [f"{at[l, c]['rel_err']:.4f} ({at[l, c]['bpw']:.3f})" if (l, c) in at else '' for c in names]
            shp = next(r['shape'] for r in rows if r['linear'] == l)
            out.append(f"| {short(l)} ({shp[0]}x{shp[1]}) | " + ' | '.join(cells) + ' |')
        mean = lambda c, k: sum(at[l, c][k] for l in lins) / len(lins)
        ok = [c for c in names if all((l, c) in at for l in lins)]
        out.append('| **mean** | ' + ' | '.join(f"**{mean(c, 'rel_err'):.4f}** ({mean(c, 'bpw'):.3f})" if c in ok else '' for c in names) + ' |')
        base = names[0]
        if base in ok:
            out.append(f'| mean of per-Linear ratio to {base} | ' + ' | '.join(
                f"{sum(at[l, c]['rel_err'] / at[l, base]['rel_err'] for l in lins) / len(lins):.3f}" if c in ok else '' for c in names) + ' |')
        out.append('')
    cfgs = list(dict.fromkeys(r['config'] for r in rows))
    out += ['#### Wall time per Linear (s, 1 thread, busy machine): mean / total over the Linears', '', '| config | mean | total |', '|---|---|---|']
    for c in cfgs:
        ts = [r['seconds'] for r in rows if r['config'] == c]
        out.append(f'| {c} | {sum(ts) / len(ts):.2f} | {sum(ts):.1f} |')
    return '\n'.join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--check', action='store_true', help='self-checks only')
    ap.add_argument('--out', default=str(ROOT / 'results' / 'vector_codes.json'))
    ap.add_argument('--only', default='', help='comma-separated config names (default all)')
    ap.add_argument('--table', action='store_true', help='print the markdown tables of --out and stop')
    a = ap.parse_args()
    if a.table: print(table(json.loads(Path(a.out).read_text()))); return
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    self_check()
    if a.check: return
    data = collect()
    print(f"Hessians: {len(data['layers'])} Linears, {data['tokens']} tokens, collected in {data['seconds']:.0f} s")
    rows = []
    for name, (W, H) in data['layers'].items():
        N, K = W.shape
        ref = output_error(W, torch.zeros_like(W), H)
        for cname, (kind, spec) in configs(N, K).items():
            if a.only and cname not in a.only.split(','): continue
            if kind == 'tenpak':
                w_hat, bits, dt = tenpak_point(W, H, spec)
            else:
                t = time.perf_counter(); r = vq_gptq(W, H, **spec); dt = time.perf_counter() - t
                w_hat, bits = r['w_hat'], r['bits']
            rel = output_error(W, w_hat, H) / ref
            rows.append(dict(linear=name, shape=[N, K], config=cname, bpw=bits / (N * K), rel_err=rel, seconds=dt,
                             spec=(spec.to_dict() if hasattr(spec, 'to_dict') else repr(spec)) if kind == 'tenpak' else spec))
            print(f"{name:32s} {cname:20s} bpw {bits / (N * K):.4f}  rel.err {rel:.5f}  {dt:6.2f} s", flush=True)
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    commit = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip()
    meta = dict(command=' '.join(['OMP_NUM_THREADS=1', 'python'] + sys.argv), commit=commit, machine=f"{cpu}, {os.cpu_count()} vCPU",
                threads=torch.get_num_threads(), torch=torch.__version__, tokens=data['tokens'], windows=data['windows'],
                hessian_seconds=data['seconds'])
    Path(a.out).write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    print(f"wrote {a.out}")


if __name__ == '__main__':
    main()
