"""The Trajectory Transformer's training loss: all dimensions' conditionals computed together give the loss and the
gradients that one head call per token gives, and tokens are embedded by the bins that hold them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlgen.algos.tt import TrajectoryModel, TransitionLayout, TTModelConfig
from rlgen.heads import head_config


@pytest.mark.parametrize("head", ["uniform", "quantile", "adacat"])
def test_loss_and_gradients_equal_one_head_call_per_token(head: str) -> None:
    torch.manual_seed(0)
    layout, B, L = TransitionLayout(obs_dim=2, act_dim=1), 4, 3
    D = layout.dim
    data = np.random.default_rng(0).normal(size=(300, D)).astype(np.float32)
    config = TTModelConfig(head_config(head, num_bins=7), sequence_length=L, n_layer=1, n_head=2, n_embd=16)
    model = TrajectoryModel(config, layout, data.min(0), data.max(0))
    model.fit_bins(data)
    model.eval()  # no dropout: both sides see the same features
    with torch.no_grad():  # random head weights, so that each dimension's conditional differs from the others'
        for h in model.heads:
            h.proj.weight.normal_(0.0, 0.5)
    rows = torch.as_tensor(data[: B * L].reshape(B, L, D))
    rows[0, 1, 0] = 10.0  # beyond the data's range: clamped into the box
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 2] = mask[3, 1:] = False
    weights = torch.rand(D) + 0.5

    loss, per_dim = model.loss(rows, mask, weights)

    tokens = model.clamp(rows).flatten(1)
    features = model.features(tokens[:, :-1])  # token i - 1's features predict token i
    nll_sum, weighted, count = torch.zeros(D), torch.tensor(0.0), torch.zeros(D)
    for b in range(B):
        for i in range(1, L * D):
            step, d = divmod(i, D)
            if mask[b, step]:
                h = model.heads[d]
                nll = -h.training_log_prob(h(features[b, i - 1]), tokens[b, i : i + 1])
                nll_sum = nll_sum + F.one_hot(torch.tensor(d), D) * nll.detach()
                weighted = weighted + weights[d] * nll
                count[d] += 1
    reference = weighted / count.sum()
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(per_dim, nll_sum / count, rtol=1e-5, atol=1e-5)
    params = [p for p in model.parameters() if p.requires_grad]
    for got, want in zip(torch.autograd.grad(loss, params), torch.autograd.grad(reference, params), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("head", ["uniform", "quantile"])
def test_tokens_are_embedded_by_the_bin_holding_them(head: str) -> None:
    torch.manual_seed(0)
    layout, N = TransitionLayout(obs_dim=2, act_dim=1), 7
    data = np.random.default_rng(0).normal(size=(300, layout.dim)).astype(np.float32)
    config = TTModelConfig(head_config(head, num_bins=N), sequence_length=3, n_layer=1, n_head=2, n_embd=16)
    model = TrajectoryModel(config, layout, data.min(0), data.max(0))
    model.fit_bins(data)
    values = torch.as_tensor(data[:20]).view(4, -1)
    values[0, 0] = float(data[:, 0].max())  # the top edge: in the last bin
    dims = torch.arange(values.shape[1]) % layout.dim
    unit = (values - model.low[dims]) / (model.high[dims] - model.low[dims])
    inner = model.heads[0].edges[0, 1:-1].clone()
    inner[N // 2] = unit[1, 0]  # a value exactly on an edge: in the bin above it
    model.heads[0].edges[0, 1:-1] = inner.sort().values
    edges = [model.heads[d].edges[0, 1:-1] for d in dims.tolist()]
    bins = torch.stack([(unit[:, t, None] >= inner).sum(-1) for t, inner in enumerate(edges)], 1)
    torch.testing.assert_close(model.embed(values, dims), model.token_embedding(dims * N + bins), rtol=0, atol=0)
