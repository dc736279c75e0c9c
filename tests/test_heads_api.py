"""The heads' public manners: bad input, bounds, autocast, devices, the registry."""

from __future__ import annotations

import pytest
import torch

from rlgen.heads import HEAD_CONFIGS, DiagGaussian, make_head

KINDS = sorted(HEAD_CONFIGS)
BOX_LOW, BOX_HIGH = torch.tensor([-2.0]), torch.tensor([3.0])  # asymmetric: the centre is not 0


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_target_dimension_is_a_clear_error(kind: str) -> None:
    dist = make_head(kind, 4, 3, low=-1.0, high=1.0)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="last dimension 3"):
        dist.log_prob(torch.zeros(2, 4))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rows", [4, 1])  # 1 would broadcast against the 5 feature rows if it were not checked
def test_loss_refuses_targets_of_another_batch_shape(kind: str, rows: int) -> None:
    head = make_head(kind, 8, 3, low=-1.0, high=1.0)
    with pytest.raises(ValueError, match=r"target must have shape \(5, 3\).*got \(" + str(rows)):
        head.loss(torch.randn(5, 8), torch.rand(rows, 3))
    assert torch.isfinite(head.loss(torch.randn(5, 8), torch.rand(5, 3) * 2 - 1))


@pytest.mark.parametrize("kind", KINDS)
def test_nan_target_is_a_clear_error(kind: str) -> None:
    dist = make_head(kind, 4, 2, low=-1.0, high=1.0)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        dist.log_prob(torch.tensor([[0.0, 0.1], [float("nan"), 0.0]]))


@pytest.mark.parametrize("kind", ["gaussian", "uniform", "quantile", "adacat", "dlml"])
def test_target_outside_the_box_is_an_error_and_round_off_is_clamped(kind: str) -> None:
    dist = make_head(kind, 4, 2, low=-1.0, high=[1.0, 2.0])(torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"outside the head's box at index \(0, 1\)"):
        dist.log_prob(torch.tensor([[0.0, 2.5]]))
    inside = dist.log_prob(torch.tensor([[0.0, 2.0]]))
    nudged = dist.log_prob(torch.tensor([[0.0, 2.0 + 1e-6]]))
    assert torch.isfinite(nudged) and torch.allclose(inside, nudged)


def test_unsquashed_gaussian_scores_targets_outside_the_box() -> None:
    head = make_head("gaussian", 4, 1, low=-1.0, high=1.0, squash=False)
    assert torch.isfinite(head(torch.randn(1, 4)).log_prob(torch.tensor([[3.0]])))


def test_wrong_feature_size_is_a_clear_error() -> None:
    head = make_head("adacat", 8, 2, low=0.0, high=1.0)
    with pytest.raises(ValueError, match="last dimension 8"):
        head(torch.randn(3, 7))


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [(1.0, 1.0, "low < high"), ([0.0, 0.0, 0.0], 1.0, "2 entries"), (float("nan"), 1.0, "finite")],
)
def test_bad_bounds_are_rejected(low, high, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_head("uniform", 4, 2, low=low, high=high)


def test_unknown_head_and_bad_options_name_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="adacat"):
        make_head("flow", 4, 2, low=0.0, high=1.0)
    with pytest.raises(ValueError, match="num_mixtures"):
        make_head("uniform", 4, 2, low=0.0, high=1.0, num_mixtures=3)


def test_sampling_controls_are_checked() -> None:
    dist = make_head("adacat", 4, 2, low=0.0, high=1.0)(torch.randn(1, 4))
    with pytest.raises(ValueError, match="temperature"):
        dist.sample(temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        dist.sample(top_p=1.5)
    gaussian = make_head("gaussian", 4, 2, low=0.0, high=1.0)(torch.randn(1, 4))
    with pytest.raises(ValueError, match="no bins"):
        gaussian.sample(top_p=0.5)


@pytest.mark.parametrize("kind", KINDS)
def test_bf16_autocast_gives_float32_results_close_to_fp32(kind: str) -> None:
    head = make_head(kind, 16, 3, low=-1.0, high=1.0)
    features = torch.randn(32, 16)
    x = head(features).sample()
    reference = head(features).log_prob(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dist = head(features)
        log_prob = dist.log_prob(x)
        sample = dist.sample()
    assert log_prob.dtype == torch.float32 and sample.dtype == torch.float32
    # bf16 keeps ~3 significant digits of the head's outputs.
    assert torch.allclose(log_prob, reference, rtol=0.05, atol=0.3)


def test_head_parameters_and_buffers_round_trip_through_state_dict(tmp_path) -> None:
    for kind in KINDS:
        head = make_head(kind, 6, 2, low=[-1.0, 0.0], high=[1.0, 5.0])
        torch.save(head.state_dict(), tmp_path / f"{kind}.pt")
        clone = make_head(kind, 6, 2, low=0.0, high=1.0)
        clone.load_state_dict(torch.load(tmp_path / f"{kind}.pt"))
        features, target = torch.randn(4, 6), torch.tensor([[0.5, 4.0]]).expand(4, 2)
        assert torch.equal(clone(features).log_prob(target), head(features).log_prob(target))


def test_validation_can_be_switched_off_per_distribution() -> None:
    dist = DiagGaussian(
        torch.zeros(1, 1),
        torch.zeros(1, 1),
        torch.tensor([-1.0]),
        torch.tensor([1.0]),
        squash=True,
        validate_args=False,
    )
    assert torch.isfinite(dist.log_prob(torch.tensor([[5.0]])))  # clamped to the edge, not rejected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", KINDS)
def test_cuda_follows_the_input_device(kind: str) -> None:
    head = make_head(kind, 8, 2, low=-1.0, high=1.0).cuda()
    dist = head(torch.randn(5, 8, device="cuda"))
    x = dist.sample()
    assert x.device.type == "cuda" and dist.log_prob(x).device.type == "cuda"
    cpu = make_head(kind, 8, 2, low=-1.0, high=1.0)
    cpu.load_state_dict({k: v.cpu() for k, v in head.state_dict().items()})
    features = torch.randn(5, 8)
    assert torch.allclose(cpu(features).log_prob(x.cpu()), head(features.cuda()).log_prob(x).cpu(), atol=1e-4)


@pytest.mark.parametrize("state_dependent_std", [True, False])
def test_env_unit_gaussian_is_the_normal_with_the_raw_outputs_in_env_units(state_dependent_std: bool) -> None:
    """Outputs (m, s) of an ``env_units`` head mean N(centre + m, exp(s)^2) on the box's own axis."""
    head = make_head("gaussian", 4, 1, BOX_LOW, BOX_HIGH, squash=False, state_dependent_std=state_dependent_std,
                     env_units=True)  # fmt: skip
    offset, log_std = torch.randn(6, 1), 0.5 * torch.randn(6, 1)
    if state_dependent_std:
        dist = head.distribution(torch.stack([offset, log_std], -1))
    else:
        log_std = log_std[:1].expand(6, 1)
        with torch.no_grad():
            head.log_std.copy_(log_std[0])
        dist = head.distribution(offset.unsqueeze(-1))
    normal = torch.distributions.Normal((BOX_LOW + BOX_HIGH) / 2 + offset, log_std.exp())
    x = BOX_LOW - 1.0 + 7.0 * torch.rand(6, 1)  # beyond the box too: the support is the real line
    torch.testing.assert_close(dist.log_prob(x), normal.log_prob(x).sum(-1))
    torch.testing.assert_close(dist.entropy(), normal.entropy().sum(-1))
    torch.testing.assert_close(dist.mode(), normal.mean)
    torch.testing.assert_close(dist.std * (BOX_HIGH - BOX_LOW) / 2, normal.stddev)


def test_env_units_need_an_unsquashed_gaussian() -> None:
    with pytest.raises(ValueError, match="squash: false"):
        make_head("gaussian", 4, 1, BOX_LOW, BOX_HIGH, squash=True, env_units=True)


FREE_SCALES = {"num_mixtures": 3, "state_dependent_scale": False}
FREE_WIDTHS = {"num_bins": 11, "cells": 11, "state_dependent_widths": False}


@pytest.mark.parametrize(("kind", "options"), [("dlml", {"num_mixtures": 3}), ("dlml", {}), ("adacat", {}),
                                               ("uniform", {}), ("dlml", FREE_SCALES),
                                               ("adacat", FREE_WIDTHS)])  # fmt: skip
def test_spread_init_starts_every_state_centred_wide_and_off_the_edges(kind: str, options: dict) -> None:
    torch.manual_seed(0)
    head = make_head(kind, 8, 2, BOX_LOW, BOX_HIGH, init="spread", **options)
    dist = head(torch.randn(4000, 8).tanh())  # latents of a tanh MLP: the spread must not depend on them
    unit = (dist.sample() - BOX_LOW) / (BOX_HIGH - BOX_LOW)
    # As wide as a uniform over the box (std 0.29 of its width; SB3's clipped unit Gaussian: 0.36), centred.
    assert (unit.mean(0) - 0.5).abs().max() < 0.02
    assert ((unit.std(0) > 0.25) & (unit.std(0) < 0.36)).all(), unit.std(0)
    on_edges = ((unit < 0.002) | (unit > 0.998)).float().mean()
    assert on_edges < 0.12, on_edges  # SB3's Gaussian, clipped: 0.32
    torch.testing.assert_close(dist.mean, torch.full_like(dist.mean, 0.5), atol=0.1, rtol=0)  # box centre


def test_torch_init_is_the_default_and_leaves_the_output_layer_to_nn_linear() -> None:
    torch.manual_seed(0)
    default = make_head("dlml", 8, 2, -1.0, 1.0)
    torch.manual_seed(0)
    explicit = make_head("dlml", 8, 2, -1.0, 1.0, init="torch")
    torch.testing.assert_close(default.proj.bias, explicit.proj.bias)
    assert default.proj.weight.abs().max() > 0.1  # nn.Linear's uniform(+-1/sqrt(8)), not the spread's 0.01


@pytest.mark.parametrize(("kind", "options", "free", "outputs"), [
    ("dlml", {"num_mixtures": 3, "state_dependent_scale": False}, "log_scales", 6),
    ("adacat", {"num_bins": 5, "state_dependent_widths": False}, "width_logits", 5),
])  # fmt: skip
def test_free_spread_parameters_are_shared_by_every_input_and_learned(kind, options, free, outputs) -> None:
    # DLML's log-scales or AdaCat's bin widths as one parameter per dimension, like a Gaussian's free log-std.
    torch.manual_seed(0)
    head = make_head(kind, 8, 2, BOX_LOW, BOX_HIGH, **options)
    assert head.params_per_dim == outputs and getattr(head, free).shape == (2, outputs // (2 if kind == "dlml" else 1))
    features = torch.randn(6, 8)
    dist = head(features)
    shared = dist.log_scales if kind == "dlml" else dist.edges
    torch.testing.assert_close(shared, shared[:1].expand_as(shared))  # the same for every input
    (grad,) = torch.autograd.grad(head.loss(features, dist.sample()), getattr(head, free))
    assert grad.abs().sum() > 0
    loaded = make_head(kind, 8, 2, BOX_LOW, BOX_HIGH, **options)
    loaded.load_state_dict(head.state_dict())
    torch.testing.assert_close(loaded(features).log_prob(dist.mean), dist.log_prob(dist.mean))


def test_adacat_free_widths_start_at_the_data_marginal() -> None:
    torch.manual_seed(0)
    head = make_head("adacat", 8, 2, BOX_LOW, BOX_HIGH, num_bins=5, state_dependent_widths=False)
    head.fit_bins(BOX_LOW + (BOX_HIGH - BOX_LOW) * torch.rand(500, 2) ** 3)  # crowded near the low bound
    widths = head.width_logits.softmax(-1)
    assert (widths[:, 0] < widths[:, -1]).all()  # narrow bins where the data crowd
