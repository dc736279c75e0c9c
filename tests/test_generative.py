"""Generative models on rlgen heads: causality of the bodies, exact level likelihoods, training and resume."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
import yaml

from rlgen.cli import main
from rlgen.generative import (
    AudioConfig,
    AudioModel,
    AudioTask,
    ImageModel,
    ImageTask,
    LevelAgent,
    level_head,
    level_log_mass,
    level_log_probs,
    sample_levels,
    speech,
)
from rlgen.generative.audio import scored_windows
from rlgen.generative.media import image_grid, write_wav
from rlgen.heads import AdaCatHeadConfig, DLMLHeadConfig, UniformHeadConfig, head_config
from rlgen.nets.pixelcnn import GatedPixelCNN
from rlgen.nets.wavenet import WaveNet
from rlgen.runs import list_recipes, load_agent, load_recipe, resume_run, start_run
from rlgen.train import latest_checkpoint, load_checkpoint

# Every level head with a small output budget; the Gaussians cover both an exactly bounded and an open support.
HEAD_CASES = [
    ("uniform", {"num_bins": 6}),
    ("quantile", {"num_bins": 7}),
    ("adacat", {"num_bins": 5}),
    ("dlml", {"num_mixtures": 3}),
    ("gaussian", {}),
    ("gaussian", {"squash": False}),
]
TINY_IMAGE = ["agent.channels=8", "agent.layers=2", "agent.features=16", "agent.samples=4"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ bodies


def test_body_shapes():
    features = GatedPixelCNN(in_channels=1, channels=8, layers=3, kernel=3, out_features=5)(torch.randn(2, 1, 6, 7))
    assert features.shape == (2, 6, 7, 5)
    wavenet = WaveNet(channels=8, skip_channels=8, dilations=[1, 2, 4], kernel=2, out_features=5)
    assert wavenet(torch.randn(3, 1, 40)).shape == (3, 40, 5)
    assert wavenet.receptive_field == 2 + 7


def test_pixelcnn_is_causal_in_raster_order():
    torch.manual_seed(0)
    net = GatedPixelCNN(in_channels=1, channels=8, layers=3, kernel=3, out_features=4).double()
    height, width = 5, 6
    image = torch.randn(1, 1, height, width, dtype=torch.double, requires_grad=True)
    features = net(image)
    for i in range(height):
        for j in range(width):
            (grad,) = torch.autograd.grad(features[0, i, j].sum(), image, retain_graph=True)
            order = torch.arange(height * width).view(height, width)
            later_or_same = order >= i * width + j
            assert torch.all(grad[0, 0][later_or_same] == 0), f"pixel ({i}, {j}) sees itself or a later pixel"
            # and it does see its neighbours (the stacks are wired up): left, above, and above-right
            for di, dj in ((0, -1), (-1, 0), (-1, 1)):
                if 0 <= i + di and 0 <= j + dj < width:
                    assert grad[0, 0, i + di, j + dj] != 0, f"pixel ({i}, {j}) misses ({i + di}, {j + dj})"


def test_pixelcnn_perturbing_a_pixel_leaves_earlier_outputs_unchanged():
    torch.manual_seed(1)
    net = GatedPixelCNN(in_channels=1, channels=8, layers=4, kernel=5, out_features=4)
    image = torch.randn(2, 1, 6, 6)
    before = net(image).flatten(1, 2)
    for p in (0, 7, 20, 35):
        changed = image.clone().flatten(2)
        changed[:, :, p:] += torch.randn_like(changed[:, :, p:])
        after = net(changed.view_as(image)).flatten(1, 2)
        torch.testing.assert_close(after[:, : p + 1], before[:, : p + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(after[:, p + 1 :], before[:, p + 1 :]) or p == 35


def test_wavenet_is_causal():
    torch.manual_seed(2)
    net = WaveNet(channels=8, skip_channels=8, dilations=[1, 2, 4, 8], kernel=2, out_features=4).double()
    signal = torch.randn(1, 1, 50, dtype=torch.double, requires_grad=True)
    features = net(signal)
    for t in range(50):
        (grad,) = torch.autograd.grad(features[0, t].sum(), signal, retain_graph=True)
        assert torch.all(grad[0, 0, t:] == 0), f"step {t} sees itself or a later sample"
        seen = torch.nonzero(grad[0, 0]).flatten()
        if t > 0:  # it sees exactly its receptive field
            assert seen.min() == max(0, t - net.receptive_field) and seen.max() == t - 1
    changed = signal.detach().clone()
    changed[..., 30:] = torch.randn(20, dtype=torch.double)
    torch.testing.assert_close(net(changed)[:, :31], features.detach()[:, :31], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------ likelihood


@pytest.mark.parametrize(("kind", "options"), HEAD_CASES)
def test_level_masses_sum_to_one(kind, options):
    torch.manual_seed(3)
    head = level_head(head_config(kind, **options), 8, num_levels=17)
    dist = head(3.0 * torch.randn(4, 5, 8))
    log_probs = level_log_probs(dist, 17)
    assert log_probs.shape == (4, 5, 1, 17)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(4, 5, 1), rtol=0, atol=1e-4)
    levels = torch.randint(0, 17, (4, 5, 1))
    torch.testing.assert_close(level_log_mass(dist, levels, 17), log_probs.gather(-1, levels.unsqueeze(-1))[..., 0])


@pytest.mark.parametrize(("kind", "options"), [c for c in HEAD_CASES if c[0] != "dlml"])
def test_level_mass_integrates_the_density(kind, options):
    """The mass of an inner level equals a fine Riemann sum of the head's density over the level's bin."""
    torch.manual_seed(4)
    dist = level_head(head_config(kind, **options), 8, num_levels=9)(torch.randn(3, 8))
    for level in (2, 5):
        grid = level - 0.5 + (torch.arange(4000, dtype=torch.float32) + 0.5) / 4000
        density = dist.log_prob_per_dim(grid.view(-1, 1, 1).expand(-1, 3, 1)).exp()
        riemann = density.mean(0)[:, 0]
        mass = level_log_mass(dist, torch.full((3, 1), level), 9).exp()[:, 0]
        torch.testing.assert_close(mass, riemann, rtol=2e-3, atol=1e-6)


def test_uniform_head_with_one_bin_per_level_is_a_categorical():
    head = level_head(UniformHeadConfig(num_bins=17), 8, num_levels=17)
    features = torch.randn(6, 8)
    logits = head.proj(features)
    expected = torch.log_softmax(logits, -1)
    torch.testing.assert_close(level_log_probs(head(features), 17)[:, 0], expected, rtol=0, atol=1e-5)


def test_dlml_level_mass_is_its_log_prob():
    head = level_head(DLMLHeadConfig(num_mixtures=2), 8, num_levels=17)
    dist = head(torch.randn(5, 8))
    levels = torch.randint(0, 17, (5, 1))
    torch.testing.assert_close(level_log_mass(dist, levels, 17), dist.log_prob_per_dim(levels.float()))
    assert head.num_classes == 17  # whatever the config says: the levels are the data's


def test_level_gradients_are_finite_for_every_head():
    for kind, options in HEAD_CASES:
        head = level_head(head_config(kind, **options), 8, num_levels=5)
        levels = torch.arange(5).view(5, 1)  # includes both open-ended edge levels
        level_log_mass(head(10.0 * torch.randn(5, 8)), levels, 5).sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in head.parameters()), kind


def test_bad_levels_are_rejected():
    dist = level_head(UniformHeadConfig(num_bins=5), 4, num_levels=5)(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        level_log_mass(dist, torch.tensor([[5], [0]]), 5)
    with pytest.raises(ValueError, match="integer"):
        level_log_mass(dist, torch.zeros(2, 1), 5)


def test_sample_levels_follow_the_level_masses():
    head = level_head(AdaCatHeadConfig(num_bins=3), 4, num_levels=5)
    dist = head(torch.randn(1, 4).expand(20000, 4))
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_levels(dist, 5, generator=generator).flatten(), minlength=5).float() / 20000
    torch.testing.assert_close(counts, level_log_probs(dist, 5)[0, 0].exp(), rtol=0, atol=0.015)


# ------------------------------------------------------------------------------------------------ models


def test_image_model_shapes_and_sampling():
    model = ImageModel((8, 8), 17, DLMLHeadConfig(num_mixtures=2), channels=8, layers=2, features=16)
    levels = torch.randint(0, 17, (3, 8, 8))
    assert model(levels).batch_shape == (3, 8, 8)
    assert model.log_mass(levels).shape == (3, 8, 8)
    assert model.output_parameters() == 6
    images = model.sample(2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 8, 8) and images.dtype == torch.long
    assert 0 <= images.min() and images.max() <= 16


def test_audio_model_sampling_matches_its_likelihood_context():
    """Step-by-step sampling reruns only the receptive field: the log-mass of a sampled signal under one full
    pass equals what the sampler saw."""
    torch.manual_seed(5)
    model = AudioModel(16, UniformHeadConfig(num_bins=16), channels=8, skip_channels=8, dilations=(1, 2), features=8)
    signal = model.sample(2, 30, generator=torch.Generator().manual_seed(1))
    assert signal.shape == (2, 30) and 0 <= signal.min() and signal.max() <= 15
    full = model(signal)
    window = model.features(signal[:, 30 - model.receptive_field - 1 :])[:, -1]
    torch.testing.assert_close(model.head(window).log_masses, full.log_masses[:, -1], rtol=0, atol=1e-5)


def test_scored_windows_cover_every_sample_after_the_context_once():
    for length, context, span in ((100, 9, 16), (57, 10, 47), (10, 3, 100)):
        scored = [t for s, e in scored_windows(length, context, span) for t in range(s + context, e)]
        assert scored == list(range(context, length))


def _synthetic_audio_task(**changes) -> AudioTask:
    rate = 2000
    t = np.arange(6 * rate) / rate
    wave = 0.6 * np.sin(2 * np.pi * 110 * t) * np.sin(2 * np.pi * 0.7 * t) + 0.05 * np.sin(2 * np.pi * 370 * t)
    config = AudioConfig(channels=8, skip_channels=8, dilations=[1, 2, 4], features=16, window=128,
                         eval_span=512, sample_rate=rate, num_levels=64,
                         head=DLMLHeadConfig(num_mixtures=3), sample_seconds=0.01, **changes)  # fmt: skip
    return AudioTask(config, streams=(wave[: 5 * rate], wave[5 * rate :]))


def test_short_audio_training_lowers_held_out_bits_per_dim():
    torch.manual_seed(6)
    task = _synthetic_audio_task()
    model = task.build()
    before = task.evaluate(model)["eval/bits_per_dim"]
    learner = LevelAgent(model, lr=3e-3, grad_clip=1.0)
    batches, rng = task.batches(), np.random.default_rng(0)
    for _ in range(60):
        learner.update(batches.sample(8, rng))
    after = task.evaluate(model)["eval/bits_per_dim"]
    assert after < before - 0.5, (before, after)


def test_short_image_training_lowers_test_bits_per_dim(tmp_path):
    overrides = [*TINY_IMAGE, "agent.head=uniform", "agent.head.num_bins=17", "train.steps=80",
                 "train.eval_every=0", "train.log_every=20", "train.checkpoint_every=80"]  # fmt: skip
    recipe = load_recipe("image", generative=True).with_overrides(overrides)
    torch.manual_seed(recipe.train.seed)
    task = ImageTask(recipe.agent)
    untrained = task.evaluate(task.build())["eval/bits_per_dim"]
    run, result = start_run(recipe, run_dir=tmp_path / "run", progress=False, data=task)
    assert result.last_scalars["eval/bits_per_dim"] < untrained - 0.5
    assert (run.path / "samples.png").is_file() and any(run.path.glob("events.out.tfevents.*"))


def test_resume_matches_an_uninterrupted_run(tmp_path):
    common = [*TINY_IMAGE, "train.log_every=2", "train.checkpoint_every=3", "train.eval_every=3"]
    task = ImageTask(load_recipe("image", generative=True).with_overrides(common).agent)
    _, straight = start_run("image", overrides=[*common, "train.steps=6"], run_dir=tmp_path / "a", progress=False,
                            data=task)  # fmt: skip
    start_run("image", overrides=[*common, "train.steps=3"], run_dir=tmp_path / "b", progress=False, data=task)
    _, resumed = resume_run(tmp_path / "b", ["train.steps=6"], progress=False, data=task)
    assert resumed.start_step == 3 and resumed.step == 6
    assert resumed.last_scalars == straight.last_scalars
    state_a = load_checkpoint(latest_checkpoint(tmp_path / "a" / "checkpoints"))["agent"]["model"]
    state_b = load_checkpoint(latest_checkpoint(tmp_path / "b" / "checkpoints"))["agent"]["model"]
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    with pytest.raises(ValueError, match="only train.steps"):
        resume_run(tmp_path / "b", ["agent.lr=0.1"], progress=False, data=task)


def test_a_run_folder_in_the_old_spelling_resumes(tmp_path):
    """Generative runs once recorded ``kind`` / ``model`` (and, earlier, environment keys in ``train``)."""
    common = [*TINY_IMAGE, "train.checkpoint_every=2", "train.eval_every=0"]
    task = ImageTask(load_recipe("image", generative=True).with_overrides(common).agent)
    start_run("image", overrides=[*common, "train.steps=2"], run_dir=tmp_path / "run", progress=False, data=task)
    config = tmp_path / "run" / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    old = {"recipe": raw["recipe"], "kind": raw["algo"], "train": {**raw["train"], "eval_episodes": 10,
           "eval_seed": 7}, "model": raw["agent"]}  # fmt: skip
    config.write_text(yaml.safe_dump(old, sort_keys=False))
    _, resumed = resume_run(tmp_path / "run", ["train.steps=4"], progress=False, data=task)
    assert resumed.start_step == 2 and resumed.step == 4
    assert yaml.safe_load(config.read_text())["algo"] == "image"  # rewritten in today's spelling


# ------------------------------------------------------------------------------------------------ recipes, CLI, data


def test_recipes_parse_and_stay_out_of_the_agent_recipes():
    assert load_recipe("image", generative=True).algo == "image"
    assert load_recipe("audio", generative=True).agent.transform == "mulaw"
    assert not {"image", "audio"} & set(list_recipes())
    with pytest.raises(ValueError, match="agent.head.num_binz"):
        load_recipe("image", generative=True).with_overrides(["agent.head.num_binz=1"])
    with pytest.raises(ValueError, match="'train.' or 'agent.'"):  # every recipe spells its blocks train / agent
        load_recipe("image", generative=True).with_overrides(["model.head=dlml"])


def test_audio_cli_names_the_apt_command_without_espeak(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    assert main(["generative", "train", "audio", "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "apt-get install -y espeak-ng" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_mu_law_codes_round_trip_and_stay_within_half_a_level():
    codes = np.arange(256)
    np.testing.assert_array_equal(speech.quantize(speech.dequantize(codes)), codes)
    x = np.linspace(-1.0, 1.0, 10001)
    levels = speech.quantize(x, 256, "mulaw")
    assert levels.min() == 0 and levels.max() == 255 and np.all(np.diff(levels) >= 0)
    back = speech.dequantize(levels, 256, "mulaw")
    # half a level is 1/255 in the companded domain; in amplitude it scales with d|x|/dy = log(256) (1 + 255|x|) / 255
    slope = math.log(256) * (1 + 255 * np.maximum(np.abs(x), np.abs(back))) / 255
    assert np.all(np.abs(back - x) <= slope / 255 + 1e-6)
    linear = speech.dequantize(speech.quantize(x, 16, "linear"), 16, "linear")
    assert np.all(np.abs(linear - x) <= 1 / 15 + 1e-6)


def test_media_writers(tmp_path):
    grid = image_grid(np.random.default_rng(0).random((5, 8, 8)), columns=3, scale=2, gap=1)
    assert grid.shape == (2 * 17 + 1, 3 * 17 + 1) and grid.dtype == np.uint8
    samples = np.sin(np.linspace(0, 20, 800))
    rate, back = speech.read_wav(write_wav(tmp_path / "x.wav", samples, 8000))
    assert rate == 8000 and np.abs(back - samples).max() < 1e-4


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install -y espeak-ng)")
def test_espeak_speech_is_synthesised_at_the_requested_rate():
    audio = speech.synthesize("Seven green bottles.", "en-us", sample_rate=8000)
    assert audio.dtype == np.float32 and 0.4 * 8000 < len(audio) < 3 * 8000
    assert abs(np.abs(audio).max() - speech.PEAK) < 1e-5
    levels = speech.quantize(audio)
    assert len(np.unique(levels)) > 100  # speech, not silence


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--set", "agent.head=dlml", "agent.head.num_bins=8"], "unknown key 'agent.head.num_bins'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--device", "cuda"], "torch sees no CUDA device"),
        (["--set", "train.eval_episodes=3"], "unknown key 'train.eval_episodes'"),
    ],
)
def test_a_failed_validation_writes_no_run_folder(options, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "run"
    for _ in range(2):  # the same command fails the same way again: nothing was left to block it
        assert main(["generative", "train", "image", *options, "--run-dir", str(run), "--no-progress"]) == 2
        assert message in capsys.readouterr().err
        assert not run.exists()


def test_generative_runs_offer_no_environment_evaluation_keys():
    recipe = load_recipe("image", generative=True)
    environment_keys = {"train.eval_episodes", "train.eval_envs", "train.eval_seed"}
    for key in environment_keys:
        with pytest.raises(ValueError, match=f"unknown key '{key}'") as error:
            recipe.with_overrides([f"{key}=3"])
        valid = set(str(error.value).partition("valid keys: ")[2].split(", "))
        assert "train.eval_every" in valid and not environment_keys & valid  # held-out bits/dim still run
    with pytest.raises(ValueError, match="train.steps must be >= 1"):  # TrainConfig's checks still apply
        recipe.with_overrides(["train.steps=0"])
    assert "eval_envs" not in recipe.to_dict()["train"]


def test_eval_and_resume_take_a_generative_run_through_the_one_path(capsys, tmp_path):
    run = tmp_path / "generative"
    _, result = start_run("image", overrides=[*TINY_IMAGE, "train.steps=2"], run_dir=run, progress=False)
    agent, data, config, step = load_agent(run, device="cpu")
    assert isinstance(agent, LevelAgent) and isinstance(data, ImageTask) and config.task is None and step == 2
    assert main(["eval", str(run), "--device", "cpu"]) == 0
    assert "held-out bits/dim" in capsys.readouterr().out
    results = json.loads((run / "results.json").read_text())
    assert results["step"] == 2 and results["bits_per_dim"] == pytest.approx(result.last_scalars["eval/bits_per_dim"])
    assert main(["eval", str(run), "--episodes", "3"]) == 2
    assert "scored by held-out bits/dim" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--set", "train.steps=3", "--no-progress"]) == 0
    assert "step 3 (resumed at step 2)" in capsys.readouterr().out
    assert main(["train", "image", "hopper", "--run-dir", str(tmp_path / "x")]) == 2
    assert "takes no dataset or task" in capsys.readouterr().err
    assert main(["generative", "train", "bc-dlml", "--run-dir", str(tmp_path / "x")]) == 2
    assert "unknown generative recipe 'bc-dlml'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kind", "override", "message"),
    [
        ("image", "agent.temperature=0", "agent.temperature must be > 0, got 0"),
        ("image", "agent.test_fraction=1.5", r"agent.test_fraction must be in \(0, 1\)"),
        ("image", "agent.kernel=4", "agent.kernel must be odd"),
        ("image", "agent.samples=0", "agent.samples must be >= 1, got 0"),
        ("audio", "agent.num_levels=1", "agent.num_levels must be >= 2, got 1"),
        ("audio", "agent.dilations=[]", "agent.dilations must be a non-empty list"),
        ("audio", "agent.lr=-1", "agent.lr must be > 0, got -1"),
    ],
)
def test_out_of_range_model_settings_fail_before_any_training(kind: str, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):  # e.g. a temperature of 0 would only fail when sampling
        load_recipe(kind, generative=True).with_overrides([override])
