"""DCGAN training and generation: updates, determinism, resume after a kill, errors, the contract."""

from __future__ import annotations

import io
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medaug.adapters.generators.dcgan.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
from medaug.adapters.generators.dcgan.config import DCGANConfig
from medaug.adapters.generators.dcgan.generator import DCGANGenerator
from medaug.adapters.generators.dcgan.training import DCGANTrainer, _Run, training_tensors
from medaug.adapters.png import decode_png
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.errors import ConfigError, GeneratorError, InputError
from medaug.application.ports import (
    GenerationRequest,
    GeneratorTrainer,
    ImageGenerator,
    LabelledImage,
    NullProgress,
)
from medaug.cli.app import app
from medaug.domain import Grade, Origin, Split
from tests.adapters.test_dcgan import one_torch_thread  # noqa: F401 - autouse fixture: one torch thread
from tests.conftest import real_record
from tests.contracts.image_generator import ImageGeneratorContract

CPU = torch.device("cpu")
SIZE = 16


def disc_png(index: int, grade: int) -> bytes:
    """A small fundus-like image: an orange disc whose red level and spots follow the grade."""
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = (yy - SIZE / 2 + 0.5) ** 2 + (xx - SIZE / 2 + 0.5) ** 2 <= (0.4 * SIZE) ** 2
    pixels = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    pixels[disc] = (150 + 20 * grade, 80, 30)
    spots = rng.integers(2, SIZE - 2, (grade * 2, 2))
    pixels[spots[:, 0], spots[:, 1]] = (250, 240, 120)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def images(count: int = 20) -> list[LabelledImage]:
    return [LabelledImage(image_id=f"r{i}", grade=Grade(i % 5), data=disc_png(i, i % 5)) for i in range(count)]


def config(**overrides: Any) -> DCGANConfig:
    return DCGANConfig(profile="tiny", **overrides)


def trainer(root: Path, seed: int = 0, **overrides: Any) -> DCGANTrainer:
    return DCGANTrainer(config(**overrides).resolve(), root, seed=seed, device="cpu", profile="tiny")


def tensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).tensors[name]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Recorder:
    """A ProgressSink that keeps every bar's total and fields, and can stop the work (a kill)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.totals: list[int | None] = []
        self.fields: list[dict[str, Any]] = []
        self.stop_after = stop_after

    @contextmanager
    def task(self, description: str, total: int | None):  # type: ignore[no-untyped-def]
        self.totals.append(total)
        yield self

    def advance(self, steps: int = 1, **fields: Any) -> None:
        self.fields.append(fields)
        if self.stop_after is not None and len(self.fields) >= self.stop_after:
            raise KeyboardInterrupt


# -- training ----------------------------------------------------------------------------------


def test_the_trainer_is_a_generator_trainer(tmp_path: Path) -> None:
    assert isinstance(trainer(tmp_path), GeneratorTrainer) and trainer(tmp_path).name == "dcgan"


def test_one_step_updates_both_networks(tmp_path: Path) -> None:
    data, labels = training_tensors(images(10), SIZE)
    run = _Run(config().resolve(), tmp_path, 0, CPU, data, labels, total=1)
    before_g = {k: v.clone() for k, v in run.generator.named_parameters()}
    before_d = {k: v.clone() for k, v in run.discriminator.named_parameters()}
    d_loss, g_loss = run._optimisation_step(0)
    assert np.isfinite(d_loss) and np.isfinite(g_loss)
    assert all(not torch.equal(before_g[k], v) for k, v in run.generator.named_parameters())
    assert all(not torch.equal(before_d[k], v) for k, v in run.discriminator.named_parameters())
    assert all(p.requires_grad for p in run.discriminator.parameters())


def test_training_writes_checkpoints_sheets_and_the_collapse_signal(tmp_path: Path) -> None:
    progress = _Recorder()
    result = trainer(tmp_path).train(images(), progress=progress)
    assert result.generator == "dcgan" and result.steps == 6
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000003", "step-000006"]
    assert result.checkpoint == str(tmp_path / "step-000006")
    assert progress.totals == [6]
    assert {"d_loss", "g_loss", "img_s"} <= progress.fields[0].keys() and "div" not in progress.fields[0]
    assert "div" in progress.fields[-1]  # shown once the first checkpoint has measured it
    signal = json.loads((tmp_path / "step-000006" / "config.json").read_text())["diversity"]
    assert sorted(signal["grades"]) == ["0", "1", "2", "3", "4"]
    assert result.metrics["diversity_min_ratio"] == signal["min_ratio"]
    assert set(result.metrics["diversity"]) == {"0", "1", "2", "3", "4"}
    assert isinstance(result.metrics["collapsed_grades"], list)
    assert len(load_checkpoint(tmp_path / "step-000006").state.history) == 2
    sheet = Image.open(tmp_path / "samples-step-000006.png")
    assert sheet.size[1] > sheet.size[0]  # 5 rows (grades) of 2 samples
    assert (tmp_path / "reals.png").is_file()
    json.dumps(result.metrics)


def test_same_seed_same_model_other_seed_other_model(tmp_path: Path) -> None:
    first = trainer(tmp_path / "a", seed=1).train(images(), progress=NullProgress())
    again = trainer(tmp_path / "b", seed=1).train(images(), progress=NullProgress())
    other = trainer(tmp_path / "c", seed=2).train(images(), progress=NullProgress())
    assert same(tensors(Path(first.checkpoint), "sampler"), tensors(Path(again.checkpoint), "sampler"))
    assert same(tensors(Path(first.checkpoint), "discriminator"), tensors(Path(again.checkpoint), "discriminator"))
    assert not same(tensors(Path(first.checkpoint), "sampler"), tensors(Path(other.checkpoint), "sampler"))


def test_a_killed_run_resumes_to_exactly_the_uninterrupted_result(tmp_path: Path) -> None:
    whole = trainer(tmp_path / "whole").train(images(), progress=NullProgress())
    with pytest.raises(KeyboardInterrupt):
        trainer(tmp_path / "killed").train(images(), progress=_Recorder(stop_after=5))
    assert latest_checkpoint(tmp_path / "killed") == tmp_path / "killed" / "step-000003"
    progress = _Recorder()
    resumed = trainer(tmp_path / "killed").train(images(), progress=progress)
    assert progress.totals == [3] and resumed.steps == 6
    for name in ("sampler", "generator", "discriminator", "optimizer_g", "optimizer_d"):
        assert same(tensors(Path(whole.checkpoint), name), tensors(Path(resumed.checkpoint), name)), name


def test_a_finished_run_returns_at_once_and_a_longer_one_continues(tmp_path: Path) -> None:
    trainer(tmp_path).train(images(), progress=NullProgress())
    done = trainer(tmp_path).train(images(), progress=NullProgress())
    assert done.steps == 6 and done.metrics["already_trained"] is True and "diversity" in done.metrics
    longer = trainer(tmp_path, train_steps=9, d_lr=1e-3).train(images(), progress=NullProgress())
    assert longer.steps == 9 and latest_checkpoint(tmp_path) == tmp_path / "step-000009"
    assert load_checkpoint(tmp_path / "step-000009").state.optimizer_d["param_groups"][0]["lr"] == 1e-3


def test_fresh_training_starts_over(tmp_path: Path) -> None:
    trainer(tmp_path, train_steps=9).train(images(), progress=NullProgress())
    result = trainer(tmp_path, train_steps=3).train(images(), progress=NullProgress(), resume=False)
    assert result.steps == 3 and [p.name for p in list_checkpoints(tmp_path)] == ["step-000003"]


def test_empty_input_corrupt_images_and_other_architectures_fail_before_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no training images"):
        trainer(tmp_path).train([], progress=NullProgress())
    broken = [*images(4), LabelledImage(image_id="bad-7", grade=Grade(2), data=b"not a png")]
    with pytest.raises(InputError, match="training image bad-7: cannot decode"):
        trainer(tmp_path).train(broken, progress=NullProgress())
    assert not list_checkpoints(tmp_path)
    trainer(tmp_path, train_steps=3).train(images(), progress=NullProgress())
    with pytest.raises(ConfigError, match=r"g_channels = 8 but the configuration asks for 16; train with --fresh"):
        trainer(tmp_path, g_channels=16, train_steps=6).train(images(), progress=NullProgress())


def test_switching_stabilisers_off_still_trains(tmp_path: Path) -> None:
    plain = {"spectral_norm": False, "diffaugment": "", "label_smoothing": 0.0, "ema_decay": 0.0, "flips": "none"}
    result = trainer(tmp_path, **plain, train_steps=3, d_lr=4e-4, g_lr=1e-4).train(images(), progress=NullProgress())
    assert result.steps == 3 and np.isfinite(result.final_loss)


# -- generation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCGAN trained for a few steps (module-wide: the contract tests share it)."""
    root = tmp_path_factory.mktemp("dcgan")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer(root).train(images(), progress=NullProgress())
    finally:
        torch.set_num_threads(before)
    return root


class TestDCGANGeneratorContract(ImageGeneratorContract):
    @pytest.fixture
    def generator(self, trained: Path) -> ImageGenerator:
        return DCGANGenerator(config(), trained, device="cpu")


def _requests(size: int = 24, seeds: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[GenerationRequest]:
    return [GenerationRequest(image_id=f"s{s}", grade=Grade(s % 5), seed=s, size=size) for s in seeds]


def test_images_do_not_depend_on_batching(trained: Path) -> None:
    big = DCGANGenerator(config(generate_batch_size=4), trained, device="cpu").generate(_requests())
    small = DCGANGenerator(config(generate_batch_size=1), trained, device="cpu").generate(_requests()[3:])
    assert [decode_png(r.data).tolist() for r in big[3:]] == [decode_png(r.data).tolist() for r in small]


def test_samples_are_upscaled_and_say_how_they_were_made(trained: Path) -> None:
    generator = DCGANGenerator(config(), trained, device="cpu")
    assert generator.needs_source is False and generator.batch_size == 4
    [result] = generator.generate(_requests(size=64, seeds=(3,)))
    assert decode_png(result.data).shape == (64, 64, 3)
    assert result.parameters | {"seed": 3, "grade": 3, "size": 64} == result.parameters
    assert result.parameters["resolution"] == SIZE and result.parameters["checkpoint"] == "step-000006"
    assert len(result.parameters["weights_sha256"]) == 16


def test_an_untrained_generator_says_how_to_train_it(tmp_path: Path) -> None:
    generator = DCGANGenerator(config(), tmp_path, device="cpu")
    assert generator.generate([]) == []
    with pytest.raises(GeneratorError, match="medaug generator train dcgan --store STORE"):
        generator.generate(_requests(seeds=(1,)))


# -- end to end through the CLI ------------------------------------------------------------------


def test_cli_trains_the_dcgan_and_augment_fills_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray ./medaug.toml
    monkeypatch.setenv("MEDAUG_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("MEDAUG_IMAGE_SIZE", "24")
    monkeypatch.setenv("MEDAUG_GENERATORS__DCGAN__NUM_THREADS", "1")
    root = tmp_path / "store"
    store = LocalImageStore(root)
    for image in images(12):
        store.put(real_record(image.image_id, int(image.grade)), image.data)
    runner = CliRunner()
    trained = runner.invoke(app, ["--quiet", "generator", "train", "dcgan", "--store", str(root), "--profile", "tiny"])
    assert trained.exit_code == 0, trained.output
    assert "dcgan: 6 steps" in trained.output
    augmented = runner.invoke(
        app, ["--quiet", "augment", "run", "--store", str(root), "--generator", "dcgan", "--multiply", "2"]
    )
    assert augmented.exit_code == 0, augmented.output
    assert "12 generated" in augmented.output
    synthetic = store.list(split=Split.TRAIN, origin=Origin.SYNTHETIC, augmentation="dcgan")
    assert len(synthetic) == 12 and {s.provenance.generator for s in synthetic} == {"dcgan"}
    assert decode_png(store.get(synthetic[0].id)).shape == (16, 16, 3)  # the store's size, not settings.image_size
    assert synthetic[0].provenance.parameters["checkpoint"] == "step-000006"
