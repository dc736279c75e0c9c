"""rlgen heads: fit every head to a bimodal conditional toy target and compare them.

A quick, self-contained look at the head family (no dataset or simulator needed): each head sits on the same
small MLP, learns p(y | x) for y = +-(0.5 + 0.3 x) + noise, and is scored by held-out NLL in nats on the
continuous scale (DLML's level masses are divided by the level width to compare as densities).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rlgen.commands.help import add_command

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from rlgen.heads import Head


def toy_batch(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``x ~ U[-1, 1]``; ``y`` is one of two branches ``+-(0.5 + 0.3 x)`` plus N(0, 0.05^2), clipped to [-1, 1]."""
    import torch

    x = torch.rand(n, 1, generator=generator) * 2 - 1
    branch = torch.randint(0, 2, (n, 1), generator=generator) * 2 - 1
    y = branch * (0.5 + 0.3 * x) + 0.05 * torch.randn(n, 1, generator=generator)
    return x, y.clamp(-1.0, 1.0)


def continuous_nll(head: Head, features: Tensor, y: Tensor) -> float:
    from rlgen.heads import DLMLHead

    log_p = head(features).log_prob(y)
    if isinstance(head, DLMLHead):
        log_p = log_p - math.log(2.0 / (head.num_classes - 1))
    return -log_p.mean().item()


def fit_head(kind: str, steps: int, seed: int) -> tuple[nn.Module, Head, float]:
    import torch
    from torch import nn
    from tqdm import tqdm

    from rlgen.heads import head_config

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
    head = head_config(kind).create(64, 1, low=-1.0, high=1.0)
    head.fit_to_data(toy_batch(10_000, generator)[1])
    optimizer = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=3e-3)
    for _ in tqdm(range(steps), desc=f"{kind:>8}", leave=False):
        x, y = toy_batch(256, generator)
        loss = head.loss(body(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    x_test, y_test = toy_batch(20_000, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        return body, head, continuous_nll(head, body(x_test), y_test)


def plot_densities(fitted: dict[str, tuple[nn.Module, Head, float]], path: Path) -> None:
    import matplotlib
    import torch

    from rlgen.heads import DLMLHead

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = torch.linspace(-1, 1, 801).unsqueeze(-1)
    conditions = (-0.8, 0.0, 0.8)
    fig, axes = plt.subplots(1, len(conditions), figsize=(13, 3.6), sharey=True)
    for ax, x_value in zip(axes, conditions, strict=True):
        features_in = torch.full((len(grid), 1), x_value)
        for kind, (body, head, nll) in fitted.items():
            with torch.no_grad():
                log_p = head(body(features_in)).log_prob(grid)
                if isinstance(head, DLMLHead):
                    log_p = log_p - math.log(2.0 / (head.num_classes - 1))
            ax.plot(grid.squeeze(-1), log_p.exp(), label=f"{kind} (NLL {nll:.2f})", lw=1.2)
        ax.set_title(f"p(y | x = {x_value})")
        ax.set_xlabel("y")
    axes[0].set_ylabel("density")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import torch

    from rlgen.heads import HEAD_CONFIGS, head_config

    torch.set_num_threads(1)
    kinds = args.heads or list(HEAD_CONFIGS)
    for kind in kinds:  # an unknown head fails before any fitting, listing the valid ones
        head_config(kind)
    fitted: dict[str, tuple[nn.Module, Head, float]] = {}
    print(f"{'head':>9} | held-out NLL (nats) | outputs/dim | seconds")
    for kind in kinds:
        start = time.perf_counter()
        fitted[kind] = fit_head(kind, args.steps, args.seed)
        head = fitted[kind][1]
        print(f"{kind:>9} | {fitted[kind][2]:19.3f} | {head.params_per_dim:11d} | {time.perf_counter() - start:7.1f}")
    plot_densities(fitted, args.plot)
    print(f"density plot written to {args.plot}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "heads", "fit every head to a bimodal toy target and plot the densities", __doc__)
    parser.add_argument("--heads", nargs="+", metavar="HEAD",
                        help="heads to fit, e.g. gaussian dlml (default: every registered head)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=1500, help="gradient steps per head (default: 1500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the weights (default: 0)")
    parser.add_argument("--plot", type=Path, default=Path("runs/heads/densities.png"),
                        help="where to save the plot (default: runs/heads/densities.png)")  # fmt: skip
    parser.set_defaults(run=run)
