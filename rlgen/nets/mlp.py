"""A plain multilayer perceptron body: Linear -> [LayerNorm] -> activation -> [Dropout], repeated."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}


class MLP(nn.Module):
    """Feature extractor ``(..., in_features) -> (..., out_features)``; ``out_features`` is the last width.

    :param in_features: size of the input's last axis.
    :param hidden: widths of the hidden layers; empty gives the identity (``out_features == in_features``).
    :param activation: one of :data:`ACTIVATIONS`.
    :param layer_norm: LayerNorm after every Linear, before the activation.
    :param dropout: dropout probability after every activation (0 disables it).
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        layer_norm: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if in_features < 1:
            raise ValueError(f"in_features must be positive, got {in_features}")
        if any(w < 1 for w in hidden):
            raise ValueError(f"hidden widths must be positive, got {list(hidden)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = in_features
        for out in hidden:
            layers.append(nn.Linear(width, out))
            if layer_norm:
                layers.append(nn.LayerNorm(out))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = out
        self.net = nn.Sequential(*layers)
        self.in_features = in_features
        self.out_features = width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@torch.no_grad()
def orthogonal_init_(module: nn.Module, gain: float) -> None:
    """Orthogonal weights scaled by ``gain`` and zero biases for every ``nn.Linear`` inside ``module``.

    The initialisation of the policy-gradient literature (Saxe et al. 2014; SB3's and CleanRL's actor-critics):
    ``sqrt(2)`` for ReLU/tanh hidden layers, a small gain such as 0.01 for a policy's output layer so that every
    action starts almost equally likely, 1 for a value output.

    :param module: a layer or a network of layers, initialised in place.
    :param gain: scale of the orthogonal matrices.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=gain)
            if layer.bias is not None:
                layer.bias.zero_()
