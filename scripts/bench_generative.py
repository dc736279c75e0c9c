"""Benchmark: uniform categorical vs DLML vs AdaCat heads on image and audio generation (AdaCat paper, Tables 2-3).

Image (Table 2's shape): a gated PixelCNN on scikit-learn's 8x8 digits (17 levels), test bits/dim at matched
output-parameter counts P per pixel (uniform k = P bins, DLML K = P/3 components, AdaCat k = P/2 bins).
Audio (Table 3's shape): a WaveNet on espeak-ng speech at 8 kHz, 8-bit mu-law levels, held-out bits/dim at
P = 30 and 256 (uniform over the mu-law levels is the mu-law categorical). Every head is scored on the exact
probability mass of the discrete level, so the numbers compare across heads. Runs go through the same
``rlgen generative train`` machinery (recipes ``agents/generative/image.yaml`` and ``audio.yaml`` with the
bench's budget as overrides) and run one after another; results are saved after every run and a rerun skips
the runs already in the JSON.

    python scripts/bench_generative.py                        # both tables, seeds 0 1
    python scripts/bench_generative.py --only image --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch
from bench_notes import with_notes

from rlgen.runs import load_recipe, start_run

ROOT = Path(__file__).resolve().parents[1]
HEADS = ("uniform", "dlml", "adacat")
IMAGE_PARAMS = (6, 12, 18)
AUDIO_PARAMS = (30, 256)
#: the bench's settings on top of the recipes, sized for minutes per run on a loaded 2-core CPU
IMAGE_BUDGET = ["train.batch_size=64", "train.eval_every=0", "train.log_every=100", "agent.channels=32",
                "agent.layers=4", "agent.features=64"]  # fmt: skip
AUDIO_BUDGET = ["train.batch_size=8", "train.eval_every=0", "train.log_every=50", "agent.window=1024"]
DEFAULT_STEPS = {"image": 1500, "audio": 500}
MAX_SAMPLE_BYTES = 200_000


def head_size_override(head: str, params: int) -> str:
    """The head option giving ``params`` outputs per element (rounded down where the head needs a multiple)."""
    if head == "uniform":
        return f"agent.head.num_bins={params}"
    if head == "adacat":
        return f"agent.head.num_bins={params // 2}"
    if head == "dlml":
        return f"agent.head.num_mixtures={params // 3}"
    raise ValueError(f"no parameter matching for head {head!r}")


def steps_of(row: dict) -> int:
    """Gradient steps of a recorded run (read from its overrides)."""
    return int(next(o.partition("=")[2] for o in row["overrides"] if o.startswith("train.steps=")))


def key_of(row: dict) -> tuple:
    return row["kind"], row["head"], row["params"], steps_of(row), row["seed"]


def run_case(kind: str, head: str, params: int, steps: int, seed: int, runs_root: Path) -> dict:
    budget = IMAGE_BUDGET if kind == "image" else AUDIO_BUDGET
    overrides = [*budget, f"train.steps={steps}", f"train.checkpoint_every={steps}", f"train.seed={seed}",
                 f"agent.head={head}", head_size_override(head, params)]  # fmt: skip
    if kind == "audio":  # sampling is step by step: one second from AdaCat's seed 0, a tenth of a second otherwise
        overrides.append(f"agent.sample_seconds={1.0 if (head, seed) == ('adacat', 0) else 0.1}")
    recipe = load_recipe(kind, generative=True)  # agent.head=<head> starts that head from its defaults
    run_dir = runs_root / f"{kind}-{head}-p{params}-steps{steps}-seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a run killed before it finished is rerun from scratch
    tick = time.perf_counter()
    run, result = start_run(recipe, overrides=overrides, run_dir=run_dir, device="cpu", progress=False)
    seconds = time.perf_counter() - tick
    train_bpd = [row["train/bits_per_dim"] for row in run.read_metrics() if "train/bits_per_dim" in row]
    return {"kind": kind, "head": head, "params": params, "seed": seed, "overrides": overrides,
            "test_bits_per_dim": result.last_scalars["eval/bits_per_dim"], "final_train_bits_per_dim": train_bpd[-1],
            "seconds": round(seconds, 1), "run_dir": str(run.path)}  # fmt: skip


def summarise(rows: list[dict], kind: str, params: int, steps: int, head: str) -> str:
    values = [r["test_bits_per_dim"] for r in rows if key_of(r)[:4] == (kind, head, params, steps)]
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.3f}{spread} (n={len(values)})"


def write_tables(results: dict, out: Path) -> None:
    rows = results["runs"]
    lines = ["# Generative models: uniform categorical vs DLML vs AdaCat heads", "",
             "Commands: " + "; ".join(f"`{c}` ({load})" for c, load in results["commands"].items()) + "  ",
             f"Machine: {results['machine']}  ",
             f"Seeds: {', '.join(map(str, results['seeds']))}; mean ± standard deviation over seeds of the test "
             "negative log-likelihood in bits/dim (lower is better), every head scored on the exact probability "
             "mass of the discrete level.", "",
             "## Image: gated PixelCNN on scikit-learn's 8x8 digits, 17 levels (shape of AdaCat Table 2)", "",
             f"Settings: {' '.join(IMAGE_BUDGET)} (1,437 train / 360 test images). P = outputs per pixel: uniform "
             "k = P bins, DLML K = P/3 logistics, AdaCat k = P/2 adaptive bins.", "",
             "| P | steps | uniform | DLML | AdaCat |", "| ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for params, steps in sorted({key_of(r)[2:4] for r in rows if r["kind"] == "image"}):
        lines.append(f"| {params} | {steps} | " + " | ".join(summarise(rows, "image", params, steps, h) for h in HEADS)
                     + " |")  # fmt: skip
    lines += [
        "",
        "## Audio: WaveNet on espeak-ng speech, 8 kHz, 8-bit mu-law (shape of AdaCat Table 3)",
        "",
        f"Settings: {' '.join(AUDIO_BUDGET)}; 2 stacks of dilations 1..64 (receptive field 256 samples); "
        "voices en-us and en-gb+f3, 20 train / 4 held-out sentences each. The uniform head over the mu-law "
        "levels is the mu-law categorical; DLML at P = 256 has 85 logistics (255 outputs).",
        "",
        "| conditional | P | steps | held-out NLL (mu-law 256), bits/dim |",
        "| --- | ---: | ---: | ---: |",
    ]
    names = {"uniform": "uniform categorical (mu-law levels)", "dlml": "DLML", "adacat": "AdaCat"}
    for params, steps in sorted({key_of(r)[2:4] for r in rows if r["kind"] == "audio"}):
        for head in HEADS:
            lines.append(f"| {names[head]} | {params} | {steps} | {summarise(rows, 'audio', params, steps, head)} |")
    lines += ["", "Wall time per run (s): " + ", ".join(
        f"{r['kind']}-{r['head']}-P{r['params']}-{steps_of(r)}steps-seed{r['seed']} {r['seconds']:.0f}"
        for r in rows)]  # fmt: skip
    for name in ("image_samples", "audio_samples"):
        if results.get(name):
            lines.append(f"\nSamples: `{results[name]}`")
    (out / "generative.md").write_text(with_notes(out / "generative.md", "\n".join(lines) + "\n"))


def keep_samples(results: dict, kind: str, out: Path) -> None:
    """Copy the samples of the longest-trained seed-0 AdaCat run (largest P among those) into benchmarks/ if
    small, else point to them under runs/."""
    match = [r for r in results["runs"] if (r["kind"], r["head"], r["seed"]) == (kind, "adacat", 0)]
    if not match:
        return
    best = max(match, key=lambda r: (steps_of(r), r["params"]))
    source = next(Path(best["run_dir"]).glob("samples.*"))
    if source.stat().st_size <= MAX_SAMPLE_BYTES:
        target = out / f"generative_{kind}_samples{source.suffix}"
        shutil.copyfile(source, target)
        results[f"{kind}_samples"] = str(target.relative_to(ROOT))
    else:
        results[f"{kind}_samples"] = str(source)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["image", "audio"], help="run one of the two tables")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, help="gradient steps per run (default: image 1500, audio 500)")
    parser.add_argument("--params", type=int, nargs="+", help="output-parameter counts P (default: all of the kind)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_generative")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = args.out / "generative.json"
    results = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    command = " ".join(["python scripts/bench_generative.py", *sys.argv[1:]])
    load = f"1-min load {os.getloadavg()[0]:.1f} at start"
    results.setdefault("commands", {})
    results["machine"] = (f"{platform.machine()}, {os.cpu_count()} CPUs shared with other jobs, "
                          f"torch {torch.__version__}, 1 torch thread, Python {platform.python_version()}")  # fmt: skip
    kinds = [args.only] if args.only else ["image", "audio"]
    for kind in kinds:
        steps = args.steps or DEFAULT_STEPS[kind]
        for params in args.params or (IMAGE_PARAMS if kind == "image" else AUDIO_PARAMS):
            for seed in args.seeds:
                for head in HEADS:
                    if any(key_of(r) == (kind, head, params, steps, seed) for r in results["runs"]):
                        continue
                    row = run_case(kind, head, params, steps, seed, args.runs)
                    results["runs"].append(row)
                    # the invocations that added runs (a rerun of the same command replaces its entry)
                    results["commands"][command] = load
                    results["seeds"] = sorted({r["seed"] for r in results["runs"]})
                    print(f"{kind} {head} P={params} {steps} steps seed {seed}: "
                          f"{row['test_bits_per_dim']:.4f} bits/dim ({row['seconds']:.0f} s)", flush=True)  # fmt: skip
                    keep_samples(results, kind, args.out)
                    save(results, args.out)
    if results["runs"]:
        save(results, args.out)
    return 0


def save(results: dict, out: Path) -> None:
    """Write generative.json (atomically) and generative.md."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "generative.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out / "generative.json")
    write_tables(results, out)


if __name__ == "__main__":
    sys.exit(main())
