"""Training the class-conditional diffusion model: the ``GeneratorTrainer`` adapter.

The loop runs under ``accelerate``: a plain ``python``/``medaug`` run is one process on the CPU
or one GPU; under ``accelerate launch`` (see ``infra/accelerate``) it is data-parallel (DDP) over
GPUs, nodes or CPU processes (gloo), each process drawing its own share of every step's batch.

Every random draw of step ``s`` (which images, flips, timesteps, noise, dropped labels) comes
from a generator seeded by ``(seed, s, micro-step, process)``, and the image order of each epoch
from ``(seed, epoch)``. A resumed run therefore continues exactly where the killed one would
have gone: no random-stream state has to be saved, only weights, EMA, optimizer, learning-rate
schedule and step.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel, compute_snr
from torchvision.transforms.v2 import functional as TF

from medaug.adapters.files import write_atomic
from medaug.adapters.generators.checkpointing import checkpoint_name
from medaug.adapters.generators.diffusion.checkpoint import (
    CheckpointMeta,
    Saved,
    TrainingState,
    clear_checkpoints,
    flatten_optimizer,
    latest_checkpoint,
    load_checkpoint,
    read_meta,
    read_state,
    save_checkpoint,
    unflatten_optimizer,
)
from medaug.adapters.generators.diffusion.config import NULL_CLASS, DiffusionRecipe
from medaug.adapters.generators.diffusion.distributed import release_at_exit
from medaug.adapters.generators.diffusion.model import (
    build_unet,
    coordinate_maps,
    count_parameters,
    noise_scheduler,
    unet_from_config,
)
from medaug.adapters.generators.diffusion.sampling import sample
from medaug.adapters.generators.training_support import (
    CheckpointedTrainer,
    clipped_step,
    contact_grid,
    epoch_indices,
    smoothed,
    training_tensors,
)
from medaug.adapters.torch_support import tensor_to_png
from medaug.application.errors import ConfigError
from medaug.application.ports import (
    GeneratorTrainingResult,
    LabelledImage,
    NullProgress,
    ProgressSink,
)
from medaug.domain.grades import ALL_GRADES
from medaug.domain.plan import derive_seed

_log = structlog.get_logger(__name__)



def diffusion_loss(
    model: torch.nn.Module,
    scheduler: DDPMScheduler,
    clean: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    labels: torch.Tensor,
    coordinates: torch.Tensor | None = None,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """The denoising objective: MSE between the model's prediction and the noise (or velocity).

    Args:
        model: the class-conditional UNet (possibly wrapped by accelerate/DDP).
        scheduler: the training noise process; its ``prediction_type`` picks the target.
        clean: images (or patches) in [-1, 1]; noise: Gaussian noise of the same shape.
        timesteps: one training timestep per image; labels: class per image (grade or null).
        coordinates: for a UNet with coordinate channels, each patch's ``N x 2 x P x P`` position
            maps (see ``coordinate_maps``); they are appended to the noisy input, never noised.
        snr_gamma: min-SNR-gamma weighting of each image's error (None: plain mean).
    """
    noisy = scheduler.add_noise(clean, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(clean, noise, timesteps)
    else:
        target = noise
    model_input = noisy if coordinates is None else torch.cat([noisy, coordinates.to(noisy.dtype)], dim=1)
    prediction = model(model_input, timesteps, labels).sample
    if snr_gamma is None:
        return F.mse_loss(prediction.float(), target.float())
    errors = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    snr = compute_snr(scheduler, timesteps).float()
    weights = snr.clamp(max=snr_gamma) / (snr + 1 if scheduler.config.prediction_type == "v_prediction" else snr)
    return (errors * weights).mean()


class DiffusionTrainer(CheckpointedTrainer[DiffusionRecipe]):
    """Trains the class-conditional diffusion model of one store (a ``GeneratorTrainer``).

    Args:
        recipe: the resolved profile (model, schedule, training length, sampler for sheets).
        checkpoint_dir: where checkpoints and contact sheets go (one folder per store).
        seed: the training seed.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``; under ``accelerate launch``
            each process gets its own GPU.
        profile: the profile's name, for messages.
    """

    generator_name = "diffusion"

    def train(
        self, images: Sequence[LabelledImage], *, progress: ProgressSink, resume: bool = True
    ) -> GeneratorTrainingResult:
        """Train on ``images`` until ``recipe.train_steps``, checkpointing as it goes.

        Raises:
            ConfigError: no images, an unusable device, or a checkpoint of another architecture.
            InputError: an image cannot be decoded.
        """
        device, start = self._begin(images, resume=resume, read_meta=read_meta)
        if start.checkpoint and start.meta and start.finished(self._recipe.train_steps):
            return self._already_trained(start.checkpoint, start.meta.step, read_state(start.checkpoint).loss)
        data, labels = training_tensors(images, self._recipe.resolution)
        run = _Run(self._recipe, self._root, self._seed, device, data, labels)
        if not resume:
            run.clear()
        if start.checkpoint:
            run.restore(load_checkpoint(start.checkpoint))
        return run.train(progress, self._profile)


class _Run:
    """One training session: accelerator, model, optimizer, EMA and the loop over steps."""

    def __init__(
        self, recipe: DiffusionRecipe, root: Path, seed: int, device: torch.device, data: torch.Tensor,
        labels: torch.Tensor,
    ) -> None:
        self.recipe, self.root, self.seed = recipe, root, seed
        self.accelerator = _accelerator(recipe, device)
        self.device = self.accelerator.device
        self.data, self.labels = data.to(self.device), labels.to(self.device)
        self.scheduler = noise_scheduler(recipe)
        torch.manual_seed(seed)
        unet = build_unet(recipe)
        optimizer = torch.optim.AdamW(unet.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
        self.lr_schedule = get_cosine_schedule_with_warmup(optimizer, recipe.warmup_steps, recipe.train_steps)
        self.model, self.optimizer = self.accelerator.prepare(unet, optimizer)
        self.ema = EMAModel(
            self.unet.parameters(), decay=recipe.ema_decay, use_ema_warmup=True, power=recipe.ema_power, foreach=True
        )
        self.step = 0
        self.loss: float | None = None
        self.images_seen = 0

    @property
    def unet(self) -> UNet2DModel:
        return self.accelerator.unwrap_model(self.model)

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    def clear(self) -> None:
        """Start over: the main process removes earlier checkpoints."""
        if self.accelerator.is_main_process:
            clear_checkpoints(self.root)
        self.accelerator.wait_for_everyone()

    def restore(self, saved: Saved) -> None:
        """Continue from checkpoint ``saved``: weights, optimizer, schedule, EMA and step."""
        self.unet.load_state_dict(saved.model)
        self.optimizer.load_state_dict(unflatten_optimizer(saved.optimizer, saved.state.optimizer))
        self.lr_schedule.load_state_dict(saved.state.lr_scheduler)
        shadow = [saved.ema[name].to(self.device) for name, _ in self.unet.named_parameters()]
        self.ema.load_state_dict({**saved.state.ema, "shadow_params": shadow})
        self.step, self.loss, self.images_seen = saved.state.step, saved.state.loss, saved.state.images_seen
        if saved.meta.seed != self.seed:
            _log.warning("diffusion_resume_seed", checkpoint_seed=saved.meta.seed, configured_seed=self.seed)
            self.seed = saved.meta.seed  # the rest of the run draws from the stream it started on

    def train(self, progress: ProgressSink, profile: str) -> GeneratorTrainingResult:
        """Run the remaining steps and return where the last checkpoint is."""
        progress = progress if self.accelerator.is_main_process else NullProgress()
        start_step, started = self.step, time.perf_counter()
        per_step = self.recipe.batch_size * self.recipe.grad_accumulation * self.world
        label = f"train diffusion {profile}".strip() + (f" from step {start_step}" if start_step else "")
        checkpoint, sheet = latest_checkpoint(self.root), None
        with progress.task(label, total=self.recipe.train_steps - start_step) as bar:
            while self.step < self.recipe.train_steps:
                self._smooth(self._optimisation_step(self.step))
                self.step += 1
                self.images_seen += per_step
                elapsed = max(time.perf_counter() - started, 1e-9)
                done = self.step - start_step
                bar.advance(1, loss=self.loss, steps_s=done / elapsed, img_s=done * per_step / elapsed)
                if self.step % self.recipe.checkpoint_every == 0 or self.step == self.recipe.train_steps:
                    checkpoint, sheet = self._checkpoint()
        seconds = time.perf_counter() - started
        done = self.step - start_step
        return GeneratorTrainingResult(
            generator="diffusion",
            checkpoint=str(checkpoint),
            steps=self.step,
            seconds=seconds,
            final_loss=self.loss,
            metrics={
                "images_per_second": round(done * per_step / max(seconds, 1e-9), 3),
                "steps_per_second": round(done / max(seconds, 1e-9), 4),
                "parameters": count_parameters(self.unet),
                "resolution": self.recipe.resolution,
                "patch_size": self.recipe.patch_size,
                "processes": self.world,
                "device": str(self.device),
                "contact_sheet": str(sheet) if sheet else None,
            },
        )

    def _optimisation_step(self, step: int) -> float:
        losses = []
        for micro in range(self.recipe.grad_accumulation):
            clean, noise, timesteps, labels, coordinates = self._batch(step, micro)
            with self.accelerator.accumulate(self.model):
                loss = diffusion_loss(self.model, self.scheduler, clean, noise, timesteps, labels, coordinates,
                                      snr_gamma=self.recipe.snr_gamma)
                self.accelerator.backward(loss)
                clipped_step(self.accelerator, self.model, self.optimizer)
            losses.append(loss.detach())
        self.lr_schedule.step()
        self.ema.step(self.unet.parameters())
        return self.accelerator.reduce(torch.stack(losses).mean(), reduction="mean").item()

    def _batch(self, step: int, micro: int) -> tuple[torch.Tensor, ...]:
        size, rank = self.recipe.batch_size, self.accelerator.process_index
        position = ((step * self.recipe.grad_accumulation + micro) * self.world + rank) * size
        index = epoch_indices(self.seed, len(self.data), position, size).to(self.device)
        rng = torch.Generator().manual_seed(derive_seed(self.seed, "step", step, micro, rank))
        clean = _flip(self.data[index], self.recipe.flips, rng)
        clean, coordinates = self._patches(clean, rng)
        noise = torch.randn(clean.shape, generator=rng).to(self.device)
        timesteps = torch.randint(0, self.recipe.num_train_timesteps, (size,), generator=rng).to(self.device)
        dropped = (torch.rand(size, generator=rng) < self.recipe.cfg_dropout).to(self.device)
        labels = torch.where(dropped, torch.full_like(self.labels[index], NULL_CLASS), self.labels[index])
        return clean, noise, timesteps, labels, coordinates

    def _patches(self, images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Random ``patch_size`` crops of ``images`` and their coordinate maps (whole images when off)."""
        recipe, canvas = self.recipe, images.shape[-1]
        size = recipe.training_size
        if size == canvas:
            tops = torch.zeros(len(images), dtype=torch.long)
            lefts = tops
        else:
            tops = torch.randint(0, canvas - size + 1, (len(images),), generator=rng)
            lefts = torch.randint(0, canvas - size + 1, (len(images),), generator=rng)
            images = torch.stack(
                [image[:, t : t + size, s : s + size] for image, t, s in zip(images, tops.tolist(), lefts.tolist(), strict=True)]
            )
        if not recipe.coordinate_channels:
            return images, None
        return images, coordinate_maps(canvas, tops.to(self.device), lefts.to(self.device), size)

    def _smooth(self, loss: float) -> None:
        self.loss = smoothed(self.loss, loss)

    def _checkpoint(self) -> tuple[Path, Path | None]:
        path, sheet = self.root / checkpoint_name(self.step), None
        if self.accelerator.is_main_process:
            ema_weights = self._ema_state_dict()
            save_checkpoint(self.root, self._saved(ema_weights), keep=self.recipe.keep_checkpoints)
            sheet = self._contact_sheet(ema_weights)
            _log.info("diffusion_checkpoint", step=self.step, loss=self.loss, checkpoint=str(path), sheet=str(sheet))
        self.accelerator.wait_for_everyone()
        return path, sheet

    def _ema_state_dict(self) -> dict[str, torch.Tensor]:
        weights = {k: v.detach().clone() for k, v in self.unet.state_dict().items()}
        for (name, _), shadow in zip(self.unet.named_parameters(), self.ema.shadow_params, strict=True):
            weights[name] = shadow.detach().clone()
        return weights

    def _saved(self, ema_weights: dict[str, torch.Tensor]) -> Saved:
        optimizer_tensors, optimizer_rest = flatten_optimizer(self.optimizer.state_dict())
        ema_meta = {k: v for k, v in self.ema.state_dict().items() if k != "shadow_params"}
        meta = CheckpointMeta(
            step=self.step, seed=self.seed, recipe=self.recipe, unet=_plain(self.unet.config),
            schedule=_plain(self.scheduler.config), world_size=self.world,
        )
        state = TrainingState(
            step=self.step, ema=ema_meta, optimizer=optimizer_rest, lr_scheduler=self.lr_schedule.state_dict(),
            loss=self.loss, images_seen=self.images_seen,
        )
        return Saved(meta=meta, state=state, model=self.unet.state_dict(), ema=ema_weights, optimizer=optimizer_tensors)

    def _contact_sheet(self, ema_weights: dict[str, torch.Tensor]) -> Path | None:
        per_grade = self.recipe.sheet_per_grade
        if per_grade == 0:
            return None
        unet = unet_from_config(_plain(self.unet.config))
        unet.load_state_dict(ema_weights)
        unet.to(self.device).eval()
        labels = [int(g) for g in ALL_GRADES for _ in range(per_grade)]
        seeds = [derive_seed(self.seed, "sheet", label, i % per_grade) for i, label in enumerate(labels)]
        images = sample(
            unet, _plain(self.scheduler.config), labels, seeds, sampler=self.recipe.sampler,
            steps=self.recipe.sample_steps, guidance_scale=self.recipe.guidance_scale,
            batch_size=self.recipe.generate_batch_size,
        ).images
        path = self.root / f"samples-{checkpoint_name(self.step)}.png"
        write_atomic(path, tensor_to_png(contact_grid(images, per_grade)))
        return path


def _flip(images: torch.Tensor, flips: str, rng: torch.Generator) -> torch.Tensor:
    horizontal = torch.rand(len(images), generator=rng) < 0.5
    vertical = torch.rand(len(images), generator=rng) < 0.5
    images = images.clone()
    if flips in ("horizontal", "both") and horizontal.any():
        chosen = horizontal.to(images.device)
        images[chosen] = TF.horizontal_flip(images[chosen])
    if flips == "both" and vertical.any():
        chosen = vertical.to(images.device)
        images[chosen] = TF.vertical_flip(images[chosen])
    return images


def _accelerator(recipe: DiffusionRecipe, device: torch.device) -> Accelerator:
    precision = recipe.mixed_precision
    if precision == "auto":
        precision = "no" if device.type != "cuda" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    try:
        accelerator = Accelerator(
            cpu=device.type == "cpu", mixed_precision=precision, gradient_accumulation_steps=recipe.grad_accumulation
        )
    except ValueError as exc:  # accelerate's state is per process and cannot change once set
        raise ConfigError(f"cannot set up diffusion training: {str(exc).splitlines()[0]}") from None
    if accelerator.num_processes > 1:
        release_at_exit()
    return accelerator


def _plain(config: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(config).items()}
