"""The one launcher: start, resume and evaluate the run of any agent (above rlgen.algos and rlgen.generative).

d3rlpy-style: a recipe (``agents/<name>.yaml``) fills typed configs, :func:`start_run` builds the agent and
:func:`rlgen.train.fit` trains it; ``rlgen train``, ``rlgen imitate`` and ``rlgen generative train`` are thin
shells around it.

>>> from rlgen.runs import resume_run, start_run
>>> run, result = start_run("bc-dlml", "hopper-medium", overrides=["train.steps=10000"])
>>> run, result = start_run("image", overrides=["agent.head=dlml"])     # agents/generative/image.yaml
>>> run, result = resume_run(run.path, ["train.steps=20000"])
"""

from rlgen.runs.launch import (
    RunConfig,
    act_with,
    check_dataset_task,
    default_run_dir,
    evaluate_agent,
    load_agent,
    load_training_data,
    resume_run,
    start_run,
)
from rlgen.runs.recipes import (
    ALGOS,
    Recipe,
    acts,
    agents_root,
    get_algo,
    list_recipes,
    load_plugins,
    load_recipe,
    recipe_from_dict,
    register_agent,
)

__all__ = [
    "ALGOS",
    "Recipe",
    "RunConfig",
    "act_with",
    "acts",
    "agents_root",
    "check_dataset_task",
    "default_run_dir",
    "evaluate_agent",
    "get_algo",
    "list_recipes",
    "load_plugins",
    "load_agent",
    "load_recipe",
    "load_training_data",
    "recipe_from_dict",
    "register_agent",
    "resume_run",
    "start_run",
]
