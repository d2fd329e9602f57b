"""Helpers shared by bench/quality.py (main venv) and bench/peers/llmc_gptq.py (peers venv).

Kept free of anything but torch, transformers and tenpak so that both venvs can import it.
"""
from __future__ import annotations
import os, re
from dataclasses import dataclass

import torch

SMOLLM2 = 'smollm2-135m'
from tenpak.zoo import SMOLLM2_CAVEAT as _CAVEAT       # one wording, owned by the zoo entry
SMOLLM2_CAVEAT = f"smollm2-135m caveat: {_CAVEAT}"
# bpw = bits + 32 / group: one fp16 scale and one fp16 zero per group
PEER_POINTS = [(4, 128), (3, 128), (2, 64), (2, 128)]


def set_threads(n: int) -> None:
    "Use `n` CPU threads for torch (and whatever reads OMP_NUM_THREADS later)."
    os.environ['OMP_NUM_THREADS'] = str(n)
    torch.set_num_threads(n)


def load_float(model: str, dtype=torch.float32):
    "(model, tokenizer) in float32, eval mode (`tenpak.zoo.load_model`: zoo names, .gguf files, HF folders)."
    import tenpak.zoo
    return tenpak.zoo.load_model(model, device='cpu', dtype=dtype)


def block_linears(model) -> dict:
    "The Linears inside decoder blocks (what every method here quantizes; lm_head and embeddings stay float)."
    from tenpak.core import find_linears
    return find_linears(model)


@dataclass(frozen=True)
class PeerConfig:
    """A peer's storage of the decoder-block Linears: INT`bits` with groups of `group` everywhere, except (a mix) the
    first `k` Linears in model order, stored as `hi` = (bits, group). Mixes put a peer at the bpw of a TenPak recipe
    that no uniform config reaches (v22's 4.22, the 14x budget's 2.29): the upgraded Linears are simply the first ones,
    a fixed rule with no search, so the peer stays the peer (its own quantizer on every Linear)."""
    bits: int
    group: int
    hi: tuple[int, int] | None = None
    k: int = 0

    @property
    def name(self) -> str:
        base = f'int{self.bits}-g{self.group}'
        if not self.k: return base
        hb, hg = self.hi
        return base + (f'+{self.k}xg{hg}' if hb == self.bits else f'+{self.k}xint{hb}-g{hg}')

    @property
    def key(self) -> str: return re.sub(r'[^A-Za-z0-9]+', '_', self.name)

    def assign(self, names) -> dict[str, tuple[int, int]]:
        "Linear name -> (bits, nominal group), `names` in model order."
        return {n: (self.hi if i < self.k else (self.bits, self.group)) for i, n in enumerate(names)}

    def to_dict(self) -> dict: return dict(bits=self.bits, group=self.group, hi=list(self.hi) if self.hi else None, k=self.k)


def as_config(c) -> PeerConfig: return c if isinstance(c, PeerConfig) else PeerConfig(*c)


def peer_groups(linears: dict, config) -> dict[str, tuple[int, int]]:
    """Per Linear, the (bits, group) a peer stores for `config` (a PeerConfig or (bits, group)), with groups fitted by
    TenPak's own rule (`tenpak.quant.fit_group`: the group if it divides the input width, else the largest divisor
    below it that is a multiple of 8), so that peers and TenPak's RTN/GPTQ recipes store the same groups (smollm2's
    576-wide inputs take g96 for a nominal g128)."""
    from tenpak.quant import fit_group
    a = as_config(config).assign(list(linears))
    return {n: (a[n][0], fit_group(a[n][1], m.weight.shape[1])) for n, m in linears.items()}


def peer_bpw(linears: dict, config) -> float:
    "Bits per weight over `linears` for `config`: bits + one fp16 scale + one fp16 zero per (fitted) group."
    gs = peer_groups(linears, config)
    num = sum(m.weight.numel() for m in linears.values())
    return sum(m.weight.numel() * (gs[n][0] + 32 / gs[n][1]) for n, m in linears.items()) / num


def mix_for(linears: dict, target: float, uniform: list, tol: float) -> PeerConfig | None:
    """The peer config whose bpw is nearest `target` (within `tol`), or None: a uniform config if one is that close,
    else a mix of two uniform configs around it (same bits preferred, then the narrowest pair), the first k Linears
    at the larger one, k chosen to land nearest the target."""
    uni = sorted(((peer_bpw(linears, c), as_config(c)) for c in uniform), key=lambda t: t[0])
    near = min(uni, key=lambda t: abs(t[0] - target), default=None)
    if near and abs(near[0] - target) <= tol: return near[1]
    pairs = [(lo, hi) for lo in uni for hi in uni if lo[0] < target < hi[0]]
    if not pairs: return None
    (blo, lo), (bhi, hi) = min(pairs, key=lambda p: (p[0][1].bits != p[1][1].bits, p[1][0] - p[0][0]))
    best = None
    for k in range(1, len(linears)):
        c = PeerConfig(lo.bits, lo.group, (hi.bits, hi.group), k)
        b = peer_bpw(linears, c)
        if best is None or abs(b - target) < best[0]: best = (abs(b - target), c)
        if b > target: break
    return best[1] if best and best[0] <= tol else None
