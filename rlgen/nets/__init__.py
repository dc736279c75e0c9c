"""Network bodies shared by rlgen's models; they map inputs to features and know nothing of heads or data."""

from rlgen.nets.mlp import ACTIVATIONS, MLP

__all__ = ["ACTIVATIONS", "MLP"]
