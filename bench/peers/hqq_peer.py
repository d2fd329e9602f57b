"""HQQ (PyPI `hqq`) as a peer, in-process in the main venv: fake-quantize every decoder-block Linear's weight.

Per Linear: `hqq.core.quantize.Quantizer.quantize(W, nbits, channel_wise=True, group_size=g, optimize=True,
round_zero=(nbits == 4), axis=1, bitpack=False)` -- HQQ's own half-quadratic optimizer of the zero point
(`optimize_weights_proximal`, its default), asymmetric, groups of g consecutive input weights of one output row
(axis=1), the settings `hqq_base_quant_config(nbits, g, axis=1)` gives -- then `Quantizer.dequantize` back into
the float Linear. Where g does not divide a Linear's input width, the Linear gets TenPak's fitted group
(`tenpak.quant.fit_group`, see common.peer_groups). The scale and zero are rounded to fp16 first, as the bits-per-weight accounting
(bits + 32 / g: one fp16 scale and one fp16 zero per group) stores them; lm_head and embeddings stay float.
"""
from __future__ import annotations
import torch


def available() -> str | None:
    "None if hqq imports, else the reason it cannot run."
    try:
        from hqq.core.quantize import Quantizer  # noqa: F401
    except Exception as e: return f'hqq not importable: {type(e).__name__}: {e}'.splitlines()[0]
    return None


def version() -> str | None:
    import importlib.metadata as md
    try: return md.version('hqq')
    except md.PackageNotFoundError: return None


@torch.no_grad()
def fake_quant_weight(w: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    "HQQ-quantized then dequantized copy of a Linear weight `w` (out, in), float32."
    from hqq.core.quantize import Quantizer
    if w.shape[1] % group: raise ValueError(f'group {group} does not divide the input width {w.shape[1]}')
    wq, meta = Quantizer.quantize(w.float(), nbits=bits, channel_wise=True, group_size=group, optimize=True,
                                  round_zero=(bits == 4), axis=1, bitpack=False, compute_dtype=torch.float32,
                                  device=str(w.device))
    meta = dict(meta, compute_dtype=torch.float32,
                scale=meta['scale'].half().float(), zero=meta['zero'].half().float())
    out = Quantizer.dequantize(wq, meta)
    return out.reshape(w.shape).to(w.dtype)


@torch.no_grad()
def quantize_model(model, linears: dict, assign: dict[str, tuple[int, int]]) -> dict:
    "Fake-quantize `linears` (name -> nn.Linear) of `model` in place, each as `assign[name]` = (bits, group); simple checks."
    changed, over = 0, 0
    for name, m in linears.items():
        (bits, group), w0 = assign[name], m.weight.data
        w = fake_quant_weight(w0, bits, group)
        g = w.reshape(w.shape[0], -1, group)
        levels = max(len(torch.unique(row)) for row in g[:4].flatten(0, 1))      # a sample of groups
        over = max(over, levels - 2 ** bits)
        changed += int(not torch.equal(w, w0))
        m.weight.data.copy_(w)
    return dict(linears=len(linears), linears_changed=changed, levels_over_limit_sampled=over)
