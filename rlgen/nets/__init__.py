"""Network bodies shared by rlgen's models; they map inputs to features and know nothing of heads or data."""

from rlgen.nets.mlp import ACTIVATIONS, MLP, orthogonal_init_

__all__ = ["ACTIVATIONS", "MLP", "orthogonal_init_"]
