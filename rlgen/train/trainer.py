"""The one training loop every agent uses: sample, update, log, evaluate, checkpoint; resume after a kill."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from rlgen.train.agent import BatchSampler, Learner
from rlgen.train.checkpoint import capture_rng, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from rlgen.train.config import TrainConfig
from rlgen.train.run_dir import MetricsLogger, RunDir

#: ``evaluate(learner, step)`` scores the learner (in its environment, on held-out data) and returns scalars to log
#: (``eval/...``).
Evaluator = Callable[[Learner, int], dict[str, float]]


def seed_everything(seed: int) -> None:
    """Seed torch and python's ``random`` (numpy randomness comes from explicit Generators): call it before
    building an agent so that its initial weights depend on the seed only."""
    torch.manual_seed(seed)
    random.seed(seed)


@dataclass
class FitResult:
    """What :func:`fit` did: the step it started from (0, or the checkpoint resumed) and the last step.

    ``update_seconds`` is the wall time spent in sampling and gradient updates during this call (evaluation and
    checkpoints excluded); it is not logged, so metrics stay identical across a kill and resume.
    """

    start_step: int
    step: int
    last_scalars: dict[str, float]
    update_seconds: float = 0.0


def fit(
    agent: Learner,
    sampler: BatchSampler,
    config: TrainConfig,
    run: RunDir,
    evaluate: Evaluator | None = None,
    progress: bool = True,
) -> FitResult:
    """Train ``agent`` for ``config.steps`` gradient steps on batches from ``sampler``.

    If ``run`` already holds a checkpoint, training continues from the newest one: the agent, the optimisers,
    every random generator and the running means are restored, so the run ends with the same numbers as one
    that was never interrupted. Evaluation runs under a forked torch RNG so it never perturbs training.
    """
    rng = np.random.default_rng(config.seed)
    sums: dict[str, float | torch.Tensor] = {}
    count = 0
    start = 0
    resume_from = latest_checkpoint(run.checkpoints)
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        agent.load_state_dict(state["agent"])
        restore_rng(state["rng"], rng)
        start, sums, count = state["step"], dict(state["trainer"]["sums"]), state["trainer"]["count"]
    logger = MetricsLogger(run, start_step=start)
    last: dict[str, float] = {}
    update_seconds = 0.0
    bar = tqdm(total=config.steps, initial=start, unit="step", desc=run.path.name, disable=not progress)
    try:
        for step in range(start + 1, config.steps + 1):
            tick = time.perf_counter()
            scalars = agent.update(sampler.sample(config.batch_size, rng))
            update_seconds += time.perf_counter() - tick
            for name, value in scalars.items():
                value = value.detach() if isinstance(value, torch.Tensor) else value
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            bar.update(1)
            final = step == config.steps
            if step % config.log_every == 0 or final:
                means = {f"train/{k}": float(v) / count for k, v in sums.items()}
                logger.log(step, means)
                last.update(means)
                sums, count = {}, 0
                bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in means.items()}, refresh=False)
            if evaluate is not None and ((config.eval_every and step % config.eval_every == 0) or final):
                with torch.random.fork_rng(devices=[]):
                    results = evaluate(agent, step)
                logger.log(step, results)
                last.update(results)
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
            if step % config.checkpoint_every == 0 or final:
                logger.flush()  # metrics up to the checkpoint are on disk before it is
                payload = {
                    "agent": agent.state_dict(),
                    "rng": capture_rng(rng),
                    "trainer": {"sums": {k: float(v) for k, v in sums.items()}, "count": count},
                }
                save_checkpoint(run.checkpoints, step, payload, keep=config.keep_checkpoints)
    finally:
        bar.close()
        logger.close()
    return FitResult(start_step=start, step=max(start, config.steps), last_scalars=last, update_seconds=update_seconds)
