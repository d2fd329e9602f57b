#!/usr/bin/env python
"""GPTQ from llm-compressor (the real library, run in its own venv) on the decoder-block Linears of a model.

Run by bench/quality.py with the peers venv's python (`scripts/peers_venv.sh` builds it):

    /work/peers/bin/python bench/peers/llmc_gptq.py JOB.pt OUT_DIR

JOB.pt (written by bench/quality.py) holds: model (name), seqlen, batch_size (1), calib ((n, seqlen) token windows: the same
calibration windows TenPak's own recipes use), probe ((1, seqlen): the first evaluation window), configs
([{key, name, assign: {linear name: (bits, group)}}, ...]: per config, what every decoder-block Linear stores, as
bench/peers/peer_common.py's PeerConfig assigns it, groups already fitted), threads, dampening (None: llm-compressor's default),
actorder ('static', llm-compressor's default and its strongest setting that costs nothing at inference; None: plain
column order, kept as an ablation), transform (None; 'spinquant': SpinQuantModifier R1 + R2, or 'quip': QuIPModifier
input rotations, both random-hadamard, before GPTQ), test ((n, seqlen) evaluation windows, used with a transform) and
reference (the float model's `tenpak.eval.FloatRef` fields on those windows: with a transform, KL and top-1 agreement
are measured here too, in the same pass as PPL).

For each config: a fresh copy of the float model, then

    oneshot(model=..., processor=tokenizer, dataset=DataLoader(calibration windows, batch 1),
            recipe=GPTQModifier(config_groups={'group_0': QuantizationScheme(targets=['Linear'],
                    weights=QuantizationArgs(num_bits=bits, type='int', symmetric=False, strategy='group',
                                             group_size=group))},
                                ignore=['lm_head'], actorder=job['actorder']),
            num_calibration_samples=n, shuffle_calibration_samples=False, pipeline='sequential')

(the W{bits}A16 asymmetric group scheme, written out; actorder 'static': columns in decreasing Hessian diagonal, groups
kept contiguous, so nothing changes at inference), with one scheme per
distinct (bits, group) of the assignment, targeting its Linears by name where the config is not one scheme on every
Linear (a group fitted to a Linear's input width, `tenpak.quant.fit_group`: smollm2's 576-wide inputs take g96 for a
nominal g128; or a mix: the first k Linears at another config). llm-compressor's weight
observer is memoryless min-max; GPTQ's block size 128 and dampening 0.01 are its defaults.

With a transform, the rotations change embeddings, norms and (QuIP) add online Hadamards, so the quantized model cannot
be rebuilt from its Linears elsewhere: the subprocess measures the perplexity itself, with tenpak.eval.perplexity on
the same evaluation windows, and reports it (`ppl`) instead of codes.

Otherwise, what comes back, per config, in OUT_DIR/{key}.pt: for every decoder-block Linear the weight the
quantized model actually uses in its forward (compressed-tensors' fake quantization of the stored weight with its
scale and zero point), as int8 codes + scale + zero point, so that bench/quality.py rebuilds it exactly
((codes - zero) * scale) in a float model of the main venv and measures perplexity there, with the same code and
windows as every other method. Checks recorded in OUT_DIR/result.json: the Linears quantized (count; lm_head
untouched), the weights changed, at most 2**bits codes per group, the rebuilt weight equals the forward weight,
and the NLL of the quantized model on the probe window as llm-compressor's own modules compute it (quality.py
compares it with the rebuilt model's).
"""
import copy, json, os, platform, sys, time, traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def float_reference(ref: dict | None, rec: dict):
    """The float model's summary on the evaluation windows (job['reference']: the fields of tenpak.eval.FloatRef, measured
    by bench/quality.py in the main venv), as a FloatRef for perplexity(reference=): KL(float || this) and top-1 agreement
    from the same pass as PPL. None (and rec['kl_error'] says why) when there is none or this venv's tenpak cannot use it."""
    if not ref: rec['kl_error'] = 'no float reference in the job'; return None
    try:
        from tenpak.eval import FloatRef
        return FloatRef(**ref)
    except Exception as e:
        rec['kl_error'] = f"this venv's tenpak cannot take the float reference ({type(e).__name__}: {e})"[:300]
        return None


def main(job_path: str, out_dir: str) -> int:
    job = __import__('torch').load(job_path)
    threads = int(job.get('threads') or 1)
    os.environ['OMP_NUM_THREADS'] = str(threads)
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    import torch
    torch.set_num_threads(threads)
    import importlib.metadata as md
    from torch.utils.data import DataLoader
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from compressed_tensors.quantization.lifecycle.forward import forward_quantize
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import GPTQModifier
    from peer_common import load_float, block_linears
    from tenpak.eval import next_token_nll

    out = Path(out_dir); out.mkdir(parents=True, exist_ok=True)
    versions = {p: md.version(p) for p in ('llmcompressor', 'compressed-tensors', 'torch', 'transformers')}
    versions['python'] = platform.python_version()
    res = dict(versions=versions, threads=threads, model=job['model'], configs={})
    write = lambda: (out / 'result.json').write_text(json.dumps(res, indent=1))

    t0 = time.perf_counter()
    base, tok = load_float(job['model'])
    res['load_s'] = round(time.perf_counter() - t0, 2)
    calib, probe = job['calib'], job['probe']
    # llm-compressor's validate_model re-reads the config from model.config.name_or_path; a GGUF-loaded model's
    # folder has no config.json, so point it at a copy of the (float) config.
    cfg_dir = out / 'config'
    base.config.save_pretrained(cfg_dir)
    base.config.name_or_path = str(cfg_dir)
    names = list(block_linears(base))
    orig = {n: m.weight.detach().clone() for n, m in block_linears(base).items()}
    lm_head0 = base.get_output_embeddings().weight.detach().clone()
    res['linears'] = len(names)
    res['calib_windows'], res['seqlen'] = list(calib.shape), int(calib.shape[1])
    write()

    for cfg in job['configs']:
        key, assign = cfg['key'], {n: tuple(v) for n, v in cfg['assign'].items()}
        rec = res['configs'][key] = dict(name=cfg['name'])
        try:
            t1 = time.perf_counter()
            if sorted(assign) != sorted(names): raise ValueError('the assignment does not name every decoder-block Linear')
            model = copy.deepcopy(base)
            loader = DataLoader([{'input_ids': w, 'attention_mask': torch.ones_like(w)} for w in calib],
                                batch_size=int(job.get('batch_size') or 1))
            by_bg = {}
            for n, bg in assign.items(): by_bg.setdefault(bg, []).append(n)
            args = lambda b, g: QuantizationArgs(num_bits=b, type='int', symmetric=False, strategy='group', group_size=g)
            # one scheme on every Linear when the whole model stores one (bits, group); else one per (bits, group), by name
            schemes = ({'group_0': QuantizationScheme(targets=['Linear'], weights=args(*next(iter(by_bg))))} if len(by_bg) == 1 else
                       {f'group_{i}': QuantizationScheme(targets=ns, weights=args(b, g)) for i, ((b, g), ns) in enumerate(sorted(by_bg.items()))})
            rec['groups'] = {f'int{b}-g{g}': len(ns) for (b, g), ns in sorted(by_bg.items())}
            kw = {} if job.get('dampening') is None else dict(dampening_frac=job['dampening'])
            recipe = [GPTQModifier(config_groups=schemes, ignore=['lm_head'], actorder=job.get('actorder', 'static'), **kw)]
            if job.get('transform') == 'spinquant':
                from llmcompressor.modifiers.transform import SpinQuantModifier
                recipe.insert(0, SpinQuantModifier(rotations=['R1', 'R2'], transform_type='random-hadamard'))
            elif job.get('transform') == 'quip':
                from llmcompressor.modifiers.transform import QuIPModifier
                recipe.insert(0, QuIPModifier(rotations=['v'], transform_type='random-hadamard'))
            elif job.get('transform') is not None: raise ValueError(f"unknown transform {job['transform']!r}")
            model = oneshot(model=model, processor=tok, dataset=loader, recipe=recipe,
                            num_calibration_samples=len(calib), shuffle_calibration_samples=False,
                            pipeline='sequential')
            rec['oneshot_s'] = round(time.perf_counter() - t1, 2)
            mods = dict(model.named_modules())
            quantized = [n for n, m in mods.items() if getattr(m, 'quantization_scheme', None) is not None]
            rec['quantized_linears'] = len(quantized)
            rec['unexpected_quantized'] = sorted(set(quantized) - set(names))
            rec['block_linears_not_quantized'] = sorted(set(names) - set(quantized))
            rec['lm_head_changed'] = bool((model.get_output_embeddings().weight != lm_head0).any())
            # NLL of the probe window through llm-compressor's own (fake-quantizing) modules
            with torch.no_grad():
                rec['probe_nll'] = next_token_nll(model(probe).logits, probe, reduction='mean').item()
            if job.get('transform') is not None:           # rotated embeddings / norms / online transforms: measure here
                from tenpak.eval import perplexity
                t2 = time.perf_counter()
                ref = float_reference(job.get('reference'), rec)
                with torch.no_grad(): pp = perplexity(model, job['test'], batch_size=8, progress=False, **({'reference': ref} if ref else {}))
                rec.update(ppl=pp.ppl, eval_tokens=pp.tokens, eval_s=round(time.perf_counter() - t2, 2),
                           seconds=round(time.perf_counter() - t1, 2),
                           **{k: getattr(pp, k, None) for k in ('kl_mean', 'kl_p99', 'top1_agree', 'kl_method')})
                del model
                write()
                print(f"[llmc_gptq] {key}: {rec['seconds']} s, PPL {pp.ppl:.4f}", flush=True)
                continue
            saved, max_rebuild, max_stored, max_codes, over, changed = {}, 0.0, 0.0, 0, 0, 0
            for n in names:
                m = mods[n]
                sch = m.quantization_scheme.weights
                with torch.no_grad():
                    w = m.weight.detach()
                    w_fwd = forward_quantize(m, w, 'weight', sch)          # what forward multiplies with
                    scale, zp = m.weight_scale.detach(), m.weight_zero_point.detach()
                    bits, g = assign[n]
                    s = scale.repeat_interleave(g, dim=1).float()
                    z = zp.repeat_interleave(g, dim=1).float()
                    codes = torch.round(w_fwd.float() / s + z)
                    rebuilt = (codes - z) * s
                max_rebuild = max(max_rebuild, (rebuilt - w_fwd.float()).abs().max().item())
                max_stored = max(max_stored, (w_fwd - w).abs().max().item())
                per_group = codes.reshape(codes.shape[0], -1, g)
                levels = (per_group.amax(-1) - per_group.amin(-1) + 1).max().item()
                max_codes = max(max_codes, int(levels))
                over = max(over, int(levels) - 2 ** bits)
                changed += int(not torch.equal(w_fwd, orig[n]))
                saved[n] = dict(codes=codes.to(torch.int8), scale=scale.float(), zero=zp.float(), group=g)
            rec.update(max_abs_rebuilt_minus_forward=max_rebuild, max_abs_forward_minus_stored=max_stored,
                       max_codes_per_group=max_codes, codes_over_limit=over, linears_changed=changed,
                       codes_range=[float(min(v['codes'].min() for v in saved.values())),
                                    float(max(v['codes'].max() for v in saved.values()))])
            torch.save(saved, out / f'{key}.pt')
            rec['file'] = f'{key}.pt'
            rec['seconds'] = round(time.perf_counter() - t1, 2)
            del model, saved
        except Exception as e:
            rec['error'] = f'{type(e).__name__}: {e}'.splitlines()[0][:400]
            rec['traceback'] = traceback.format_exc()[-3000:]
        write()
        print(f'[llmc_gptq] {key}: ' + (rec.get('error') or f"{rec['seconds']} s, probe NLL {rec['probe_nll']:.4f}"),
              flush=True)
    return 0


if __name__ == '__main__':
    if len(sys.argv) != 3: sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
