"""rlgen: offline RL and imitation learning built on one family of generative heads."""

__version__ = "0.1.0"
