"""The one training loop every agent uses: sample, update, log, evaluate, checkpoint; resume after a kill."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rlgen.train.agent import BatchSampler, Learner
from rlgen.train.checkpoint import (
    capture_rng,
    checkpoint_path,
    latest_checkpoint,
    load_agent_state,
    load_checkpoint,
    restore_rng,
    save_best_checkpoint,
    save_checkpoint,
)
from rlgen.train.config import TrainConfig
from rlgen.train.parallel import Replicas, rank_generator, rank_state, shard_size
from rlgen.train.run_dir import MetricsLogger, RunDir

#: the most characters of the progress bar's postfix (the latest training scalars)
POSTFIX_CHARS = 60
#: scalars the postfix shows first, when an agent logs them
POSTFIX_FIRST = ("loss", "episode_return")
#: ``evaluate(learner, step)`` scores the learner (in its environment, on held-out data) and returns scalars to log
#: (``eval/...``).
Evaluator = Callable[[Learner, int], dict[str, float]]


def seed_everything(seed: int) -> None:
    """Seed torch and python's ``random`` (numpy randomness comes from explicit Generators): call it before
    building an agent so that its initial weights depend on the seed only."""
    torch.manual_seed(seed)
    random.seed(seed)


class Interrupted(KeyboardInterrupt):
    """Training was stopped by SIGINT or SIGTERM (``signum``) after ``step``, whose checkpoint is ``checkpoint``.

    A ``KeyboardInterrupt``, so whatever ends a program on Ctrl-C ends it the same way on SIGTERM.
    """

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        super().__init__(f"{signal.Signals(signum).name} at step {step}; its checkpoint is {checkpoint}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint


@contextmanager
def _caught_stop_signals() -> Iterator[list[int]]:
    """While the block runs, SIGINT and SIGTERM only append their number to the yielded list, so that the loop
    can finish its step and checkpoint it; a second signal acts as usual (Ctrl-C twice stops at once).

    Signals a process ignores (SIGINT of a background job) stay ignored; off the main thread, where python
    cannot set handlers, nothing changes.
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    previous = {s: h for s, h in previous.items() if h not in (signal.SIG_IGN, None)}

    def note(signum: int, frame: Any) -> None:
        caught.append(signum)
        for number, handler in previous.items():
            signal.signal(number, handler)

    for number in previous:
        signal.signal(number, note)
    try:
        yield caught
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def postfix(means: dict[str, float]) -> str:
    """The progress bar's postfix: the scalars of :data:`POSTFIX_FIRST`, then the others in the agent's order, as
    many as fit in :data:`POSTFIX_CHARS` (``loss=0.123, episode_return=57.2, q=3.1``)."""
    names = sorted(means, key=lambda name: name.split("/")[-1] not in POSTFIX_FIRST)  # stable: the rest keep order
    text = ""
    for name in names:
        item = f"{name.split('/')[-1]}={means[name]:.3g}"
        if text and len(text) + 2 + len(item) > POSTFIX_CHARS:
            break
        text = f"{text}, {item}" if text else item
    return text


@dataclass
class FitResult:
    """What :func:`fit` did: the step it started from (0, or the checkpoint resumed) and the last step, both as
    ``train.steps`` counts them.

    ``update_seconds`` is the wall time spent in sampling and gradient updates during this call (evaluation and
    checkpoints excluded); it is not logged, so metrics stay identical across a kill and resume. ``best_score``
    and ``best_step`` are the best evaluation of the whole run by ``fit``'s ``best_by`` (``None`` without one).
    """

    start_step: int
    step: int
    last_scalars: dict[str, float]
    update_seconds: float = 0.0
    best_score: float | None = None
    best_step: int | None = None


def _better(score: float, best: float, higher_is_better: bool) -> bool:
    return score > best if higher_is_better else score < best


def _crossed(before: int, now: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, now]``."""
    return now // every > before // every


def fit(
    agent: Learner,
    sampler: BatchSampler,
    config: TrainConfig,
    run: RunDir,
    evaluate: Evaluator | None = None,
    progress: bool = True,
    resume: tuple[Path, dict[str, Any]] | None = None,
    label: str | None = None,
    replicas: Replicas | None = None,
    best_by: str | None = None,
    higher_is_better: bool = True,
) -> FitResult:
    """Train ``agent`` until it has done ``config.steps`` steps as :meth:`Learner.steps_done` counts them
    (gradient steps; environment steps for online agents), on batches from ``sampler``. Logging, evaluation and
    checkpoint intervals count the same steps.

    If ``run`` already holds a checkpoint, training continues from the newest one (or from ``resume``, a
    checkpoint's path and its :func:`~rlgen.train.checkpoint.load_checkpoint` state, when the caller has read it
    already): the agent, the optimisers, every random generator and the running means are restored, so the run
    ends with the same numbers as one that was never interrupted. SIGINT or SIGTERM ends the step under way,
    checkpoints it and raises :class:`Interrupted`. Evaluation runs under a forked torch RNG so it never perturbs
    training. ``label`` names the progress bar (default: the run folder's name).

    With ``replicas`` (data-parallel processes, e.g. from :func:`rlgen.scale.distributed_training`) each process draws
    ``batch_size / world_size`` samples from a generator of its own and the gradients are averaged; the logged
    scalars are means over the processes, and only the writer (rank 0) logs, evaluates and writes checkpoints,
    which hold every process's generators.

    :param best_by: an evaluation scalar (e.g. ``eval/score``): the agent of its best value so far is kept in
        ``checkpoints/best.pt``; ``higher_is_better`` says which way is best.
    """
    replicas = replicas or Replicas()
    shard = shard_size(config.batch_size, replicas)
    rng = rank_generator(config.seed, replicas)
    sums: dict[str, float | torch.Tensor] = {}
    count = 0
    updates = 0
    best: dict[str, float] = {}  # {"score", "step"} of the best evaluation so far
    if resume is None and (newest := latest_checkpoint(run.checkpoints)) is not None:
        resume = newest, load_checkpoint(newest)
    if resume is not None:
        path, state = resume
        load_agent_state(agent, state, path, f"run {run.path}")
        restore_rng(rank_state(state.get("replica_rng", [state["rng"]]), replicas, f"checkpoint {path}"), rng)
        trainer = state["trainer"]
        updates, sums, count = trainer.get("updates", state["step"]), dict(trainer["sums"]), trainer["count"]
        best = dict(trainer.get("best", {}))
    start = done = agent.steps_done(updates)
    replicas.attach(agent)
    writer = replicas.is_writer
    logger = MetricsLogger(run, start_step=start) if writer else None
    last: dict[str, float] = {}
    update_seconds = 0.0
    bar = tqdm(total=config.steps, initial=start, unit="step", desc=label or run.path.name,
               disable=not (progress and writer))  # fmt: skip
    with _caught_stop_signals() as stop:
        try:
            while done < config.steps:
                tick = time.perf_counter()
                scalars = agent.update(sampler.sample(shard, rng))
                update_seconds += time.perf_counter() - tick
                for name, value in scalars.items():
                    value = value.detach() if isinstance(value, torch.Tensor) else value
                    sums[name] = sums.get(name, 0.0) + value
                count += 1
                updates += 1
                before, done = done, agent.steps_done(updates)
                bar.update(done - before)
                final = done >= config.steps
                if _crossed(before, done, config.log_every) or final:
                    means = {f"train/{k}": float(v) / count for k, v in replicas.mean(sums).items()}
                    if logger is not None:
                        logger.log(done, means)
                    last.update(means)
                    sums, count = {}, 0
                    bar.set_postfix_str(postfix(means), refresh=False)
                evaluating = (config.eval_every and _crossed(before, done, config.eval_every)) or final
                if writer and evaluate is not None and evaluating:
                    with torch.random.fork_rng(devices=[]):
                        results = evaluate(agent, done)
                    logger.log(done, results)  # type: ignore[union-attr]
                    last.update(results)
                    bar.write(f"step {done}: " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
                    score = float(results.get(best_by, np.nan)) if best_by is not None else np.nan
                    if np.isfinite(score) and (not best or _better(score, best["score"], higher_is_better)):
                        best = {"score": score, "step": done}
                        save_best_checkpoint(run.checkpoints, done, agent.state_dict(), score)
                # once: a signal arriving below is handled after the next step; every process stops at the same one
                stopping = replicas.any(bool(stop))
                if _crossed(before, done, config.checkpoint_interval) or final or stopping:
                    rngs = replicas.gather(capture_rng(rng))
                    # the means over processes: a resumed process continues from them, and means are linear
                    trainer_state = {"updates": updates, "sums": {k: float(v) for k, v in replicas.mean(sums).items()},
                                     "count": count, "best": best}  # fmt: skip
                    saved = checkpoint_path(run.checkpoints, done)
                    if logger is not None and rngs is not None:
                        logger.flush()  # metrics up to the checkpoint are on disk before it is
                        payload = {"agent": agent.state_dict(), "rng": rngs[0], "trainer": trainer_state}
                        if replicas.world_size > 1:
                            payload["replica_rng"] = rngs
                        saved = save_checkpoint(run.checkpoints, done, payload, keep=config.keep_checkpoints)
                if stopping:
                    # a process the signal did not reach stops because another one was signalled
                    raise Interrupted(stop[0] if stop else signal.SIGTERM, done, saved)
        finally:
            bar.close()
            if logger is not None:
                logger.close()
    return FitResult(start_step=start, step=done, last_scalars=last, update_seconds=update_seconds,
                     best_score=best.get("score"), best_step=int(best["step"]) if best else None)  # fmt: skip
