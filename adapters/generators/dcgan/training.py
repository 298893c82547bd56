"""Training the class-conditional DCGAN: the ``GeneratorTrainer`` adapter.

Each step updates the discriminator once (real images against generated ones, both through
DiffAugment, real targets one-sidedly smoothed) and then the generator once (non-saturating loss
through the same augmentations), with Adam and separate learning rates (TTUR when they differ).
An exponential average of the generator's weights (diffusers ``EMAModel``) is what samples.

Every random draw of step ``s`` (flips, latents, augmentations) comes from a generator seeded by
``(seed, s)``, and the image order of each epoch from ``(seed, epoch)``: a resumed run continues
exactly as the killed one would have, with only weights, optimizer moments, EMA and step saved.
At every checkpoint the trainer writes a contact sheet (one row per grade) and measures the
mode-collapse signal (``diversity``), shown beside the progress bar and stored in the checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from torchvision.transforms.v2 import functional as TF

from medaug.adapters.files import write_atomic
from medaug.adapters.generators.checkpointing import checkpoint_name
from medaug.adapters.generators.dcgan.checkpoint import (
    CheckpointMeta,
    Saved,
    TrainingState,
    clear_checkpoints,
    flatten_optimizer,
    latest_checkpoint,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    unflatten_optimizer,
)
from medaug.adapters.generators.dcgan.config import DCGANRecipe
from medaug.adapters.generators.dcgan.diffaugment import diff_augment
from medaug.adapters.generators.dcgan.diversity import (
    DiversityReport,
    diversity_report,
    real_diversity,
)
from medaug.adapters.generators.dcgan.model import (
    Discriminator,
    Generator,
    build_networks,
    count_parameters,
    recalibrate_batch_norm,
    sample_images,
)
from medaug.adapters.generators.training_support import (
    CheckpointedTrainer,
    contact_grid,
    epoch_indices,
    smoothed,
    training_tensors,
)
from medaug.adapters.torch_support import tensor_to_png, torch_threads
from medaug.application.ports import GeneratorTrainingResult, LabelledImage, ProgressSink
from medaug.domain.grades import ALL_GRADES
from medaug.domain.plan import derive_seed

_log = structlog.get_logger(__name__)

EMA_POWER = 0.75


class DCGANTrainer(CheckpointedTrainer[DCGANRecipe]):
    """Trains the class-conditional DCGAN of one store (a ``GeneratorTrainer``).

    Args:
        recipe: the resolved profile (networks, training length, stabilisation options).
        checkpoint_dir: where checkpoints and contact sheets go (one folder per store).
        seed: the training seed.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        profile: the profile's name, for messages.
        num_threads: torch CPU threads while training (None: torch's default).
    """

    generator_name = "dcgan"

    def __init__(
        self,
        recipe: DCGANRecipe,
        checkpoint_dir: Path,
        *,
        seed: int,
        device: str = "cpu",
        profile: str = "",
        num_threads: int | None = None,
    ) -> None:
        super().__init__(recipe, checkpoint_dir, seed=seed, device=device, profile=profile)
        self._threads = num_threads

    def train(
        self, images: Sequence[LabelledImage], *, progress: ProgressSink, resume: bool = True
    ) -> GeneratorTrainingResult:
        """Train on ``images`` for the recipe's length, checkpointing as it goes.

        Raises:
            ConfigError: no images, an unusable device, or a checkpoint of another architecture.
            InputError: an image cannot be decoded.
        """
        device, start = self._begin(images, resume=resume, read_meta=read_meta)
        total = self._recipe.total_steps(len(images))
        if start.checkpoint and start.meta and start.finished(total):
            meta = start.meta
            return self._already_trained(start.checkpoint, meta.step, None, _diversity_metrics(meta.diversity))
        data, labels = training_tensors(images, self._recipe.resolution)
        if not resume:
            clear_checkpoints(self._root)
        with torch_threads(self._threads):
            run = _Run(self._recipe, self._root, self._seed, device, data, labels, total)
            if start.checkpoint:
                run.restore(load_checkpoint(start.checkpoint))
            return run.train(progress, self._profile)


class _Run:
    """One training session: networks, optimizers, EMA and the loop over steps."""

    def __init__(
        self, recipe: DCGANRecipe, root: Path, seed: int, device: torch.device, data: torch.Tensor,
        labels: torch.Tensor, total: int,
    ) -> None:
        self.recipe, self.root, self.seed, self.device, self.total = recipe, root, seed, device, total
        self.data, self.labels = data.to(device), labels.to(device)
        generator, discriminator = build_networks(recipe, seed)
        self.generator: Generator = generator.to(device)
        self.discriminator: Discriminator = discriminator.to(device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=recipe.g_lr, betas=recipe.betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=recipe.d_lr, betas=recipe.betas)
        self.ema = self._new_ema() if recipe.ema_decay > 0 else None
        self.real_diversity = real_diversity(data, labels)
        self.step, self.images_seen = 0, 0
        self.d_loss: float | None = None
        self.g_loss: float | None = None
        self.history: list[DiversityReport] = []

    def _new_ema(self) -> EMAModel:
        return EMAModel(
            self.generator.parameters(), decay=self.recipe.ema_decay, use_ema_warmup=True, power=EMA_POWER, foreach=True
        )

    def restore(self, saved: Saved) -> None:
        """Continue from checkpoint ``saved``: weights, optimizer moments, EMA, losses and step."""
        self.generator.load_state_dict(saved.tensors["generator"])
        self.discriminator.load_state_dict(saved.tensors["discriminator"])
        self.opt_g.load_state_dict(unflatten_optimizer(saved.tensors["optimizer_g"], saved.state.optimizer_g))
        self.opt_d.load_state_dict(unflatten_optimizer(saved.tensors["optimizer_d"], saved.state.optimizer_d))
        _set_hyperparameters(self.opt_g, self.recipe.g_lr, self.recipe.betas)  # a changed recipe wins on resume
        _set_hyperparameters(self.opt_d, self.recipe.d_lr, self.recipe.betas)
        if self.ema is not None and saved.state.ema is not None:
            shadow = [saved.tensors["sampler"][name].to(self.device) for name, _ in self.generator.named_parameters()]
            self.ema.load_state_dict({**saved.state.ema, "shadow_params": shadow})
        elif self.ema is not None:  # averaging switched on since: start it from the restored weights
            self.ema = self._new_ema()
        state = saved.state
        self.step, self.images_seen = state.step, state.images_seen
        self.d_loss, self.g_loss = state.d_loss, state.g_loss
        self.history = list(state.history)

    def train(self, progress: ProgressSink, profile: str) -> GeneratorTrainingResult:
        """Run the remaining steps and return where the last checkpoint is."""
        start_step, started = self.step, time.perf_counter()
        label = f"train dcgan {profile}".strip() + (f" from step {start_step}" if start_step else "")
        checkpoint, sheet = latest_checkpoint(self.root), None
        if start_step == 0:
            self._real_sheet()
        with progress.task(label, total=self.total - start_step) as bar:
            while self.step < self.total:
                self._smooth(*self._optimisation_step(self.step))
                self.step += 1
                self.images_seen += self.recipe.batch_size
                bar.advance(1, **self._fields(start_step, started))
                if self.step % self.recipe.checkpoint_every == 0 or self.step == self.total:
                    checkpoint, sheet = self._checkpoint()
        return self._result(checkpoint, sheet, self.step - start_step, time.perf_counter() - started)

    def _fields(self, start_step: int, started: float) -> dict[str, Any]:
        rate = (self.step - start_step) / max(time.perf_counter() - started, 1e-9)
        fields: dict[str, Any] = {"d_loss": self.d_loss, "g_loss": self.g_loss, "img_s": rate * self.recipe.batch_size}
        if self.history and self.history[-1].min_ratio is not None:
            fields["div"] = self.history[-1].min_ratio
        return fields

    def _optimisation_step(self, step: int) -> tuple[float, float]:
        rng = torch.Generator().manual_seed(derive_seed(self.seed, "dcgan-step", step))
        size = self.recipe.batch_size
        index = epoch_indices(self.seed, len(self.data), step * size, size, stream="dcgan-epoch").to(self.device)
        real, grades = _flip(self.data[index], self.recipe.flips, rng), self.labels[index]
        z = torch.randn(len(index), self.recipe.latent_dim, generator=rng).to(self.device)
        self.generator.train()
        fake = self.generator(z, grades)
        d_loss = self._discriminator_step(real, fake.detach(), grades, rng)
        g_loss = self._generator_step(fake, grades, rng)
        if self.ema is not None:
            self.ema.step(self.generator.parameters())
        return d_loss, g_loss

    def _discriminator_step(
        self, real: torch.Tensor, fake: torch.Tensor, grades: torch.Tensor, rng: torch.Generator
    ) -> float:
        policy = self.recipe.policy
        real_logits = self.discriminator(diff_augment(real, policy, rng), grades)
        fake_logits = self.discriminator(diff_augment(fake, policy, rng), grades)
        real_target = torch.full_like(real_logits, 1.0 - self.recipe.label_smoothing)
        loss = F.binary_cross_entropy_with_logits(real_logits, real_target) + F.binary_cross_entropy_with_logits(
            fake_logits, torch.zeros_like(fake_logits)
        )
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.item()

    def _generator_step(self, fake: torch.Tensor, grades: torch.Tensor, rng: torch.Generator) -> float:
        self.discriminator.requires_grad_(False)  # the generator's loss needs no discriminator gradients
        try:
            logits = self.discriminator(diff_augment(fake, self.recipe.policy, rng), grades)
            loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.discriminator.requires_grad_(True)
        return loss.item()

    def _smooth(self, d_loss: float, g_loss: float) -> None:
        self.d_loss, self.g_loss = smoothed(self.d_loss, d_loss), smoothed(self.g_loss, g_loss)

    # -- checkpoints ---------------------------------------------------------------------------

    def _checkpoint(self) -> tuple[Path, Path | None]:
        sampler = self._sampling_generator()
        signal = self._diversity(sampler)
        self.history.append(signal)
        path = save_checkpoint(self.root, self._saved(sampler, signal), keep=self.recipe.keep_checkpoints)
        sheet = self._contact_sheet(sampler)
        _log.info(
            "dcgan_checkpoint", step=self.step, d_loss=_round(self.d_loss), g_loss=_round(self.g_loss),
            diversity_min_ratio=signal.min_ratio, checkpoint=str(path), sheet=str(sheet) if sheet else None,
        )
        if signal.collapsed:
            _log.warning(
                "dcgan_mode_collapse_suspected", step=self.step, grades=list(signal.collapsed),
                threshold=self.recipe.collapse_threshold,
            )
        return path, sheet

    def _sampling_generator(self) -> Generator:
        """A copy of the generator with the averaged weights and batch-norm statistics fitted to them."""
        sampler = Generator(self.recipe).to(self.device)
        sampler.load_state_dict(self.generator.state_dict())
        if self.ema is not None:
            self.ema.copy_to(sampler.parameters())
        latents, grades = self._calibration_inputs()
        recalibrate_batch_norm(sampler, latents, grades, self.recipe.batch_size)
        return sampler

    def _calibration_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.recipe.batch_size
        count = max(len(self.labels) // size, 1) * size
        rng = torch.Generator().manual_seed(derive_seed(self.seed, "dcgan-calibration"))
        grades = self.labels.cpu()[torch.randint(0, len(self.labels), (count,), generator=rng)]
        latents = torch.randn(count, self.recipe.latent_dim, generator=rng)
        return latents.to(self.device), grades.to(self.device)

    def _diversity(self, sampler: Generator) -> DiversityReport:
        per_grade = self.recipe.diversity_samples
        samples = {}
        for grade in ALL_GRADES:
            seeds = [derive_seed(self.seed, "dcgan-diversity", int(grade), i) for i in range(per_grade)]
            images = sample_images(
                sampler, [int(grade)] * per_grade, seeds, batch_size=self.recipe.generate_batch_size, device=self.device
            )
            samples[int(grade)] = images.mul(2.0).sub(1.0)
        return diversity_report(self.step, samples, self.real_diversity, self.recipe.collapse_threshold)

    def _saved(self, sampler: Generator, signal: DiversityReport) -> Saved:
        tensors_g, rest_g = flatten_optimizer(self.opt_g.state_dict())
        tensors_d, rest_d = flatten_optimizer(self.opt_d.state_dict())
        ema = {k: v for k, v in self.ema.state_dict().items() if k != "shadow_params"} if self.ema else None
        meta = CheckpointMeta(
            step=self.step, total_steps=self.total, seed=self.seed, recipe=self.recipe, diversity=signal,
            parameters={
                "generator": count_parameters(self.generator),
                "discriminator": count_parameters(self.discriminator),
            },
        )
        state = TrainingState(
            step=self.step, images_seen=self.images_seen, d_loss=self.d_loss, g_loss=self.g_loss,
            optimizer_g=rest_g, optimizer_d=rest_d, ema=ema, history=tuple(self.history),
        )
        tensors = {
            "sampler": sampler.state_dict(),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer_g": tensors_g,
            "optimizer_d": tensors_d,
        }
        return Saved(meta=meta, state=state, tensors=tensors)

    def _contact_sheet(self, sampler: Generator) -> Path | None:
        per_grade = self.recipe.sheet_per_grade
        if per_grade == 0:
            return None
        grades = [int(g) for g in ALL_GRADES for _ in range(per_grade)]
        seeds = [derive_seed(self.seed, "dcgan-sheet", grade, i % per_grade) for i, grade in enumerate(grades)]
        images = sample_images(sampler, grades, seeds, batch_size=self.recipe.generate_batch_size, device=self.device)
        path = self.root / f"samples-{checkpoint_name(self.step)}.png"
        write_atomic(path, tensor_to_png(contact_grid(images, per_grade)))
        return path

    def _real_sheet(self) -> None:
        """``reals.png``: the first real training images of each grade, laid out like the samples."""
        per_grade = self.recipe.sheet_per_grade
        if per_grade == 0:
            return
        rows = []
        for grade in ALL_GRADES:
            chosen = self.data[self.labels == int(grade)][:per_grade].cpu().add(1.0).div(2.0)
            blank = torch.zeros(per_grade - len(chosen), *self.data.shape[1:])
            rows.append(torch.cat([chosen, blank]))
        write_atomic(self.root / "reals.png", tensor_to_png(contact_grid(torch.cat(rows), per_grade)))

    def _result(
        self, checkpoint: Path | None, sheet: Path | None, done: int, seconds: float
    ) -> GeneratorTrainingResult:
        per_second = done / max(seconds, 1e-9)
        return GeneratorTrainingResult(
            generator="dcgan",
            checkpoint=str(checkpoint),
            steps=self.step,
            seconds=seconds,
            final_loss=self.g_loss,
            metrics={
                "images_per_second": round(per_second * self.recipe.batch_size, 3),
                "steps_per_second": round(per_second, 4),
                "total_steps": self.total,
                "d_loss": self.d_loss,
                "g_loss": self.g_loss,
                "parameters_generator": count_parameters(self.generator),
                "parameters_discriminator": count_parameters(self.discriminator),
                "resolution": self.recipe.resolution,
                "device": str(self.device),
                "contact_sheet": str(sheet) if sheet else None,
                **_diversity_metrics(self.history[-1] if self.history else None),
            },
        )


def _set_hyperparameters(optimizer: torch.optim.Optimizer, lr: float, betas: tuple[float, float]) -> None:
    for group in optimizer.param_groups:
        group["lr"], group["betas"] = lr, betas


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _diversity_metrics(signal: DiversityReport | None) -> dict[str, Any]:
    if signal is None:
        return {}
    return {
        "diversity": {str(g): d.model_dump() for g, d in signal.grades.items()},
        "diversity_min_ratio": signal.min_ratio,
        "collapsed_grades": list(signal.collapsed),
    }


def _flip(images: torch.Tensor, flips: str, rng: torch.Generator) -> torch.Tensor:
    chosen = (torch.rand(len(images), generator=rng) < 0.5).to(images.device)
    if flips != "horizontal" or not chosen.any():
        return images
    return torch.where(chosen[:, None, None, None], TF.horizontal_flip(images), images)
