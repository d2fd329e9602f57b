#!/usr/bin/env python
"""Batch-1 decode speed of a Mistral-7B-shaped model: fp16 dense vs packed INT4 g128 vs packed 2:4 INT4 g128.

GPU run (about 3-4 minutes on an H100):   python bench/decode.py --out $OUT/decode_bench.json
CPU check of this script (tiny config, eager loop only, timings meaningless):   python bench/decode.py --smoke

CPU mode (`--cpu`, results/cpu_decode.md): real models (ref-tiny, SmolLM2-135M), transformers' `generate`, batch 1,
greedy, 128 new tokens, float32 vs bf16 vs packed INT4 g128 (`tenpak run --recipe rtn-int4-g128 --pack`, made if
missing) with float32 and with bf16 activations (torch's CPU INT4 kernel, `tenpak.cpu_kernel`), the reference path
it replaced, and a mixed plan (`bench/cpu_mixed.toml`: INT4 Linears on the kernel beside INT3 ones dequantized); each variant in its own worker process (tokens/s, resident memory, weight bytes), threads and machine
recorded:   OMP_NUM_THREADS=1 python bench/decode.py --cpu --threads 1

Model: transformers' default `MistralConfig()` (7.24B parameters; `sliding_window` set to None, which changes
nothing below 4096 tokens and keeps the static cache a plain one), random fp16 weights (seeded normal(0, 0.02),
norms 1), built on the meta device and materialised on the GPU. Variants, one after another (peak memory is
one fp16 model plus one packed copy while packing):
  fp16    the model as built (cuBLAS `F.linear`)
  int4    every decoder Linear packed INT4 g128 (RTN, asymmetric): `compress_model` then `to_packed`
  2:4     every decoder Linear packed 2:4 + INT4 g128 (magnitude 2:4); if that fails, MLP-only 2:4 with dense
          INT4 attention (what was used is recorded)

Generation loop (our own, identical for every variant; transformers' `generate` is launch-bound): a static KV
cache (`StaticCache`, max length prompt + tokens), a prompt of --prompt random tokens prefilled in one eager
forward, then --tokens greedy steps of one token each. One step = explicit additive attention mask + model forward
+ argmax + in-place update of the static token / position buffers, so a step can be captured once in a CUDA graph
(after 3 warm-up steps on a side stream, which also compile the Triton kernels and allocate their split-K
counters) and replayed. Decode tokens/s = tokens / time of the decode steps (CUDA events, prefill excluded),
median over --repeats runs with graphs and over --eager-repeats runs without (same step, launched eagerly).

Correctness: each packed model is compared with its fake-quant twin (the same model after `compress_model`,
before `to_packed`, which runs the same weights through `F.linear`). The fake-quant model decodes greedily; the
packed model is then teacher-forced on those tokens, so both see the same context at every step. Reported: max
|logit difference| at prefill and at the first decode step, max over all steps, and the top-1 agreement rate over
the decode steps. The fp16 model's tokens are only informative (quantization changes them).

Kernel tiling: after packing, each distinct Linear shape is tuned once at batch 1 (`tenpak.pack.tune_model`, the default
tiling among the candidates; --no-tune keeps the default), as a user would before serving.

The full numbers go to the JSON file (--out), rewritten after every stage; a markdown table is printed last.
"""
import argparse, gc, inspect, json, statistics, sys, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ('fp16', 'int4', '2:4')
GiB = 2**30


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=None, help='JSON output (default results/decode_bench.json; /tmp/... with --smoke)')
    p.add_argument('--smoke', action='store_true', help='tiny config on the CPU, eager loop only (checks the script)')
    p.add_argument('--tokens', type=int, default=None, help='greedy decode steps (default 128; smoke 12)')
    p.add_argument('--prompt', type=int, default=None, help='prompt tokens, prefilled at once (default 16; smoke 8)')
    p.add_argument('--repeats', type=int, default=5, help='timed runs with CUDA graphs (median reported)')
    p.add_argument('--eager-repeats', type=int, default=2, help='timed runs without graphs (median reported)')
    p.add_argument('--variants', default=','.join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument('--group-size', type=int, default=128)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-tune', action='store_true', help='keep the default kernel tiling (no tune_config per Linear shape)')
    p.add_argument('--budget', type=float, default=300., help='seconds; stages that would start later are skipped')
    cpu_args(p)
    return p.parse_args(argv)


def model_config(smoke: bool):
    "transformers' default MistralConfig (7.24B), or a tiny one for --smoke; sliding window off (no effect here)."
    from transformers import MistralConfig
    cfg = MistralConfig() if not smoke else MistralConfig(
        vocab_size=1024, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096)
    cfg.sliding_window = None
    return cfg


def model_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


class Decoder:
    """Greedy batch-1 decoding with a static KV cache; one step can be captured in a CUDA graph.

    Static state: `ids` [1, 1] (the token fed next), `pos` [1] (its position), `logits` [1, V] (of the last
    step), `hist` [P + N + 1] (prompt, then every token chosen; hist[p] is the token at position p)."""

    def __init__(self, torch, model, prompt, n_tokens: int):
        from transformers import StaticCache
        self.torch, self.model = torch, model
        dev, dt = prompt.device, model.dtype
        P = prompt.numel()
        self.P, self.L = P, P + max(n_tokens, 4)                                   # warm-up steps need room too
        try:
            self.cache = StaticCache(config=model.config, max_cache_len=self.L)
        except TypeError:                                                         # older signature
            self.cache = StaticCache(config=model.config, max_batch_size=1, max_cache_len=self.L, device=dev, dtype=dt)
        sig = inspect.signature(model.forward).parameters                         # 'cache' (>= 5.2x) or 'past_key_values'
        self.cache_kw = 'cache' if 'cache' in sig else 'past_key_values'
        self.pass_cache_position = 'cache_position' in sig                        # older releases index the cache with it
        self.logits_to_keep = 'logits_to_keep' in sig
        self.prompt = prompt
        self.kv_pos = torch.arange(self.L, device=dev)
        self.zero = torch.zeros((), dtype=dt, device=dev)
        self.neg = torch.full((), torch.finfo(dt).min, dtype=dt, device=dev)
        self.ids = torch.zeros(1, 1, dtype=torch.long, device=dev)
        self.pos = torch.zeros(1, dtype=torch.long, device=dev)
        self.logits = torch.zeros(1, model.config.vocab_size, dtype=dt, device=dev)
        self.hist = torch.zeros(self.L + 1, dtype=torch.long, device=dev)
        self.graph = None

    def _forward(self, ids, positions, mask):
        "Last-position logits [1, V]; `mask` is additive [1, 1, q, L] (0 = attend), so no mask logic runs inside."
        kw = {self.cache_kw: self.cache, 'use_cache': True}
        if self.pass_cache_position: kw['cache_position'] = positions
        if self.logits_to_keep: kw['logits_to_keep'] = 1
        return self.model(input_ids=ids, position_ids=positions[None], attention_mask=mask, **kw).logits[:, -1]

    def prefill(self, first=None):
        "Reset the cache, run the prompt, set the first token (argmax, or `first`); returns the prompt's last logits."
        torch = self.torch
        if hasattr(self.cache, 'reset'): self.cache.reset()
        positions = torch.arange(self.P, device=self.prompt.device)
        mask = torch.where(self.kv_pos[None, :] <= positions[:, None], self.zero, self.neg).view(1, 1, self.P, self.L)
        logits = self._forward(self.prompt[None], positions, mask)
        self.logits.copy_(logits)
        t0 = logits.argmax(-1) if first is None else first.reshape(1)
        self.ids.copy_(t0.view(1, 1))
        self.pos.fill_(self.P)
        self.hist.zero_()
        self.hist[:self.P] = self.prompt
        self.hist[self.P] = t0[0]
        return logits.clone()

    def step(self):
        "One greedy step at position `pos`: only in-place updates of static tensors (graph-capturable)."
        mask = self.torch.where(self.kv_pos <= self.pos, self.zero, self.neg).view(1, 1, 1, self.L)
        logits = self._forward(self.ids, self.pos, mask)
        self.logits.copy_(logits)
        nxt = logits.argmax(-1)                                                   # [1]
        self.ids.copy_(nxt.view(1, 1))
        self.pos.add_(1)
        self.hist.index_copy_(0, self.pos, nxt)

    def capture(self, warmup: int = 3):
        "Warm the step up on a side stream (kernels compiled, split-K counters allocated), then capture it."
        torch = self.torch
        self.prefill()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(warmup): self.step()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.step()
        torch.cuda.synchronize()

    def run(self, n: int, graph: bool):
        for _ in range(n):
            self.graph.replay() if graph else self.step()

    def decoded(self, n: int) -> list:
        return self.hist[self.P:self.P + n + 1].tolist()


def sync(torch, dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def time_decode(torch, dev, dec, n, graph, repeats, over_budget) -> dict:
    "Decode tokens/s (prefill excluded): median over `repeats` runs; CUDA events on a GPU, wall clock elsewhere."
    ts = []
    for r in range(repeats):
        if r and over_budget(): break
        dec.prefill()
        sync(torch, dev)
        if dev.type == 'cuda':
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record(); dec.run(n, graph); e1.record(); e1.synchronize()
            ts.append(e0.elapsed_time(e1) * 1e-3)
        else:
            t = time.perf_counter(); dec.run(n, graph); ts.append(time.perf_counter() - t)
    med = statistics.median(ts)
    return dict(tok_s=n / med, ms_per_token=1e3 * med / n, runs_s=[round(t, 5) for t in ts], tokens=n)


def collect(torch, dec, n, graph, teacher=None):
    "Prefill logits, per-step logits [n, V] and the token history; teacher-forced on `teacher` (a history) if given."
    P = dec.P
    pre = dec.prefill(first=None if teacher is None else teacher[P])
    out = []
    for i in range(n):
        dec.run(1, graph)
        out.append(dec.logits.clone())
        if teacher is not None and i + 1 < n: dec.ids.copy_(teacher[P + i + 1].view(1, 1))
    return pre, torch.cat(out), dec.hist.clone()


def compare(ref, got) -> dict:
    "Packed (teacher-forced) vs fake-quant (free-running) logits and tokens."
    (rp, rl, _), (gp, gl, _) = ref, got
    n = rl.shape[0]
    d = (gl.float() - rl.float()).abs()
    scale = float(rl.float().abs().max())
    agree = (gl.argmax(-1) == rl.argmax(-1)).float()
    return dict(max_abs_dlogit_prefill=float((gp.float() - rp.float()).abs().max()),
                max_abs_dlogit_step1=float(d[0].max()), max_abs_dlogit_all=float(d.max()),
                mean_abs_dlogit_all=float(d.mean()), max_abs_logit_ref=scale,
                rel_dlogit_step1=float(d[0].max()) / max(scale, 1e-30),
                top1_agree_prefill=bool(gp.argmax(-1).item() == rp.argmax(-1).item()),
                top1_agree_rate=float(agree.mean()), steps=n)


def host_syncs(torch, fn) -> list:
    "Ops in `fn()` that would read a tensor on the host (a sync: forbidden in CUDA-graph capture); CPU-checkable."
    from torch.utils._python_dispatch import TorchDispatchMode
    bad = {'_local_scalar_dense', 'nonzero', 'masked_select', 'unique', 'repeat_interleave'}
    seen = []
    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__.split('.')[0]
            if name in bad and name not in seen: seen.append(name)
            return func(*args, **(kwargs or {}))
    with Watch(): fn()
    return seen


def full_forward_check(dec, n: int) -> float:
    "Share of the last run's greedy tokens equal to the argmax of one cache-free forward over the whole sequence."
    P, h = dec.P, dec.hist
    logits = dec.model(input_ids=h[None, :P + n], use_cache=False).logits[0, P - 1:P + n - 1]
    return float((logits.argmax(-1) == h[P:P + n]).float().mean())


def first_divergence(a: list, b: list):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y: return i
    return None


def main(argv=None):
    args = parse_args(argv)
    if args.cpu_worker: return cpu_worker(args)
    if args.cpu: return cpu_main(args)
    sys.path.insert(0, str(ROOT))
    import torch
    from tenpak.core import LayerPlan, Plan, find_linears, layer_kind
    from tenpak.apply import compress_model
    from tenpak.pack import to_packed, tune_model
    from tenpak.log import environment
    from tenpak.zoo import random_model

    t_start = time.perf_counter()
    elapsed = lambda: time.perf_counter() - t_start
    over_budget = lambda: elapsed() > args.budget
    log = lambda *a: print(f"[{elapsed():6.1f}s]", *a, flush=True)
    sm = args.smoke
    dev = torch.device('cpu' if sm else 'cuda')
    if dev.type == 'cuda' and not torch.cuda.is_available(): sys.exit('no CUDA device: use --smoke for a CPU check')
    graph_ok = dev.type == 'cuda'
    out = Path(args.out or ('/tmp/decode_bench_smoke.json' if sm else ROOT / 'results' / 'decode_bench.json'))
    out.parent.mkdir(parents=True, exist_ok=True)
    n_tok = args.tokens or (12 if sm else 128)
    n_prompt = args.prompt or (8 if sm else 16)
    variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad: sys.exit(f"unknown variant(s) {bad}; choose from {VARIANTS}")
    dt, g = torch.float16, args.group_size
    torch.set_grad_enabled(False)

    cfg = model_config(sm)
    info = environment(dev)
    log('device:', info.get('gpu', info.get('device')), '| driver', info.get('driver'), '| torch', info.get('torch'), '| triton', info.get('triton'),
        '| transformers', info.get('transformers'))
    res = dict(script='bench/decode.py', env=info, smoke=sm, args=vars(args),
               config=dict(name='tiny MistralConfig (smoke)' if sm else 'MistralConfig()', hidden=cfg.hidden_size,
                           layers=cfg.num_hidden_layers, intermediate=cfg.intermediate_size, vocab=cfg.vocab_size,
                           heads=cfg.num_attention_heads, kv_heads=cfg.num_key_value_heads, sliding_window=None,
                           dtype='float16', batch=1, prompt_tokens=n_prompt, decode_tokens=n_tok, group_size=g,
                           weights='random normal(0, %g), norms 1, seed %d' % (cfg.initializer_range, args.seed)),
               graph=graph_ok,
               notes=["decode tok/s = decode steps / their time (prefill excluded), batch 1, greedy, static KV cache",
                      "graph: each step replays one captured CUDA graph; eager: the same step launched from Python",
                      "logit checks: packed model teacher-forced on its fake-quant twin's greedy tokens"],
               variants={}, skipped=[], errors={})

    def save():
        res['elapsed_s'] = round(elapsed(), 2)
        out.write_text(json.dumps(res, indent=1, default=str))

    gen = torch.Generator().manual_seed(args.seed + 1)
    prompt = torch.randint(0, cfg.vocab_size, (n_prompt,), generator=gen).to(dev)

    def free():
        gc.collect()
        if dev.type == 'cuda': torch.cuda.empty_cache()

    def new_decoder(model, graph, r=None):
        "A Decoder, warmed up; with `graph`, its step captured (on failure: recorded in r['graph_error'], eager only)."
        dec = Decoder(torch, model, prompt, n_tok)
        t = time.perf_counter()
        if graph:
            try:
                dec.capture()
            except Exception as e:
                msg = f"{type(e).__name__}: {str(e)[:400]}"
                log(f"  CUDA-graph capture failed ({msg}); eager only"); traceback.print_exc()
                if r is not None: r['graph_error'] = msg
                dec.graph = None
                torch.cuda.synchronize()
                dec = Decoder(torch, model, prompt, n_tok)                         # fresh cache and buffers
        if dec.graph is None:
            dec.prefill(); dec.run(2, False)                                      # warm up the eager path
        sync(torch, dev)
        return dec, time.perf_counter() - t

    def measure(name, model, r, reference=None):
        "Time `model` (graph + eager) and, if `reference` (fake-quant logits) is given, check it against them."
        if dev.type == 'cuda':
            torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        r['model_gib'] = model_bytes(model) / GiB
        dec = None
        try:
            dec, r['warmup_capture_s'] = new_decoder(model, graph_ok, r)
            graph = dec.graph is not None
            if not graph_ok and name == 'fp16':                                   # the transformers side of a step
                try: r['host_syncs_in_step'] = host_syncs(torch, dec.step)
                except Exception as e: r['host_syncs_in_step'] = f"check failed: {type(e).__name__}: {e}"
                log(f"  {name}: host syncs in one decode step: {r['host_syncs_in_step'] or 'none'} (must be none to capture)")
            if reference is not None:
                got = collect(torch, dec, n_tok, graph, teacher=reference[2])
                r['check'] = compare(reference, got)
                c = r['check']
                log(f"  {name}: vs fake-quant: max |dlogit| prefill {c['max_abs_dlogit_prefill']:.3g}, step 1 "
                    f"{c['max_abs_dlogit_step1']:.3g} (max |logit| {c['max_abs_logit_ref']:.3g}), all steps "
                    f"{c['max_abs_dlogit_all']:.3g}; top-1 agreement {100 * c['top1_agree_rate']:.1f}% of {c['steps']} steps")
                save()
            if graph:
                r['graph'] = time_decode(torch, dev, dec, n_tok, True, args.repeats, over_budget)
                r['tokens'] = dec.decoded(n_tok)
                log(f"  {name}: graph {r['graph']['tok_s']:.1f} tok/s ({r['graph']['ms_per_token']:.2f} ms/token)")
            r['eager'] = time_decode(torch, dev, dec, n_tok, False, args.eager_repeats, over_budget)
            if not graph: r['tokens'] = dec.decoded(n_tok)
            try:                                                                  # cache / mask / position logic
                r['loop_vs_full_forward'] = full_forward_check(dec, n_tok)
                log(f"  {name}: greedy tokens of the loop = argmax of one cache-free forward over them: "
                    f"{100 * r['loop_vs_full_forward']:.1f}% of {n_tok}")
            except Exception as e:
                r['loop_vs_full_forward'] = f"error: {type(e).__name__}: {str(e)[:300]}"
                log(f"  {name}: full-forward check failed: {r['loop_vs_full_forward']}")
            log(f"  {name}: eager {r['eager']['tok_s']:.1f} tok/s ({r['eager']['ms_per_token']:.2f} ms/token)")
            if dev.type == 'cuda':
                r['peak_decode_gib'] = torch.cuda.max_memory_allocated() / GiB
                r['peak_reserved_gib'] = torch.cuda.max_memory_reserved() / GiB
        finally:
            if dec is not None: dec.graph = None
            del dec
            free()
        save()

    def reference_run(model):
        "The fake-quant model's free-running greedy decode: prefill logits, step logits, tokens."
        dec, _ = new_decoder(model, graph_ok)
        try:
            return collect(torch, dec, n_tok, dec.graph is not None)
        finally:
            dec.graph = None
            del dec
            free()

    def quant_plan(model, sparse_attn: bool, sparse: bool) -> Plan:
        def lp(n):
            s = '2:4' if sparse and (sparse_attn or layer_kind(n) == 'mlp') else None
            return LayerPlan(bits=4, group_size=g, sparsity=s)
        return Plan({n: lp(n) for n in find_linears(model)})

    def quant_variant(name, model, plan, r):
        "compress (fake-quant) -> reference decode -> to_packed -> measure and check. Consumes `model`."
        if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()              # peak_compress_pack_gib: this variant's
        t = time.perf_counter()
        applied = compress_model(model, plan, keep_parts=True, device=dev, progress=False)
        r['compress_s'] = time.perf_counter() - t
        log(f"  {name}: compressed {len(plan)} Linears in {r['compress_s']:.1f} s ({plan.summary()})")
        ref = reference_run(model)
        r['fake_quant_tokens'] = ref[2][n_prompt:n_prompt + n_tok + 1].tolist()
        t = time.perf_counter()
        to_packed(model, plan, applied.parts, device=dev)
        applied.parts.clear()
        sync(torch, dev)
        r['pack_s'] = time.perf_counter() - t
        if dev.type == 'cuda': r['peak_compress_pack_gib'] = torch.cuda.max_memory_allocated() / GiB
        log(f"  {name}: packed in {r['pack_s']:.1f} s; weights {model_bytes(model) / GiB:.2f} GiB")
        del applied
        free()
        if dev.type == 'cuda' and not args.no_tune:
            t = time.perf_counter()
            try:
                r['tuned'] = tune_model(model, warmup_ms=5, rep_ms=20)
                log(f"  {name}: tuned {len(r['tuned'])} Linear shapes in {time.perf_counter() - t:.1f} s: " +
                    '; '.join(f"{k} {v['default_us']:.1f} -> {v['tuned_us']:.1f} us" for k, v in r['tuned'].items()))
            except Exception as e:                                                # keep the defaults
                r['tuned'] = f"error: {type(e).__name__}: {str(e)[:300]}"
                log(f"  {name}: tuning failed ({r['tuned']}); default tiling")
        measure(name, model, r, reference=ref)

    def build():
        if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        m = random_model(cfg, home=dev, dtype=dt, seed=args.seed)
        sync(torch, dev)
        res.setdefault('build_s', []).append(round(time.perf_counter() - t, 2))
        log(f"built model: {sum(p.numel() for p in m.parameters()) / 1e9:.3f}B parameters, {model_bytes(m) / GiB:.2f} GiB, "
            f"{res['build_s'][-1]:.1f} s, attention {getattr(m.config, '_attn_implementation', None)}")
        res['config']['attn_implementation'] = getattr(m.config, '_attn_implementation', None)
        return m

    spent = {}                                                                  # seconds per variant, for estimates

    def attempt(name, fn, estimate=0.0):
        if elapsed() + estimate > args.budget:
            res['skipped'].append(f"{name}: time budget ({elapsed():.0f} s spent, ~{estimate:.0f} s needed, "
                                  f"budget {args.budget:.0f} s)")
            log(f"skip {name}: over budget"); save(); return False
        r = res['variants'].setdefault(name, {})
        t = time.perf_counter()
        try:
            fn(r); spent[name] = r['seconds'] = time.perf_counter() - t; return True
        except Exception as e:
            res['errors'][name] = f"{type(e).__name__}: {str(e)[:500]}"
            r['error'] = res['errors'][name]
            log(f"{name} FAILED: {res['errors'][name]}"); traceback.print_exc()
            free(); save(); return False

    # --- life 1: fp16, then the same model compressed in place to INT4 ---
    if 'fp16' in variants or 'int4' in variants:
        holder = {}
        def life1_fp16(r):
            holder['m'] = build()
            log('variant fp16 (dense, cuBLAS)')
            r['what'] = 'fp16 dense, F.linear'
            measure('fp16', holder['m'], r)
        if 'fp16' in variants: attempt('fp16', life1_fp16)
        else: holder['m'] = build()
        if 'int4' in variants and 'm' in holder:
            def life1_int4(r):
                log('variant int4 (every decoder Linear INT4 g%d)' % g)
                plan = quant_plan(holder['m'], False, False)
                r['what'] = f'packed INT4 g{g}, all {len(plan)} decoder Linears'
                quant_variant('int4', holder['m'], plan, r)
            attempt('int4', life1_int4)
        holder.clear(); free()

    # --- life 2: a fresh model compressed to 2:4 INT4 (attention too, else MLP only) ---
    if '2:4' in variants:
        def life2(r, sparse_attn):
            m = build()
            try:
                plan = quant_plan(m, sparse_attn, True)
                n_sp = sum(1 for _, lp in plan if lp.sparsity)
                r['what'] = (f'packed 2:4 INT4 g{g}, ' + (f'all {len(plan)} decoder Linears' if sparse_attn else
                             f'{n_sp} MLP Linears 2:4, {len(plan) - n_sp} attention Linears dense INT4'))
                r['sparse_attention'] = sparse_attn
                log(f"variant 2:4 ({r['what']})")
                quant_variant('2:4', m, plan, r)
            finally:
                del m
                free()
        est = spent.get('int4', 0.0)                                            # about what the INT4 variant took
        ok = attempt('2:4', lambda r: life2(r, True), est)
        if not ok and '2:4' in res['errors']:
            first_error = res['errors'].pop('2:4')
            res['variants']['2:4'] = dict(attention_2_4_error=first_error)
            log('retrying 2:4 on the MLP Linears only')
            attempt('2:4', lambda r: life2(r, False), est)

    # --- summary ---
    base = res['variants'].get('fp16', {})
    for name, r in res['variants'].items():
        for k in ('graph', 'eager'):
            if r.get(k) and base.get(k):
                r[k]['speedup_vs_fp16'] = r[k]['tok_s'] / base[k]['tok_s']
        if name != 'fp16' and r.get('tokens') and base.get('tokens'):
            r['first_divergence_vs_fp16'] = first_divergence(r['tokens'], base['tokens'])
        if r.get('tokens') and r.get('fake_quant_tokens'):
            r['first_divergence_vs_fake_quant'] = first_divergence(r['tokens'], r['fake_quant_tokens'])
    save()
    log(f"wrote {out}")
    print(table(res))


def table(res) -> str:
    "Markdown summary, one row per variant."
    f = lambda v, p=1: '-' if v is None else f"{v:.{p}f}"
    env, c = res['env'], res['config']
    lines = [f"\n{env.get('gpu', env.get('device'))} | driver {env.get('driver')} | torch {env.get('torch')} | triton {env.get('triton')} | "
             f"transformers {env.get('transformers')} | {c['name']} fp16, batch 1, prompt {c['prompt_tokens']}, "
             f"{c['decode_tokens']} greedy tokens, static cache{', CUDA graphs' if res['graph'] else ', eager only (no GPU)'}\n",
             "| variant | tok/s graph | tok/s eager | speedup vs fp16 | peak GPU GiB | weights GiB | max abs dlogit step 1 (vs fake-quant) | top-1 agree |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    key = 'graph' if res['graph'] else 'eager'
    for name, r in res['variants'].items():
        if r.get('error') and not r.get(key):
            lines.append(f"| {name} | error | error | - | - | - | - | - |"); continue
        ch = r.get('check') or {}
        sp = (r.get(key) or {}).get('speedup_vs_fp16')
        lines.append(f"| {r.get('what', name)} | {f((r.get('graph') or {}).get('tok_s'))} | {f((r.get('eager') or {}).get('tok_s'))} | "
                     f"{'-' if sp is None else f'{sp:.2f}x'} | {f(r.get('peak_decode_gib'), 2)} | {f(r.get('model_gib'), 2)} | "
                     f"{f(ch.get('max_abs_dlogit_step1'), 3)} | "
                     f"{'-' if 'top1_agree_rate' not in ch else format(100 * ch['top1_agree_rate'], '.1f') + '%'} |")
    for name, r in res['variants'].items():
        if r.get('graph_error'): lines.append(f"\n{name}: CUDA-graph capture failed, eager only: {r['graph_error'][:200]}")
        if r.get('attention_2_4_error'): lines.append(f"\n{name}: 2:4 on attention failed ({r['attention_2_4_error'][:200]}); MLP-only 2:4 used")
    if res.get('skipped'): lines.append(f"\nskipped: {', '.join(res['skipped'])}")
    if res.get('errors'): lines.append('errors: ' + '; '.join(f"{k}: {v[:200]}" for k, v in res['errors'].items()))
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------------------------
# CPU mode (--cpu): real models, transformers' generate, one worker process per variant (clean resident memory)
# ---------------------------------------------------------------------------------------------------------------
CPU_MODELS = ('ref-tiny', 'smollm2-135m')
CPU_VARIANTS = ('float32', 'bf16', 'int4-g128', 'int4-g128-bf16', 'int4-g128-ref', 'mixed-bf16')
MIXED_RECIPE = ROOT / 'bench' / 'cpu_mixed.toml'   # the mixed plan: INT4 Linears on the CPU kernel beside INT2/3 ones dequantized
CPU_WHAT = {'float32': 'float32 (dense)', 'bf16': 'bf16 (dense)',
            'int4-g128': "packed INT4 g128, float32 model, cpu_kernel='always' (torch CPU INT4 kernel, run in bf16)",
            'int4-g128-bf16': 'packed INT4 g128, bf16 model (torch CPU INT4 kernel, the default for bf16)',
            'int4-g128-ref': "packed INT4 g128, float32, cpu_kernel='off': reference path (dequantize + matmul; before issue 23)",
            'mixed-bf16': 'packed mixed plan (budget 4.25 bpw over INT2/3/4, bench/cpu_mixed.toml), bf16 model: INT4 on the CPU kernel, INT2/3 dequantize + matmul'}
PROMPT = 'The history of the city begins with a small settlement on the river, where'


def cpu_args(p):
    p.add_argument('--cpu', action='store_true', help='CPU mode: real models (--models), transformers generate, batch 1, greedy')
    p.add_argument('--models', default=','.join(CPU_MODELS), help='CPU mode: comma-separated subset of ' + ','.join(CPU_MODELS))
    p.add_argument('--cpu-variants', default=','.join(CPU_VARIANTS), help='CPU mode: comma-separated subset of ' + ','.join(CPU_VARIANTS))
    p.add_argument('--packed-dir', default='/tmp/tenpak_decode_cpu',
                   help='CPU mode: folder of the packed checkpoints (<model>-rtn-int4-g128, made with `tenpak run ... --pack` if missing)')
    p.add_argument('--threads', type=int, default=1, help='CPU mode: torch threads')
    p.add_argument('--ref-tokens', type=int, default=16, help='CPU mode: new tokens for the slow reference-path variant')
    p.add_argument('--note', default='', help='CPU mode: free text recorded with the results (e.g. other load on the machine)')
    p.add_argument('--log', default=None, help='CPU mode: results log the variants are appended to as `decode` records '
                                               '(default: log.jsonl beside --out, i.e. results/log.jsonl)')
    p.add_argument('--cpu-worker', default=None, help=argparse.SUPPRESS)


def _rss_mib() -> float:
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    return float('nan')


def cpu_worker(args):
    "One variant of one model in this process: load, warm up, time generate; prints one JSON line."
    import torch
    sys.path.insert(0, str(ROOT))
    from tenpak.zoo import load_model
    from tenpak.pack import load_packed, PackedLinear
    job = json.loads(args.cpu_worker)
    torch.set_num_threads(args.threads); torch.set_grad_enabled(False)
    name, var, n = job['model'], job['variant'], job['tokens']
    rss0 = _rss_mib()
    t = time.perf_counter()
    if var in ('float32', 'bf16'):
        model, tok = load_model(name)
        if var == 'bf16': model = model.to(torch.bfloat16)
    else:
        from transformers import AutoTokenizer
        model = load_packed(job['packed'], dtype=torch.bfloat16 if var.endswith('bf16') else torch.float32)
        tok = AutoTokenizer.from_pretrained(job['packed'])
        PackedLinear.cpu_kernel = 'off' if var == 'int4-g128-ref' else 'always' if var == 'int4-g128' else 'bf16'
    from tenpak.kernel import pick_backend
    load_s = time.perf_counter() - t
    ids = tok(PROMPT, return_tensors='pt')
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    def gen(k):
        t0 = time.perf_counter()
        out = model.generate(**ids, max_new_tokens=k, min_new_tokens=k, do_sample=False, pad_token_id=pad)
        return time.perf_counter() - t0, out[0, ids.input_ids.shape[1]:].tolist()
    gen(4)                                                 # warm-up (also builds the CPU kernel's packed weights)
    packed = [m for m in model.modules() if isinstance(m, PackedLinear)]
    fast = sum(bool(m._cpu) for m in packed)
    x1 = torch.zeros(1, dtype=next(model.parameters()).dtype)
    backends = {}
    for m in packed: backends[pick_backend(m.fit, x1, PackedLinear.cpu_kernel)] = backends.get(pick_backend(m.fit, x1, PackedLinear.cpu_kernel), 0) + 1
    layouts = {}
    for m in packed: layouts[f"INT{m.bits} g{m.group_size}"] = layouts.get(f"INT{m.bits} g{m.group_size}", 0) + 1
    freed = sum(bool(getattr(m, '_qw_freed', False)) for m in packed)
    t1 = min(gen(1)[0] for _ in range(2))                  # prefill + 1 token
    runs = [gen(n) for _ in range(job['repeats'])]
    tn = statistics.median(r[0] for r in runs)
    wbytes = sum(p.numel() * p.element_size() for p in model.parameters()) + \
             sum(b.numel() * b.element_size() for b in model.buffers() if b.data_ptr() not in {p.data_ptr() for p in model.parameters()})
    cache = sum(m._cpu[1][0].nbytes + m._cpu[1][1].nbytes for m in packed if m._cpu)
    print(json.dumps(dict(model=name, variant=var, what=CPU_WHAT[var], tokens=n, load_s=round(load_s, 2),
                          prefill_1_s=round(t1, 4), generate_s=round(tn, 3), decode_tok_s=(n - 1) / (tn - t1), end_to_end_tok_s=n / tn,
                          weights_mib=wbytes / 2**20, cpu_kernel_cache_mib=cache / 2**20, rss_mib=_rss_mib(), rss_before_load_mib=rss0,
                          packed_linears=len(packed), packed_linears_on_cpu_kernel=fast, backends=backends, layouts=layouts,
                          qweight_freed=freed, threads=torch.get_num_threads(),
                          generated=runs[0][1])))


def _cpu_packed(name: str, folder: Path, log, recipe: str = 'rtn-int4-g128') -> Path:
    "The packed checkpoint of `name` compressed by `recipe` (made with the CLI if missing)."
    import subprocess
    d = folder / f'{name}-{Path(recipe).stem}'
    if not (d / 'packed' / 'tenpak.json').is_file():
        cmd = [sys.executable, '-m', 'tenpak.cli', 'run', '--model', name, '--recipe', str(recipe), '--pack', '--save-dir', str(d),
               '--eval-windows', '2', '--no-log']
        log('making', d, ':', ' '.join(cmd[2:]))
        subprocess.run(cmd, check=True, cwd=ROOT)
    return d / 'packed'


def cpu_main(args):
    import platform, subprocess
    sys.path.insert(0, str(ROOT))
    from tenpak.log import environment
    t_start = time.perf_counter()
    log = lambda *a: print(f"[{time.perf_counter() - t_start:6.1f}s]", *a, flush=True)
    out = Path(args.out or ROOT / 'results' / 'cpu_decode.json')
    n = args.tokens or 128
    models = [m.strip() for m in args.models.split(',') if m.strip()]
    variants = [v.strip() for v in args.cpu_variants.split(',') if v.strip()]
    bad = [v for v in variants if v not in CPU_VARIANTS] + [m for m in models if m not in CPU_MODELS]
    if bad: sys.exit(f"unknown model(s) / variant(s) {bad}")
    cpu_name = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    res = dict(script='bench/decode.py --cpu', env=dict(environment(), cpu=cpu_name, threads=args.threads, note=args.note),
               config=dict(batch=1, greedy=True, new_tokens=n, prompt=PROMPT, ref_path_tokens=args.ref_tokens, runner='transformers generate (dynamic cache)'),
               notes=["decode tok/s = (tokens - 1) / (time of generate(tokens) - time of generate(1)): prefill excluded, median of --repeats",
                      "rss_mib: the worker process's resident memory after decoding (its own process per variant); growth: minus its RSS after imports, before loading",
                      "weights_mib: parameters + buffers; cpu_kernel_cache_mib: the CPU INT4 kernel's packed copy, built on the first call "
                      "(once it is built the layer's qweight is freed: PackedLinear.keep_codes); weights_vs_float32: (weights + kernel copy) / float32's weights",
                      "mixed-bf16: the packed checkpoint of bench/cpu_mixed.toml (a Fisher budget at 4.25 bpw over INT2/3/4, g 64-256); "
                      "backends counts its Linears by the route kernel.pick_backend takes"],
               results=[])
    for name in models:
        packed = _cpu_packed(name, Path(args.packed_dir), log) if any(v.startswith('int4') for v in variants) else None
        mixed = _cpu_packed(name, Path(args.packed_dir), log, str(MIXED_RECIPE)) if 'mixed-bf16' in variants else None
        for var in variants:
            ck = mixed if var == 'mixed-bf16' else packed
            job = dict(model=name, variant=var, packed=str(ck) if ck else None,
                       tokens=args.ref_tokens if var.endswith('-ref') else n, repeats=1 if var.endswith('-ref') else max(1, args.repeats))
            cmd = [sys.executable, __file__, '--cpu-worker', json.dumps(job), '--threads', str(args.threads)]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if p.returncode:
                log(f"{name} {var}: failed\n{p.stderr[-2000:]}"); res['results'].append(dict(model=name, variant=var, error=p.stderr[-2000:])); continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            res['results'].append(r)
            log(f"{name:13s} {var:15s} {r['decode_tok_s']:7.2f} tok/s decode | weights {r['weights_mib']:7.1f} MiB "
                f"(+{r['cpu_kernel_cache_mib']:.1f} kernel copy) | RSS {r['rss_mib']:7.1f} MiB")
            out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=1))
    for name in models:
        rs = {r['variant']: r for r in res['results'] if r['model'] == name and 'error' not in r}
        base = rs.get('float32')
        for r in rs.values():
            if base:
                r['speedup_vs_float32'] = r['decode_tok_s'] / base['decode_tok_s']
                r['weights_vs_float32'] = (r['weights_mib'] + r['cpu_kernel_cache_mib']) / base['weights_mib']
                k = min(len(r['generated']), len(base['generated']))
                r['first_divergence_vs_float32'] = next((i for i in range(k) if r['generated'][i] != base['generated'][i]), None)
    out.write_text(json.dumps(res, indent=1))
    log(f"wrote {out}")
    lp = log_records(res, Path(args.log) if args.log else out.parent / 'log.jsonl')
    log(f"appended {len(res['results'])} decode records to {lp}")
    print(cpu_table(res))


def log_records(res: dict, path: Path) -> Path:
    "Each variant as one `decode` record of the results log (`tenpak.log`), with the run's config, environment and provenance."
    import datetime
    from tenpak import log as rlog
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    sid = f"decode/{date}"
    for r in res['results']:
        rlog.append(dict(kind='decode', session=sid, date=date, config=res['config'], env=res['env'], **r), path)
    return path


def cpu_table(res) -> str:
    e = res['env']
    lines = [f"\n{e.get('cpu')} ({e.get('cpu_count')} cores), torch {e.get('torch')} with {e.get('threads')} thread(s), transformers "
             f"{e.get('transformers')}; batch 1, greedy, {res['config']['new_tokens']} new tokens. {e.get('note', '')}\n",
             "| model | variant | decode tok/s | vs float32 | weights MiB (+ CPU-kernel copy) | weights vs float32 | RSS MiB (growth from load + decode) | first token differing from float32 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in res['results']:
        if 'error' in r: lines.append(f"| {r['model']} | {r['variant']} | error | | | | | |"); continue
        wr = r.get('weights_vs_float32')
        sp = r.get('speedup_vs_float32')
        fd = r.get('first_divergence_vs_float32', '-')
        lines.append(f"| {r['model']} | {r['what']} | {r['decode_tok_s']:.2f} | {'-' if sp is None else f'{sp:.2f}x'} | "
                     f"{r['weights_mib']:.1f} (+{r['cpu_kernel_cache_mib']:.1f}) | {'-' if wr is None else f'{wr:.2f}x'} | {r['rss_mib']:.0f} ({r['rss_mib'] - r['rss_before_load_mib']:+.0f}) | "
                     f"{'none in ' + str(r['tokens']) if fd is None else fd} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
