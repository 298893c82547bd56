"""DCGAN building blocks: configuration, networks, DiffAugment, the diversity signal, checkpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch.nn.utils import parametrize

from medaug.adapters.generators.dcgan.checkpoint import (
    CheckpointMeta,
    Saved,
    TrainingState,
    flatten_optimizer,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_sampling_model,
    read_meta,
    save_checkpoint,
    unflatten_optimizer,
)
from medaug.adapters.generators.dcgan.config import PROFILES, DCGANConfig, DCGANRecipe
from medaug.adapters.generators.dcgan.diffaugment import cutout, diff_augment
from medaug.adapters.generators.dcgan.diversity import (
    diversity_report,
    mean_pairwise_distance,
    real_diversity,
)
from medaug.adapters.generators.dcgan.model import (
    Discriminator,
    Generator,
    build_networks,
    latent,
    recalibrate_batch_norm,
    sample_images,
)
from medaug.adapters.torch_support import torch_threads
from medaug.application.errors import ConfigError, GeneratorError
from medaug.composition.settings import load_settings

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny networks run fastest on one thread (thread overhead dominates); restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**overrides) -> DCGANRecipe:  # type: ignore[no-untyped-def]
    return DCGANConfig(profile="tiny", **overrides).resolve()


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_resolves_with_the_thesis_optimiser(profile: str) -> None:
    recipe = DCGANConfig(profile=profile).resolve()
    assert (recipe.g_lr, recipe.d_lr, recipe.betas) == (2e-4, 2e-4, (0.5, 0.999))
    assert recipe.policy == ("color", "translation", "cutout")


def test_quick_is_64_px_and_128_px_is_an_option() -> None:
    assert DCGANConfig().resolve().resolution == 64
    assert DCGANConfig(resolution=128).resolve().resolution == 128
    assert DCGANConfig(profile="standard").resolve().resolution == 128


def test_overrides_win_over_the_profile_and_ttur_is_two_learning_rates() -> None:
    recipe = DCGANConfig(profile="quick", d_lr=4e-4, g_lr=1e-4, spectral_norm=False, diffaugment="").resolve()
    assert (recipe.d_lr, recipe.g_lr, recipe.spectral_norm, recipe.policy) == (4e-4, 1e-4, False, ())


def test_epochs_set_the_length_from_the_training_set_size() -> None:
    recipe = DCGANConfig(profile="quick", epochs=50, batch_size=64).resolve()
    assert recipe.total_steps(413) == 323  # ceil(50 * 413 / 64)
    assert DCGANConfig(profile="quick").resolve().total_steps(413) == PROFILES["quick"]["train_steps"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"resolution": 48}, "resolution 48 is not supported"),
        ({"diffaugment": "color,blur"}, "unknown DiffAugment operation(s) blur"),
        ({"diffaugment": "color,color"}, "repeats an operation"),
        ({"betas": (0.5, 1.2)}, "betas"),
        ({"label_smoothing": 0.6}, "label_smoothing"),
        ({"batch_size": 1}, "batch_size"),
        ({"d_lr": 0}, "d_lr"),
    ],
)
def test_bad_configuration_is_a_one_line_config_error(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        DCGANConfig.model_construct(profile="quick", **overrides).resolve()
    message = str(error.value)
    assert field in message and "dcgan profile 'quick'" in message and "\n" not in message


def test_unknown_profile_and_bad_settings_fail_on_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown dcgan profile 'huge'"):
        DCGANConfig.model_construct(profile="huge").resolve()
    monkeypatch.setenv("MEDAUG_GENERATORS__DCGAN__RESOLUTION", "48")
    with pytest.raises(ConfigError, match="resolution 48 is not supported"):
        load_settings()


# -- networks --------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [16, 32, 64, 128])
def test_networks_make_and_score_images_of_every_resolution(resolution: int) -> None:
    generator, discriminator = build_networks(tiny(resolution=resolution, g_channels=4, d_channels=4), seed=0)
    images = generator(torch.randn(3, generator.latent_dim), torch.tensor([0, 2, 4]))
    assert images.shape == (3, 3, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images, torch.tensor([0, 2, 4])).shape == (3,)


def test_spectral_norm_replaces_batch_norm_in_the_discriminator() -> None:
    with_sn, without = Discriminator(tiny(spectral_norm=True)), Discriminator(tiny(spectral_norm=False))
    assert parametrize.is_parametrized(with_sn.score) and parametrize.is_parametrized(with_sn.embed)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in with_sn.modules())
    assert not parametrize.is_parametrized(without.score)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in without.modules())


def test_the_generator_is_conditioned_on_the_grade() -> None:
    generator, _ = build_networks(tiny(), seed=0)
    generator.eval()
    z = latent(1, generator.latent_dim)[None].repeat(2, 1)
    images = generator(z, torch.tensor([0, 4]))
    assert not torch.equal(images[0], images[1])


def test_networks_are_initialised_by_the_seed() -> None:
    first, second, other = build_networks(tiny(), 3)[0], build_networks(tiny(), 3)[0], build_networks(tiny(), 4)[0]
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters(), strict=True))


def test_samples_depend_on_grade_and_seed_only_not_on_batching() -> None:
    generator, _ = build_networks(tiny(), seed=0)
    together = sample_images(generator, [1, 2, 3, 1], [5, 6, 7, 8], batch_size=3, device=CPU)
    alone = sample_images(generator, [3], [7], batch_size=1, device=CPU)
    assert torch.equal(together[2], alone[0])
    assert together.min() >= 0 and together.max() <= 1
    assert not torch.equal(together[0], together[3])


def test_batch_norm_recalibration_sets_statistics_from_the_given_inputs() -> None:
    generator = Generator(tiny())
    norm = next(m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm2d))
    momentum = norm.momentum
    recalibrate_batch_norm(generator, torch.randn(16, generator.latent_dim), torch.arange(16) % 5, batch_size=8)
    assert not generator.training and norm.momentum == momentum
    assert int(norm.num_batches_tracked) == 2
    assert not torch.allclose(norm.running_mean, torch.zeros_like(norm.running_mean))


def test_thread_count_is_set_for_the_block_and_restored() -> None:
    assert DCGANConfig().num_threads == 1
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
    with torch_threads(None):
        assert torch.get_num_threads() == 1


# -- DiffAugment -----------------------------------------------------------------------------


def test_diffaugment_is_seeded_shape_preserving_and_differentiable() -> None:
    images = torch.rand(4, 3, 16, 16).mul(2).sub(1).requires_grad_()
    policy = ("color", "translation", "cutout")
    first = diff_augment(images, policy, torch.Generator().manual_seed(0))
    again = diff_augment(images, policy, torch.Generator().manual_seed(0))
    other = diff_augment(images, policy, torch.Generator().manual_seed(1))
    assert first.shape == images.shape
    assert torch.equal(first, again) and not torch.equal(first, other)
    first.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_an_empty_policy_leaves_images_alone() -> None:
    images = torch.rand(2, 3, 8, 8)
    assert torch.equal(diff_augment(images, (), torch.Generator().manual_seed(0)), images)


def test_cutout_blanks_at_most_a_quarter_of_each_image() -> None:
    images = torch.ones(8, 3, 16, 16)
    out = cutout(images, torch.Generator().manual_seed(0))
    blanked = (out[:, 0] == 0).flatten(1).sum(1)
    assert (blanked > 0).all() and (blanked <= 64).all()


# -- diversity (mode-collapse signal) ----------------------------------------------------------


def test_identical_samples_read_as_collapse_and_real_like_samples_do_not() -> None:
    reals = torch.rand(12, 3, 8, 8).mul(2).sub(1)
    grades = torch.tensor([0] * 6 + [1] * 5 + [2])
    real = real_diversity(reals, grades)
    assert real[2] is None and real[3] is None  # fewer than two real images
    collapsed = reals[:1].repeat(6, 1, 1, 1)
    report = diversity_report(7, {0: collapsed, 1: reals[6:11], 2: reals[:3]}, real, threshold=0.5)
    assert report.step == 7
    assert report.grades[0].ratio == 0 and report.grades[1].ratio == pytest.approx(1.0, abs=1e-4)
    assert report.grades[2].ratio is None
    assert report.collapsed == (0,) and report.min_ratio == 0


def test_mean_pairwise_distance_is_rms_per_pixel() -> None:
    images = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    assert mean_pairwise_distance(images) == pytest.approx(1.0)
    assert mean_pairwise_distance(images[:1]) == 0.0


# -- checkpoints -----------------------------------------------------------------------------


def _saved(step: int, recipe: DCGANRecipe) -> Saved:
    generator, discriminator = build_networks(recipe, seed=step)
    optimizer = torch.optim.Adam(generator.parameters(), lr=recipe.g_lr, betas=recipe.betas)
    generator(torch.randn(4, recipe.latent_dim), torch.arange(4)).mean().backward()
    optimizer.step()
    tensors, rest = flatten_optimizer(optimizer.state_dict())
    report = diversity_report(step, {0: torch.rand(3, 3, 4, 4)}, {0: 0.5}, 0.5)
    meta = CheckpointMeta(step=step, total_steps=10, seed=1, recipe=recipe, diversity=report)
    state = TrainingState(step=step, optimizer_g=rest, optimizer_d=rest, d_loss=1.0, g_loss=2.0, history=(report,))
    weights = {
        "sampler": generator.state_dict(), "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(), "optimizer_g": tensors, "optimizer_d": tensors,
    }
    return Saved(meta=meta, state=state, tensors=weights)


def test_checkpoint_round_trip_keeps_every_tensor_and_the_signal(tmp_path: Path) -> None:
    recipe = tiny()
    saved = _saved(3, recipe)
    path = save_checkpoint(tmp_path, saved, keep=2)
    loaded = load_checkpoint(path)
    assert loaded.meta.model_dump(mode="json") == saved.meta.model_dump(mode="json")
    assert loaded.state.model_dump(mode="json") == saved.state.model_dump(mode="json")
    for name, tensors in saved.tensors.items():
        assert tensors.keys() == loaded.tensors[name].keys()
        assert all(torch.equal(tensors[k], loaded.tensors[name][k]) for k in tensors)
    assert json.loads((path / "config.json").read_text())["diversity"]["grades"]["0"]["real"] == 0.5
    with safe_open(str(path / "sampler.safetensors"), "pt") as handle:
        assert json.loads(handle.metadata()["diversity"])["step"] == 3
    model = load_sampling_model(path, CPU)
    assert model.checkpoint == "step-000003" and not model.network.training


def test_optimizer_state_survives_flattening() -> None:
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    tensors, rest = flatten_optimizer(optimizer.state_dict())
    json.dumps(rest)
    restored = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    restored.load_state_dict(unflatten_optimizer(tensors, rest))
    for index, entries in optimizer.state_dict()["state"].items():
        assert all(torch.equal(value, restored.state_dict()["state"][index][k]) for k, value in entries.items())


def test_saving_is_atomic_and_keeps_the_newest(tmp_path: Path) -> None:
    recipe = tiny()
    for step in (3, 6, 9):
        save_checkpoint(tmp_path, _saved(step, recipe), keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000006", "step-000009"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    (tmp_path / ".step-000012.tmp-1").mkdir()  # a save killed half-way is never taken for a checkpoint
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000009"


def test_a_corrupt_checkpoint_is_a_one_line_generator_error(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, _saved(3, tiny()), keep=2)
    (path / "sampler.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(GeneratorError, match="sampler.safetensors: cannot load dcgan weights"):
        load_sampling_model(path, CPU)
    with pytest.raises(GeneratorError, match="corrupt dcgan checkpoint"):
        load_checkpoint(path)
    (path / "config.json").write_text("{")
    with pytest.raises(GeneratorError, match="not a readable dcgan checkpoint"):
        read_meta(path)
