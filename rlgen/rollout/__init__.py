"""Environments: making them from task files, vectorised evaluation with D4RL-scale scores, episode videos,
the online agents' collector (:mod:`.collector`), behaviour policies (:mod:`.behavior`) and dataset generation
(:mod:`.generate`). The data layer below never steps an environment; everything that does lives here.

>>> from rlgen.rollout import evaluate, make_env
>>> result = evaluate(policy, load_task("hopper"), episodes=10, seed=0)   # policy: obs (n, d) -> actions
>>> result.score_mean, result.score_se
"""

from rlgen.rollout.envs import MujocoWarning, make_env, make_vector_env
from rlgen.rollout.evaluation import EvalResult, Policy, evaluate, feedback, run_episodes, standard_error
from rlgen.rollout.video import record_video, video_supported

__all__ = [
    "EvalResult",
    "MujocoWarning",
    "Policy",
    "evaluate",
    "feedback",
    "make_env",
    "make_vector_env",
    "record_video",
    "run_episodes",
    "standard_error",
    "video_supported",
]
