"""Running policies in task environments: vectorised evaluation with D4RL-scale scores, and episode videos.

>>> from rlgen.rollout import evaluate
>>> result = evaluate(policy, load_task("hopper"), episodes=10, seed=0)   # policy: obs (n, d) -> actions
>>> result.score_mean, result.score_se
"""

from rlgen.rollout.evaluation import EvalResult, Policy, evaluate, feedback, standard_error
from rlgen.rollout.video import record_video, video_supported

__all__ = ["EvalResult", "Policy", "evaluate", "feedback", "record_video", "standard_error", "video_supported"]
