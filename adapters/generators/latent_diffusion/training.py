"""LoRA training of Stable Diffusion on a store's training split: the ``GeneratorTrainer`` adapter.

Each grade has its prompt (``recipe.prompt``); LoRA on the UNet's attention projections (peft,
as diffusers' ``train_text_to_image_lora.py``) learns what the base model should draw for it.
The VAE and text encoder are frozen: training images are encoded once, the prompts too. With
``prior_preservation`` the base model first draws ``prior_images`` images of ``class_prompt``
and LoRA also fits them (DreamBooth). The loop runs under ``accelerate`` (mixed precision on
CUDA; several GPUs under ``accelerate launch``).

As in the diffusion trainer, every random draw of step ``s`` comes from a generator seeded by
``(seed, s, micro-step, process)`` and the image order from seeded epochs, so a run resumed from
its checkpoint (LoRA weights, optimizer, schedule, step: safetensors written atomically)
continues exactly as the killed one would have.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from safetensors.torch import load_file, save_file

from medaug.adapters.generators.checkpointing import (
    clear_checkpoints,
    flatten_optimizer,
    latest_checkpoint,
    load_errors_as,
    load_tensor_files,
    unflatten_optimizer,
    write_checkpoint,
)
from medaug.adapters.generators.latent_diffusion.base import (
    GENERATOR,
    LoraMeta,
    LoraState,
    check_base,
    check_image_sizes,
    gradient_checkpointing,
    load_base,
    out_of_memory,
    read_meta,
    read_state,
    weight_dtype,
)
from medaug.adapters.generators.latent_diffusion.components import (
    Components,
    add_grade_tokens,
    add_lora,
    encode_prompts,
    load_lora,
    lora_state,
)
from medaug.adapters.generators.latent_diffusion.config import GRADE_WORDS, LatentDiffusionRecipe
from medaug.adapters.generators.latent_diffusion.objective import (
    denoising_loss,
    latent_moments,
    pipeline,
    run_pipeline,
    training_scheduler,
)
from medaug.adapters.generators.training_support import (
    CheckpointedTrainer,
    clipped_step,
    epoch_indices,
    smoothed,
    training_tensors,
)
from medaug.application.errors import ConfigError
from medaug.application.ports import GeneratorTrainingResult, LabelledImage, NullProgress, ProgressSink
from medaug.domain.plan import derive_seed

_log = structlog.get_logger(__name__)

CLASS_TEXT = 5
"""Index of the class prompt's embedding (after the five grades')."""


class LatentDiffusionTrainer(CheckpointedTrainer[LatentDiffusionRecipe]):
    """Trains a per-grade LoRA of a pretrained Stable Diffusion (a ``GeneratorTrainer``).

    Args:
        recipe: the resolved profile.
        checkpoint_dir: where LoRA checkpoints go (one folder per store and scope).
        weights: the base model: ``(folder or hub id, is_local)``.
        seed, device, profile: as for every trainer.
    """

    generator_name = GENERATOR

    def __init__(self, recipe: LatentDiffusionRecipe, checkpoint_dir: Path, *, weights: tuple[str, bool],
                 seed: int, device: str = "cpu", profile: str = "") -> None:
        super().__init__(recipe, checkpoint_dir, seed=seed, device=device, profile=profile)
        self._weights = weights

    def train(
        self, images: Sequence[LabelledImage], *, progress: ProgressSink, resume: bool = True
    ) -> GeneratorTrainingResult:
        """Train LoRA on ``images`` until ``recipe.train_steps``, checkpointing as it goes.

        Raises:
            ConfigError: no images, images smaller than the resolution, weights that are not a
                Stable Diffusion folder, a checkpoint of another base model or rank, CUDA memory.
            InputError: an image cannot be decoded.
        """
        device, start = self._begin(images, resume=resume, read_meta=read_meta)
        check_image_sizes(images, self._recipe.resolution, self._profile)
        components, digest = load_base(*self._weights)
        if start.checkpoint and start.meta:
            check_base(start.meta, digest, self._weights[0], start.checkpoint)
            if start.finished(self._recipe.train_steps):
                return self._already_trained(start.checkpoint, start.meta.step, read_state(start.checkpoint).loss)
        data, labels = training_tensors(images, self._recipe.resolution)
        seed = self._seed
        if start.meta is not None and start.meta.seed != seed:
            # the rest of the run draws from the stream it started on (prior images, batches)
            _log.warning("latent_diffusion_resume_seed", checkpoint_seed=start.meta.seed, configured_seed=seed)
            seed = start.meta.seed
        try:
            run = _Run(self._recipe, self._root, seed, device, components, digest, self._weights[0])
            if not resume:
                run.clear()
            if start.checkpoint:
                run.restore(start.checkpoint)
            run.prepare(data, labels)
            return run.train(progress, self._profile)
        except torch.cuda.OutOfMemoryError:
            raise out_of_memory("training LoRA", "batch_size", self._recipe.batch_size, self._recipe.resolution) from None


class _Run:
    """One training session: accelerator, frozen parts, LoRA, optimizer and the loop over steps."""

    def __init__(self, recipe: LatentDiffusionRecipe, root: Path, seed: int, device: torch.device,
                 components: Components, digest: str, source: str) -> None:
        self.recipe, self.root, self.seed, self.digest, self.source = recipe, root, seed, digest, source
        self.accelerator = _accelerator(recipe, device)
        self.device = self.accelerator.device
        self.dtype = weight_dtype(recipe.mixed_precision, self.device)
        self.components = components
        self._place_frozen_parts()
        self.schedule = training_scheduler(components)
        self.prior: tuple[torch.Tensor, torch.Tensor] | None = None
        if recipe.prior_preservation:
            self.prior = latent_moments(components.vae, self._prior_images().to(self.device) * 2 - 1)
        torch.manual_seed(seed)
        groups = self._trainable_groups()
        prompts = [recipe.grade_prompt(grade) for grade in range(5)] + [recipe.class_prompt]
        self.prompt_ids = components.tokenizer(
            prompts, padding="max_length", max_length=components.tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        with torch.no_grad():
            self.texts = encode_prompts(components, prompts, self.device).float()
        if gradient_checkpointing(recipe.gradient_checkpointing, self.device):
            components.unet.enable_gradient_checkpointing()
        optimizer = torch.optim.AdamW(groups, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
        self.lr_schedule = get_scheduler(
            "constant_with_warmup" if recipe.lr_schedule == "constant" else "cosine", optimizer,
            num_warmup_steps=recipe.warmup_steps, num_training_steps=recipe.train_steps,
        )
        self.model, self.optimizer = self.accelerator.prepare(components.unet, optimizer)
        self.step, self.loss, self.images_seen = 0, None, 0
        self.moments: tuple[torch.Tensor, torch.Tensor] | None = None
        self.labels = torch.zeros(0, dtype=torch.long)

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    def _place_frozen_parts(self) -> None:
        for part in (self.components.vae, self.components.text_encoder, self.components.unet):
            part.requires_grad_(False)
            part.to(self.device)
            if self.dtype != torch.float32:
                part.to(self.dtype)

    def _trainable_groups(self) -> list[dict[str, Any]]:
        """Add LoRA (and the grade tokens) and return the optimizer's parameter groups."""
        recipe = self.recipe
        add_lora(self.components.unet, recipe.lora_rank, recipe.lora_alpha)
        trainable = [p for p in self.components.unet.parameters() if p.requires_grad]
        for parameter in trainable:
            parameter.data = parameter.data.float()  # LoRA weights train in fp32 under mixed precision
        groups: list[dict[str, Any]] = [{"params": trainable}]
        self.tokens = add_grade_tokens(self.components, GRADE_WORDS) if recipe.grade_tokens else None
        if self.tokens is not None:
            groups.append({"params": [self.tokens.learned], "lr": recipe.token_learning_rate, "weight_decay": 0.0})
        return groups

    def clear(self) -> None:
        """Start over: the main process removes earlier checkpoints."""
        if self.accelerator.is_main_process:
            clear_checkpoints(self.root)
        self.accelerator.wait_for_everyone()

    def restore(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint``: LoRA weights, optimizer, schedule and step."""
        state = read_state(checkpoint)
        with load_errors_as(f"{checkpoint}: cannot load the LoRA checkpoint"):
            tensors = load_tensor_files(checkpoint, ("lora", "optimizer") + (("tokens",) if self.tokens else ()))
        try:
            load_lora(self.components.unet, tensors["lora"], str(checkpoint / "lora.safetensors"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.tokens is not None:
            with torch.no_grad():
                self.tokens.learned.copy_(tensors["tokens"]["embeddings"])
        self.optimizer.load_state_dict(unflatten_optimizer(tensors["optimizer"], state.optimizer))
        self.lr_schedule.load_state_dict(state.lr_scheduler)
        self.step, self.loss, self.images_seen = state.step, state.loss, state.images_seen

    def prepare(self, data: torch.Tensor, labels: torch.Tensor) -> None:
        """Encode the training images (and their mirror images) once: the VAE is frozen."""
        images = torch.cat([data, torch.flip(data, dims=[-1])]) if self.recipe.flips else data
        self.moments = latent_moments(self.components.vae, images)
        self.labels = labels.to(self.device)

    def train(self, progress: ProgressSink, profile: str) -> GeneratorTrainingResult:
        """Run the remaining steps and return where the last checkpoint is."""
        progress = progress if self.accelerator.is_main_process else NullProgress()
        start_step, started = self.step, time.perf_counter()
        per_step = self.recipe.batch_size * self.recipe.grad_accumulation * self.world
        checkpoint = latest_checkpoint(self.root)
        label = f"train latent-diffusion LoRA {profile}".strip() + (f" from step {start_step}" if start_step else "")
        self.model.train()
        with progress.task(label, total=self.recipe.train_steps - start_step) as bar:
            while self.step < self.recipe.train_steps:
                self.loss = smoothed(self.loss, self._optimisation_step(self.step))
                self.step += 1
                self.images_seen += per_step
                done, elapsed = self.step - start_step, max(time.perf_counter() - started, 1e-9)
                bar.advance(1, loss=self.loss, img_s=done * per_step / elapsed)
                if self.step % self.recipe.checkpoint_every == 0 or self.step == self.recipe.train_steps:
                    checkpoint = self._checkpoint()
        seconds = time.perf_counter() - started
        done = self.step - start_step
        return GeneratorTrainingResult(
            generator=GENERATOR, checkpoint=str(checkpoint), steps=self.step, seconds=seconds, final_loss=self.loss,
            metrics={
                "images_per_second": round(done * per_step / max(seconds, 1e-9), 3),
                "lora_parameters": sum(p.numel() for p in self.components.unet.parameters() if p.requires_grad),
                "resolution": self.recipe.resolution,
                "base_sha256": self.digest,
                "processes": self.world,
                "device": str(self.device),
            },
        )

    def _optimisation_step(self, step: int) -> float:
        losses = []
        for micro in range(self.recipe.grad_accumulation):
            latents, noise, timesteps, prompts, instances = self._batch(step, micro)
            with self.accelerator.accumulate(self.model), self.accelerator.autocast():
                loss = self._loss(latents, noise, timesteps, self._text(prompts), instances)
                self.accelerator.backward(loss)
                if self.tokens is not None and self.world > 1 and self.tokens.learned.grad is not None:
                    # the token embeddings live outside the DDP-wrapped UNet: average their gradients here
                    self.tokens.learned.grad = self.accelerator.reduce(self.tokens.learned.grad, reduction="mean")
                clipped_step(self.accelerator, self.model, self.optimizer)
            losses.append(loss.detach())
        self.lr_schedule.step()
        return self.accelerator.reduce(torch.stack(losses).mean(), reduction="mean").item()

    def _loss(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor,
              instances: int) -> torch.Tensor:
        if instances == len(latents):
            return denoising_loss(self.model, self.schedule, latents, noise, timesteps, text)
        # DreamBooth: one forward pass over instance and prior images, the prior loss weighted.
        noisy = self.schedule.add_noise(latents, noise, timesteps)
        prediction = self.model(noisy.to(self.dtype), timesteps, encoder_hidden_states=text.to(self.dtype)).sample.float()
        velocity = self.schedule.config.prediction_type == "v_prediction"
        target = self.schedule.get_velocity(latents, noise, timesteps) if velocity else noise
        errors = (prediction - target.float()).pow(2).flatten(1).mean(1)
        return errors[:instances].mean() + self.recipe.prior_weight * errors[instances:].mean()

    def _batch(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        assert self.moments is not None
        size, rank, count = self.recipe.batch_size, self.accelerator.process_index, len(self.labels)
        position = ((step * self.recipe.grad_accumulation + micro) * self.world + rank) * size
        index = epoch_indices(self.seed, count, position, size).to(self.device)
        rng = torch.Generator().manual_seed(derive_seed(self.seed, "step", step, micro, rank))
        flipped = (torch.rand(size, generator=rng) < 0.5).long().to(self.device) if self.recipe.flips else 0
        latents = _draw(self.moments, index + count * flipped, rng)
        prompts = self.labels[index]
        if self.prior is not None:
            prior_index = epoch_indices(self.seed, len(self.prior[0]), position, size, stream="prior").to(self.device)
            latents = torch.cat([latents, _draw(self.prior, prior_index, rng)])
            prompts = torch.cat([prompts, torch.full_like(prompts, CLASS_TEXT)])
        noise = torch.randn(latents.shape, generator=rng).to(self.device)
        steps = self.schedule.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (len(latents),), generator=rng).to(self.device)
        return latents, noise, timesteps, prompts, size

    def _text(self, prompts: torch.Tensor) -> torch.Tensor:
        """The text embeddings of prompt indices (grades 0-4, ``CLASS_TEXT``): cached, or with the
        learned grade tokens, encoded again (their embeddings train)."""
        if self.tokens is None:
            return self.texts[prompts]
        return self.components.text_encoder(self.prompt_ids[prompts])[0].float()

    def _prior_images(self) -> torch.Tensor:
        """The base model's images of ``class_prompt`` (made once, kept beside the checkpoints)."""
        recipe = self.recipe
        path = self.root / f"prior-{self.digest}-{recipe.resolution}-{recipe.prior_images}.safetensors"
        expected = {"class_prompt": recipe.class_prompt, "seed": str(self.seed)}
        if path.is_file():
            with load_errors_as(f"{path}: cannot read the prior-preservation images"):
                stored = load_file(str(path))
            if _metadata(path) == expected:
                return stored["images"]
        made = pipeline(self.components, variation=False, sampler=recipe.sampler)
        images = []
        for first in range(0, recipe.prior_images, recipe.generate_batch_size):
            seeds = [derive_seed(self.seed, "prior", i) for i in range(first, first + recipe.generate_batch_size)]
            images.append(run_pipeline(
                made, [recipe.class_prompt] * len(seeds), seeds, resolution=recipe.resolution,
                steps=recipe.sample_steps, guidance_scale=recipe.guidance_scale,
            ))
        result = torch.cat(images)[: recipe.prior_images].contiguous()
        if self.accelerator.is_main_process:
            temp = path.with_name(path.name + ".tmp")
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"images": result}, str(temp), metadata=expected)
            temp.replace(path)
        return result

    def _token_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        return {} if self.tokens is None else {"tokens": {"embeddings": self.tokens.learned.detach()}}

    def _checkpoint(self) -> Path:
        path = latest_checkpoint(self.root)
        if self.accelerator.is_main_process:
            optimizer_tensors, optimizer_rest = flatten_optimizer(self.optimizer.state_dict())
            meta = LoraMeta(step=self.step, seed=self.seed, recipe=self.recipe, base_source=self.source,
                            base_sha256=self.digest, world_size=self.world)
            state = LoraState(step=self.step, optimizer=optimizer_rest, lr_scheduler=self.lr_schedule.state_dict(),
                              loss=self.loss, images_seen=self.images_seen)
            unet = self.accelerator.unwrap_model(self.model)
            path = write_checkpoint(
                self.root, self.step, {"config.json": meta, "state.json": state},
                {"lora": lora_state(unet), "optimizer": optimizer_tensors, **self._token_tensors()},
                keep=self.recipe.keep_checkpoints,
            )
            _log.info("latent_diffusion_checkpoint", step=self.step, loss=self.loss, checkpoint=str(path))
        self.accelerator.wait_for_everyone()
        return path if path is not None else self.root


def _draw(moments: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    mean, std = moments[0][index], moments[1][index]
    return mean + std * torch.randn(mean.shape, generator=rng).to(mean.device)


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def _accelerator(recipe: LatentDiffusionRecipe, device: torch.device) -> Accelerator:
    precision = recipe.mixed_precision
    if precision == "auto":
        precision = "no" if device.type != "cuda" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    try:
        return Accelerator(
            cpu=device.type == "cpu", mixed_precision=precision, gradient_accumulation_steps=recipe.grad_accumulation
        )
    except ValueError as exc:  # accelerate's state is per process and cannot change once set
        raise ConfigError(f"cannot set up latent-diffusion training: {str(exc).splitlines()[0]}") from None
