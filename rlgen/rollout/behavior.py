"""Behaviour policies: small self-contained MLP policy files that regenerate the datasets of a task.

A policy file is a numpy ``.npz`` archive (no pickle, no Stable-Baselines3 needed to load it) holding:

- ``meta``: a JSON string: format name and version, activation, discrete flag, dimensions, observation
  normalisation constants (``clip_obs``, ``epsilon``) and free-form ``info`` (env id, training steps, ...);
- ``w0, b0, w1, b1, ...``: the hidden layers of the policy MLP, then ``w_out, b_out``: the action layer
  (Gaussian mean or categorical logits), all float32 in ``torch.nn.Linear`` layout ``(out, in)``;
- ``log_std`` (continuous only): the state-independent log standard deviation of the Gaussian;
- ``action_low, action_high`` (continuous only): bounds actions are clipped to;
- ``obs_mean, obs_var`` (float64, optional): VecNormalize statistics; observations become
  ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)`` before the MLP.

The forward pass uses the same float64 normalisation, float32 cast and ``torch.nn.functional.linear`` calls as
Stable-Baselines3's ``ActorCriticPolicy``, so deterministic actions equal ``model.predict(obs, True)`` exactly.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlgen.rollout.evaluation import Policy, run_episodes
from rlgen.tasks import ReturnStats, TaskSpec

FORMAT = "rlgen.behavior"
VERSION = 1
_ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh}


class BehaviorPolicyError(ValueError):
    """A behaviour-policy file is missing, corrupt or inconsistent."""


@dataclass
class BehaviorPolicy:
    """An MLP policy with optional observation normalisation; see the module docstring for the file layout."""

    hidden: list[tuple[np.ndarray, np.ndarray]]  # (weight (out, in), bias (out,)) per hidden layer, float32
    out_weight: np.ndarray  # (act_dim or num_actions, last hidden), float32
    out_bias: np.ndarray
    activation: str  # "relu" or "tanh"
    discrete: bool
    log_std: np.ndarray | None = None  # (act_dim,) float32, continuous only
    action_low: np.ndarray | None = None  # (act_dim,) float32, continuous only
    action_high: np.ndarray | None = None
    obs_mean: np.ndarray | None = None  # (obs_dim,) float64
    obs_var: np.ndarray | None = None
    clip_obs: float = 10.0
    epsilon: float = 1e-8
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self, "BehaviorPolicy")
        self._torch_layers = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in self.hidden]
        self._torch_out = (torch.from_numpy(self.out_weight), torch.from_numpy(self.out_bias))

    @property
    def obs_dim(self) -> int:
        return int((self.hidden[0][0] if self.hidden else self.out_weight).shape[1])

    @property
    def act_dim(self) -> int:
        """Action dimensions (1 for a discrete policy)."""
        return 1 if self.discrete else int(self.out_weight.shape[0])

    @property
    def num_actions(self) -> int | None:
        return int(self.out_weight.shape[0]) if self.discrete else None

    # ------------------------------------------------------------------------------------------ acting

    def forward(self, obs: np.ndarray) -> np.ndarray:
        """Gaussian mean (continuous) or logits (discrete) for a batch ``obs`` of shape ``(n, obs_dim)``."""
        obs = np.asarray(obs)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs must have shape (n, {self.obs_dim}), got {obs.shape}")
        if self.obs_mean is not None:
            # float64 here, float32 below: the same arithmetic as VecNormalize followed by SB3's obs_as_tensor.
            obs = np.clip((obs - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon), -self.clip_obs, self.clip_obs)
        act = _ACTIVATIONS[self.activation]
        with torch.no_grad():
            x = torch.as_tensor(obs).float()
            for w, b in self._torch_layers:
                x = act(F.linear(x, w, b))
            return F.linear(x, *self._torch_out).numpy()

    def act(self, obs: np.ndarray, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
        """Actions for a batch of observations ``(n, obs_dim)``.

        Continuous: ``(n, act_dim)`` float32, the Gaussian mean (deterministic) or mean + exp(log_std) * noise,
        clipped to the action bounds. Discrete: ``(n,)`` int64 (the batch shape a vector env expects), the
        argmax (deterministic) or a draw from the softmax of the logits. All randomness comes from ``rng``.
        """
        out = self.forward(obs)
        n = out.shape[0]
        if self.discrete:
            if deterministic:
                return out.argmax(axis=1).astype(np.int64)
            logits = out.astype(np.float64)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
            idx = (cdf < rng.random((n, 1))).sum(axis=1)
            return np.minimum(idx, out.shape[1] - 1).astype(np.int64)  # guard against cdf[-1] < 1 by rounding
        if not deterministic:
            noise = rng.standard_normal(out.shape).astype(np.float32)
            out = out + np.exp(self.log_std) * noise
        return np.clip(out, self.action_low, self.action_high)

    # ------------------------------------------------------------------------------------------ conversion

    @classmethod
    def from_sb3(cls, model: Any, vec_normalize: Any = None, info: dict[str, Any] | None = None) -> BehaviorPolicy:
        """Export the actor of an SB3 ``PPO``/``A2C`` ``MlpPolicy`` (and its ``VecNormalize`` statistics).

        Supports Box (unsquashed diagonal Gaussian, no gSDE) and Discrete action spaces, flat Box observations.
        """
        from gymnasium import spaces
        from stable_baselines3.common.torch_layers import FlattenExtractor

        policy = model.policy
        if not isinstance(policy.observation_space, spaces.Box) or len(policy.observation_space.shape) != 1:
            raise ValueError(f"only flat Box observation spaces are supported, got {policy.observation_space}")
        extractor = getattr(policy, "pi_features_extractor", policy.features_extractor)
        if type(extractor) is not FlattenExtractor:
            raise ValueError(f"only the MlpPolicy FlattenExtractor is supported, got {type(extractor).__name__}")
        if getattr(policy, "use_sde", False) or getattr(policy, "squash_output", False):
            raise ValueError("gSDE / squashed-output policies are not supported")
        act_names = {torch.nn.ReLU: "relu", torch.nn.Tanh: "tanh"}
        if policy.activation_fn not in act_names:
            raise ValueError(f"unsupported activation {policy.activation_fn.__name__}; use ReLU or Tanh")
        modules = list(policy.mlp_extractor.policy_net)
        linears = [m for m in modules if isinstance(m, torch.nn.Linear)]
        if len(modules) != 2 * len(linears) or not all(
            isinstance(a, torch.nn.Linear) and isinstance(b, policy.activation_fn)
            for a, b in zip(modules[::2], modules[1::2], strict=True)
        ):
            raise ValueError(f"policy_net must alternate Linear and {policy.activation_fn.__name__}: {modules}")

        def np32(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().astype(np.float32, copy=True)

        space = policy.action_space
        kwargs: dict[str, Any] = {}
        if isinstance(space, spaces.Discrete):
            discrete = True
        elif isinstance(space, spaces.Box) and len(space.shape) == 1:
            discrete = False
            kwargs.update(
                log_std=np32(policy.log_std),
                action_low=space.low.astype(np.float32),
                action_high=space.high.astype(np.float32),
            )
        else:
            raise ValueError(f"only Discrete or flat Box action spaces are supported, got {space}")
        if vec_normalize is not None and vec_normalize.norm_obs:
            kwargs.update(
                obs_mean=np.asarray(vec_normalize.obs_rms.mean, dtype=np.float64).copy(),
                obs_var=np.asarray(vec_normalize.obs_rms.var, dtype=np.float64).copy(),
                clip_obs=float(vec_normalize.clip_obs),
                epsilon=float(vec_normalize.epsilon),
            )
        return cls(
            hidden=[(np32(m.weight), np32(m.bias)) for m in linears],
            out_weight=np32(policy.action_net.weight),
            out_bias=np32(policy.action_net.bias),
            activation=act_names[policy.activation_fn],
            discrete=discrete,
            info=dict(info or {}),
            **kwargs,
        )

    # ------------------------------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the policy to ``path`` atomically (temporary file in the same folder, then ``os.replace``)."""
        path = Path(path)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "activation": self.activation,
            "discrete": self.discrete,
            "n_hidden": len(self.hidden),
            "normalize_obs": self.obs_mean is not None,
            "clip_obs": self.clip_obs,
            "epsilon": self.epsilon,
            "info": self.info,
        }
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta, sort_keys=True))}
        for i, (w, b) in enumerate(self.hidden):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        arrays["w_out"], arrays["b_out"] = self.out_weight, self.out_bias
        optional = ("log_std", "action_low", "action_high", "obs_mean", "obs_var")
        arrays.update({k: getattr(self, k) for k in optional if getattr(self, k) is not None})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BehaviorPolicy:
        """Read a policy file written by :meth:`save`; any problem raises ``BehaviorPolicyError`` naming it."""
        path = Path(path)
        try:
            data = path.read_bytes()
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except FileNotFoundError as e:
            raise BehaviorPolicyError(f"{path}: behaviour-policy file not found") from e
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise BehaviorPolicyError(f"{path}: not a readable behaviour-policy .npz file ({e})") from e
        try:
            meta = json.loads(str(arrays.pop("meta")))
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise BehaviorPolicyError(
                    f"{path}: expected format {FORMAT!r} version {VERSION}, "
                    f"got {meta.get('format')!r} version {meta.get('version')!r}"
                )
            n_hidden = int(meta["n_hidden"])
            hidden = [(arrays.pop(f"w{i}"), arrays.pop(f"b{i}")) for i in range(n_hidden)]
            return cls(
                hidden=hidden,
                out_weight=arrays.pop("w_out"),
                out_bias=arrays.pop("b_out"),
                activation=meta["activation"],
                discrete=bool(meta["discrete"]),
                log_std=arrays.pop("log_std", None),
                action_low=arrays.pop("action_low", None),
                action_high=arrays.pop("action_high", None),
                obs_mean=arrays.pop("obs_mean", None),
                obs_var=arrays.pop("obs_var", None),
                clip_obs=float(meta["clip_obs"]),
                epsilon=float(meta["epsilon"]),
                info=dict(meta.get("info", {})),
            )
        except BehaviorPolicyError:
            raise
        except KeyError as e:
            raise BehaviorPolicyError(f"{path}: missing entry {e} in behaviour-policy file") from e
        except (ValueError, TypeError) as e:
            raise BehaviorPolicyError(f"{path}: invalid behaviour-policy file: {e}") from e


def _validate(p: BehaviorPolicy, where: str) -> None:
    """Check shapes, dtypes and finiteness so a bad file fails at load time, not mid-rollout."""

    def fail(msg: str) -> None:
        raise ValueError(f"{where}: {msg}")

    if p.activation not in _ACTIVATIONS:
        fail(f"activation must be one of {sorted(_ACTIVATIONS)}, got {p.activation!r}")
    mats = [*p.hidden, (p.out_weight, p.out_bias)]
    for i, (w, b) in enumerate(mats):
        name = "output layer" if i == len(p.hidden) else f"hidden layer {i}"
        if not (isinstance(w, np.ndarray) and isinstance(b, np.ndarray)):
            fail(f"{name}: weights must be numpy arrays")
        if w.dtype != np.float32 or b.dtype != np.float32:
            fail(f"{name}: weights must be float32, got {w.dtype}/{b.dtype}")
        if w.ndim != 2 or b.shape != (w.shape[0],):
            fail(f"{name}: weight (out, in) and bias (out,) shapes do not match: {w.shape}, {b.shape}")
        if i > 0 and w.shape[1] != mats[i - 1][0].shape[0]:
            fail(f"{name}: input size {w.shape[1]} != previous layer's output size {mats[i - 1][0].shape[0]}")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            fail(f"{name}: weights contain NaN or inf")
    n_out = p.out_weight.shape[0]
    cont = ("log_std", "action_low", "action_high")
    if p.discrete:
        if any(getattr(p, k) is not None for k in cont) or n_out < 2:
            fail("a discrete policy has >= 2 logits and no log_std / action bounds")
    else:
        for k in cont:
            v = getattr(p, k)
            if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.shape != (n_out,):
                fail(f"{k} must be a float32 array of shape ({n_out},)")
            if k == "log_std" and not np.isfinite(v).all():
                fail("log_std contains NaN or inf")
        if not np.all(p.action_low <= p.action_high):
            fail("action_low must be <= action_high")
    if (p.obs_mean is None) != (p.obs_var is None):
        fail("obs_mean and obs_var must be given together")
    if p.obs_mean is not None:
        obs_dim = (p.hidden[0][0] if p.hidden else p.out_weight).shape[1]
        for k in ("obs_mean", "obs_var"):
            v = getattr(p, k)
            if not isinstance(v, np.ndarray) or v.dtype != np.float64 or v.shape != (obs_dim,):
                fail(f"{k} must be a float64 array of shape ({obs_dim},)")
            if not np.isfinite(v).all():
                fail(f"{k} contains NaN or inf")
        if np.any(p.obs_var < 0) or not (p.clip_obs > 0 and p.epsilon >= 0):
            fail("obs_var must be >= 0, clip_obs > 0 and epsilon >= 0")


def behavior_actions(
    task: TaskSpec, policy: BehaviorPolicy | None, rng: np.random.Generator, deterministic: bool = False
) -> Policy:
    """A batched policy for ``task``: ``policy``'s actions, or uniformly random actions in the task's declared
    action space when ``policy`` is None; all randomness comes from ``rng``.

    A policy whose observation size or action kind does not fit the task raises ``ValueError``.
    """
    if policy is not None:
        if (policy.obs_dim, policy.discrete) != (task.obs_dim, task.discrete):
            raise ValueError(
                f"policy (obs_dim={policy.obs_dim}, discrete={policy.discrete}) does not fit task {task.name} "
                f"(obs_dim={task.obs_dim}, discrete={task.discrete})"
            )
        return lambda obs: policy.act(obs, rng, deterministic)
    if task.discrete:
        return lambda obs: rng.integers(0, task.num_actions, size=len(obs))
    low, high = task.action_bounds()
    return lambda obs: rng.uniform(low, high, size=(len(obs), task.act_dim)).astype(np.float32)


def switching_actions(task: TaskSpec, policies: Sequence[BehaviorPolicy], rng: np.random.Generator) -> Policy:
    """A batched policy that acts, at every step and in every environment, as one of ``policies`` picked
    uniformly at random, sampling that one's stochastic action; all randomness comes from ``rng``."""
    if not policies:
        raise ValueError("switching_actions needs at least one policy")
    acts = [behavior_actions(task, policy, rng) for policy in policies]

    def act(obs: np.ndarray) -> np.ndarray:
        candidates = np.stack([a(obs) for a in acts])  # (policies, envs, act_dim)
        chosen = rng.integers(0, len(acts), size=len(obs))
        return candidates[chosen, np.arange(len(obs))]

    return act


def episode_returns(
    task: TaskSpec, policy: BehaviorPolicy | None, episodes: int, seed: int, deterministic: bool = False
) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes run side by side, episode ``i`` reset with seed ``seed + i``.

    ``policy=None`` acts uniformly at random. Actions draw from ``np.random.default_rng(seed)``, so the same
    arguments give the same returns on the same machine.
    """
    actions = behavior_actions(task, policy, np.random.default_rng(seed), deterministic)
    return run_episodes(actions, task, episodes, seed, num_envs=episodes)[0]


def measure_returns(
    task: TaskSpec, policy: BehaviorPolicy | None, episodes: int, seed: int, deterministic: bool = False
) -> ReturnStats:
    """Mean and std of :func:`episode_returns`, recorded with the seed and episode count that produced them."""
    r = episode_returns(task, policy, episodes, seed, deterministic)
    return ReturnStats(mean=float(r.mean()), std=float(r.std()), episodes=episodes, seed=seed)
