"""``python -m rlgen``: the ``rlgen`` command line, also as ``torchrun ... -m rlgen train ...``."""

import sys

from rlgen.cli import main

sys.exit(main())
