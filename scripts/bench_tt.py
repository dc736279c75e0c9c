"""Trajectory Transformer planning time: rlgen's cached windowed beam search against the released planner.

The released planner (trajectory-transformer's ``trajectory/search/core.py`` ``beam_plan`` with
``search/sampling.py``) is transcribed here as :func:`official_beam_plan`: for every new token it recomputes the
whole sequence, cropped from the front by whole transitions to ``max_context_transitions * D - 1`` tokens, with
a materialised attention matrix and logits at every position, keeps the action bins above its ``cdf`` filter, and
takes observation, reward and value tokens greedily (``k = 1``), scoring by the expected reward and value.

Both planners run the same random-weight GPT (Hopper's 11 + 3 dimensions, 100 uniform bins, 4 layers, 4 heads,
width 128) with n_expand 2, 4 context transitions (the window as well) and ``cdf_act = 0.6``, interleaved in one
process, one planning call of each per round. Also timed: rlgen planning ``--envs`` environments in one call
(time per environment step). rlgen's calls plan in one KV cache, as an evaluation's policy does. The machine's
load, torch threads and OpenMP settings are printed and recorded; the FLOP floor is the cached search's arithmetic
(counted) at the rate this machine sustains on one large matmul.

    python scripts/bench_tt.py                       # writes benchmarks/tt_planning.json and .md
    python scripts/bench_tt.py --settings beam32-h5 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from bench_notes import with_notes
from torch import Tensor

from rlgen.algos.tt import PlannerConfig, TrajectoryModel, TransitionLayout, TTModelConfig, beam_plan, make_prefix
from rlgen.algos.tt.planner import planning_cache, planning_threads
from rlgen.heads import head_config
from rlgen.train.run_dir import write_text_atomic

HOPPER = TransitionLayout(obs_dim=11, act_dim=3)
CONTEXT = 4  # TT's max_context_transitions: past transitions kept, and the window of every forward pass
SETTINGS: dict[str, PlannerConfig] = {
    name: PlannerConfig(
        horizon=horizon, beam_width=beam, n_expand=2, context=CONTEXT, window=CONTEXT, action_top_p=0.4
    )  # fmt: skip
    for name, beam, horizon in (("beam32-h5", 32, 5), ("paper", 128, 15))
}


def make_model() -> TrajectoryModel:
    torch.manual_seed(0)
    config = TTModelConfig(head_config("uniform", num_bins=100), sequence_length=10, n_layer=4, n_head=4, n_embd=128)
    bounds = np.full(HOPPER.dim, 4.0, dtype=np.float32)
    return TrajectoryModel(config, HOPPER, -bounds, bounds).eval()


# ----- the released planner, transcribed ---------------------------------------------------------------------------
class OfficialForward:
    """The released GPT's forward pass on rlgen's weights: token ids ``(B, T)`` -> logits ``(B, T, N)`` at every
    position (position ``t`` predicts token ``t + 1``), attention materialised and masked as released."""

    def __init__(self, model: TrajectoryModel):
        self.model, D, N = model, model.layout.dim, model.config.bins
        self.head_w = torch.stack([h.proj.weight for h in model.heads])  # (D, N, C): the head of dimension d
        self.head_b = torch.stack([h.proj.bias for h in model.heads])
        block = model.gpt.config.block_size
        mask = torch.ones(block, block).tril()
        mask[:, D - 1 :: D] = 0  # no token attends to a value token
        self.mask = mask.view(1, 1, block, block)
        self.num_bins, self.dim = N, D

    def __call__(self, tokens: Tensor) -> Tensor:
        gpt, (B, T), D = self.model.gpt, tokens.shape, self.dim
        dims = torch.arange(T) % D
        x = self.model.token_embedding(tokens + dims * self.num_bins) + gpt.wpe.weight[:T]
        for block in gpt.blocks:
            h, C, H = block.ln_1(x), x.shape[-1], block.attn.n_head
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in block.attn.qkv(h).split(C, dim=2))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
            att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf")).softmax(-1)
            x = x + block.attn.proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))
            x = x + block.mlp(block.ln_2(x))
        x = gpt.ln_f(x)
        next_dims = (dims + 1) % D
        return torch.einsum("btc,tnc->btn", x, self.head_w[next_dims]) + self.head_b[next_dims]


def filter_cdf(logits: Tensor, threshold: float) -> Tensor:
    """TT's action filter: drop (logit -1000) every bin whose probability is at most the largest one below which
    the sorted cumulative mass stays under ``threshold``."""
    probs = logits.softmax(-1)
    sorted_probs = probs.sort(-1).values
    below = sorted_probs.cumsum(-1) < threshold
    last = torch.argmax(below * torch.arange(logits.shape[-1]), dim=-1)
    cut = sorted_probs.gather(-1, last[:, None])
    return logits.masked_fill(probs <= cut, -1000.0)


def official_sample_n(forward: OfficialForward, x: Tensor, n: int, max_block: int, cdf: float | None,
                      greedy: bool, generator: torch.Generator) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Append ``n`` tokens to ``x`` one at a time, each from a forward pass over the cropped sequence."""
    raw = []
    for _ in range(n):
        crop = x
        if x.shape[1] > max_block:  # crop whole transitions so that the first token is an observation's first
            excess = x.shape[1] - max_block
            crop = x[:, excess + (-excess) % forward.dim :]
        logits = forward(crop)[:, -1]
        raw.append(logits.softmax(-1))
        if cdf is not None:
            logits = filter_cdf(logits, cdf)
        if greedy:  # top-k with k = 1
            top = logits.topk(1).values[:, -1:]
            logits = logits.masked_fill(logits < top, float("-inf"))
        x = torch.cat([x, torch.multinomial(logits.softmax(-1), 1, generator=generator)], 1)
    return x, torch.stack(raw, 1)


@torch.no_grad()
def official_beam_plan(model: TrajectoryModel, forward: OfficialForward, prefix: Tensor, config: PlannerConfig,
                       generator: torch.Generator, greedy_actions: bool = False) -> Tensor:  # fmt: skip
    """The released ``beam_plan`` for one environment: the best sequence of tokens ``(horizon, D)``.
    ``greedy_actions``: ``k_act = 1`` instead of the ``cdf_act`` filter."""
    lay, W, H = model.layout, config.beam_width, config.horizon
    max_block = config.window * lay.dim - 1
    centers = torch.stack([(h.edges[0, :-1] + h.edges[0, 1:]) / 2 * (h.high - h.low) + h.low
                           for h in (model.heads[lay.reward], model.heads[lay.value])])  # fmt: skip
    x = prefix.repeat(W, 1)
    rewards = torch.zeros(W, H + 1)
    discounts = config.discount ** torch.arange(H + 1)
    for t in range(H):
        x, rewards = x.repeat(config.n_expand, 1), rewards.repeat(config.n_expand, 1)
        cdf = None if greedy_actions else 1 - config.action_top_p
        x, _ = official_sample_n(forward, x, lay.act_dim, max_block, cdf, greedy_actions, generator)
        x, probs = official_sample_n(forward, x, 2, max_block, None, True, generator)
        rewards[:, t], rewards[:, t + 1] = (probs * centers).sum(-1).unbind(1)
        values, index = (rewards * discounts).sum(-1).topk(W)
        x, rewards = x[index], rewards[index]
        if t < H - 1:
            x, _ = official_sample_n(forward, x, lay.obs_dim, max_block, None, True, generator)
    return x.view(W, -1, lay.dim)[:, -H:][values.argmax()]


# ----- measurement -------------------------------------------------------------------------------------------------
@dataclass
class FlopCounter:
    """Multiply-adds of the GPT forward passes of rlgen's planner: counted by a hook on the trunk."""

    model: TrajectoryModel
    flops: float = 0.0

    def __enter__(self) -> FlopCounter:
        C, L = self.model.config.n_embd, self.model.config.n_layer

        def count(module, args, kwargs) -> None:
            embeddings, cache = args[0], kwargs.get("cache", args[3] if len(args) > 3 else None)
            B, T, _ = embeddings.shape
            keys = (cache.length if cache is not None else 0) + T
            self.flops += 2 * B * T * L * (12 * C * C + 2 * keys * C)

        self.handle = self.model.gpt.register_forward_pre_hook(count, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def matmul_rate(repeats: int = 5) -> float:
    """FLOP/s of one large float32 matrix product on this machine (best of ``repeats``: the least disturbed)."""
    a, b = torch.randn(2048, 512), torch.randn(512, 2048)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048 * 512 * 2048 / best


def prefixes(model: TrajectoryModel, envs: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    contexts = list(rng.uniform(-3, 3, size=(envs, CONTEXT, HOPPER.dim)).astype(np.float32))
    return make_prefix(model, contexts, rng.uniform(-3, 3, size=(envs, HOPPER.obs_dim)), CONTEXT)


def tokens_of(model: TrajectoryModel, values: Tensor) -> Tensor:
    """Bin indices of a sequence of values starting at an observation's first dimension."""
    dims = torch.arange(values.shape[-1]) % model.layout.dim
    unit = (model.clamp(values, dims) - model.low[dims]) / (model.high[dims] - model.low[dims])
    edges = torch.cat([h.edges for h in model.heads])[dims, 1:-1]
    return (unit.unsqueeze(-1) >= edges).sum(-1)


def timed(fn, *args) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn(*args)``."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - start_wall, time.process_time() - start_cpu


def machine_state() -> dict:
    return {"load_average": os.getloadavg()[0], "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}  # fmt: skip


def same_search_as_released(config: PlannerConfig) -> bool:
    """Whether rlgen's planner returns the released planner's plan when every token is greedy (no sampling to
    tell the two random streams apart), in float64, at a horizon longer than the window."""
    model, rng = make_model().double(), np.random.default_rng(1)
    config = replace(config, action_top_p=0.0, beam_width=8, horizon=2 * CONTEXT)
    prefix, pad = prefixes(model, 1, rng)
    plan = beam_plan(model, prefix, pad, config)
    released = official_beam_plan(model, OfficialForward(model), tokens_of(model, prefix), config,
                                  torch.Generator().manual_seed(0), greedy_actions=True)  # fmt: skip
    return bool(torch.equal(tokens_of(model, plan.transitions[0].double().flatten()).view_as(released), released))


def bench_setting(name: str, model: TrajectoryModel, args: argparse.Namespace, command: str, rate: float) -> dict:
    config = SETTINGS[name]
    same = same_search_as_released(config)
    forward = OfficialForward(model)
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    cache = planning_cache(model, config)  # as an evaluation's policy: one cache, its storage reused by every call
    with torch.no_grad():  # warm-up: first-call allocations
        beam_plan(model, *prefixes(model, args.envs, rng), config, generator, cache)
    times: dict[str, list[tuple[float, float]]] = {"official": [], "rlgen": [], "rlgen_envs": []}
    loads, flops = [os.getloadavg()[0]], 0.0
    for _ in range(args.rounds):
        one, pad = prefixes(model, 1, rng)
        times["official"].append(timed(official_beam_plan, model, forward, tokens_of(model, one), config, generator))
        with FlopCounter(model) as counter:
            times["rlgen"].append(timed(beam_plan, model, one, pad, config, generator, cache))
        flops = counter.flops
        many, many_pad = prefixes(model, args.envs, rng)
        times["rlgen_envs"].append(timed(beam_plan, model, many, many_pad, config, generator, cache))
        loads.append(os.getloadavg()[0])
    (official, official_cpu), (rlgen, rlgen_cpu), (batched, batched_cpu) = (
        np.mean(times[k], axis=0) for k in ("official", "rlgen", "rlgen_envs")
    )
    batched, batched_cpu = batched / args.envs, batched_cpu / args.envs
    rate = max(rate, matmul_rate())
    row = {"settings": name, "command": command, **asdict(config), **machine_state(), "load_averages": loads,
           "official_s": official, "official_cpu_s": official_cpu, "rlgen_s": rlgen, "rlgen_cpu_s": rlgen_cpu,
           "speedup": official / rlgen, "speedup_cpu": official_cpu / rlgen_cpu,
           "envs": args.envs, "rlgen_envs_s_per_env": batched, "rlgen_envs_cpu_s_per_env": batched_cpu,
           "speedup_envs": official / batched, "rlgen_gflop": flops / 1e9, "matmul_gflops": rate / 1e9,
           "flop_floor_s": flops / rate, "rounds": args.rounds, "same_search_greedy_float64": same}  # fmt: skip
    print(f"{name}: official {official:.2f} s ({official_cpu:.2f} CPU), rlgen {rlgen:.3f} s ({rlgen_cpu:.3f} CPU): "
          f"{row['speedup']:.1f}x ({row['speedup_cpu']:.1f}x CPU); {args.envs} envs: {batched:.3f} s per env "
          f"({row['speedup_envs']:.1f}x); rlgen {flops / 1e9:.1f} GFLOP, floor {row['flop_floor_s']:.3f} s at "
          f"{rate / 1e9:.0f} GFLOP/s; load {loads[0]:.1f}-{loads[-1]:.1f}; same search as released: {same}",
          flush=True)  # fmt: skip
    return row


THREAD_POLICIES = {"1 thread (rlgen's planner)": (1, None), "2 threads, OpenMP default wait": (2, None),
                   "2 threads, OMP_WAIT_POLICY=PASSIVE": (2, "PASSIVE")}  # fmt: skip
THREAD_PROBE = """
import time, numpy as np, torch
from scripts.bench_tt import SETTINGS, make_model, prefixes
from rlgen.algos.tt import beam_plan
torch.set_num_threads({threads})
plan = beam_plan.__wrapped__.__wrapped__  # without the planner's own thread setting
model, rng = make_model(), np.random.default_rng(0)
with torch.inference_mode():
    plan(model, *prefixes(model, 1, rng), SETTINGS["beam32-h5"])
    start = time.perf_counter()
    for _ in range({rounds}):
        plan(model, *prefixes(model, 1, rng), SETTINGS["beam32-h5"])
print((time.perf_counter() - start) / {rounds})
"""


def thread_policies(rounds: int) -> dict[str, float]:
    """Seconds per beam32-h5 planning call of rlgen's planner under each thread policy, each in a fresh process
    (OpenMP reads its wait policy when it loads)."""
    times = {}
    for name, (threads, wait) in THREAD_POLICIES.items():
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
        env.update({"OMP_WAIT_POLICY": wait} if wait else {})
        code = THREAD_PROBE.format(threads=threads, rounds=rounds)
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        times[name] = float(result.stdout.split()[-1])
        print(f"{name}: {times[name]:.3f} s per planning call (load {os.getloadavg()[0]:.1f})", flush=True)
    return times


#: the highest 1-minute load average (2 cores) at which a row counts as measured on a quiet machine
QUIET_LOAD = 1.5


def machine_load(row: dict) -> str:
    """``quiet`` when the load stayed at or below :data:`QUIET_LOAD` through the row's rounds, else ``loaded``."""
    return "quiet" if max(row["load_averages"]) <= QUIET_LOAD else "loaded"


def row_key(row: dict) -> tuple[str, str]:
    return row["settings"], machine_load(row)


def write_report(rows: list[dict], machine: dict, out: Path) -> None:
    """Write the table; rows of settings (and machine load: quiet or loaded) not run this time are kept from an
    earlier run (with its command)."""
    path = out.with_suffix(".json")
    earlier = json.loads(path.read_text())["rows"] if path.exists() else []
    keys = {row_key(r) for r in rows}
    rows = [r for r in earlier if row_key(r) not in keys and "official_s" in r] + rows
    rows.sort(key=lambda r: (machine_load(r) != "quiet", list(SETTINGS).index(r["settings"])))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    lines = [
        "# Trajectory Transformer planning: rlgen's cached windowed search vs the released planner",
        "",
        *(f"Command: `{command}`  " for command in dict.fromkeys(r["command"] for r in rows)),
        f"Machine: {machine['processor']}, {machine['platform']}, {machine['cpus']} CPUs, torch {machine['torch']}. "
        "Provisional: the machine is shared, so the load average is recorded at the start and after every round.  ",
        "Same random-weight GPT (Hopper dimensions, 100 uniform bins, 4 layers, 4 heads, width 128), n_expand 2, "
        "4 context transitions and a 4-transition window, cdf_act 0.6; the released planner is the script's "
        "transcription of trajectory/search/core.py (recompute and crop, per token). Times are the mean seconds per "
        "planning call of one environment (wall / CPU), interleaved round by round; N envs is rlgen planning N "
        "environments in one call (seconds per environment). 'same search': with every token greedy (k = 1, so "
        "no random stream), in float64, beam 8 and a horizon of twice the window, rlgen's plan equals the "
        "transcribed released planner's token for token. The FLOP floor is the cached search's counted "
        "arithmetic (GPT trunk) at the best rate of one large matmul on this machine during the run.",
        "",
        f"A row is quiet when the load average stayed at or below {QUIET_LOAD} through it. 'rlgen / floor': how "
        "many times the FLOP floor rlgen's planner takes.",
        "",
        "| settings | machine | beam | horizon | threads / OMP_WAIT_POLICY | load avg | released s | rlgen s | "
        "speedup (CPU) | N envs: rlgen s per env | speedup per env | rlgen GFLOP | FLOP floor s | rlgen / floor | "
        "same search |",
        "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['settings']} | {machine_load(r)} | {r['beam_width']} | {r['horizon']} | {r['torch_threads']} / "
            f"{r['OMP_WAIT_POLICY'] or 'unset'} | {min(r['load_averages']):.1f} - {max(r['load_averages']):.1f} | "
            f"{r['official_s']:.2f} / {r['official_cpu_s']:.2f} | {r['rlgen_s']:.3f} / {r['rlgen_cpu_s']:.3f} | "
            f"**{r['speedup']:.1f}x** ({r['speedup_cpu']:.1f}x) | N={r['envs']}: {r['rlgen_envs_s_per_env']:.3f} | "
            f"**{r['speedup_envs']:.1f}x** | {r['rlgen_gflop']:.1f} | {r['flop_floor_s']:.3f} | "
            f"{r['rlgen_cpu_s'] / r['flop_floor_s']:.1f}x | "
            f"{r['same_search_greedy_float64']} |"
        )
    threads_path = out.with_name(out.name + "_threads.json")
    if threads_path.exists():
        probe = json.loads(threads_path.read_text())
        lines += ["", f"Thread policies (rlgen's planner, beam32-h5, one environment, each in a fresh process; "
                  f"`{probe['command']}`, load average {probe['load_average_end']:.1f} at its end):", "",
                  "| policy | s per planning call |", "| --- | ---: |"]  # fmt: skip
        lines += [f"| {name} | {seconds:.3f} |" for name, seconds in probe["s_per_planning_call"].items()]
    write_text_atomic(out.with_suffix(".md"), with_notes(out.with_suffix(".md"), "\n".join(lines) + "\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--rounds", type=int, default=2, help="interleaved planning calls of each planner")
    parser.add_argument("--envs", type=int, default=10, help="environments rlgen plans in one call")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/tt_planning"))
    parser.add_argument("--thread-policies", action="store_true", help="only time rlgen's planner (beam32-h5) "
                        "under each thread policy, each in a fresh process; written to <out>_threads.json")  # fmt: skip
    args = parser.parse_args(argv)
    if args.thread_policies:
        times = {"command": "python " + " ".join(sys.argv), "load_average_end": None,
                 "s_per_planning_call": thread_policies(args.rounds)}  # fmt: skip
        times["load_average_end"] = os.getloadavg()[0]
        write_text_atomic(args.out.with_name(args.out.name + "_threads.json"), json.dumps(times, indent=2) + "\n")
        write_report([], json.loads(args.out.with_suffix(".json").read_text())["machine"], args.out)
        return 0
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "torch": torch.__version__}  # fmt: skip
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    model = make_model()
    print(f"machine: {machine}; {machine_state()}", flush=True)
    rows = []
    with planning_threads():
        rate = matmul_rate()  # both planners under the thread policy rlgen's planner sets for itself
        for name in args.settings:
            rows.append(bench_setting(name, model, args, command, rate))
            write_report(rows, machine, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
