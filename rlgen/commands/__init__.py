"""Sub-commands of the ``rlgen`` CLI.

Each module exposes ``add_parser(subparsers)``, which adds its sub-command and sets ``run=<callable(args)>``
as the parser default. Register a new module by adding it to :data:`COMMAND_MODULES`.
"""

from rlgen.commands import data, demo, evaluate, generative, heads, imitate, plot, sweep, train

COMMAND_MODULES = [demo, train, imitate, evaluate, plot, data, heads, generative, sweep]
