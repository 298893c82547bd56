"""The class-conditional DCGAN: one generator and one discriminator shared by all five grades.

Why one conditional GAN rather than one GAN per grade: IDRiD's training split has 20 images of
grade 1 and 49 of grade 4. A GAN trained on 20 images cannot learn what a fundus looks like; it
memorises or collapses, and five GANs cost five times the training. One network pair sees all
413 images, so the anatomy every grade shares (disc, vessels, macula, illumination, the dark
border) is learnt from all of them, while the grade embedding carries what differs (lesions).

- Generator (Radford et al. 2015, with Mirza & Osindero's conditioning): the grade's learnt
  embedding is concatenated to the latent z; transposed convolutions double the resolution from
  4x4, with batch normalisation and ReLU, to a tanh RGB image in [-1, 1].
- Discriminator: strided convolutions with LeakyReLU (batch normalisation, or spectral
  normalisation instead) down to 4x4, then a *projection* head (Miyato & Koyama 2018): the
  unconditional score plus the inner product of the grade's embedding with the pooled features,
  so the discriminator judges "a real fundus of this grade", not just "a real fundus".
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from medaug.adapters.generators.dcgan.config import DCGANRecipe
from medaug.domain.grades import ALL_GRADES

NUM_GRADES = len(ALL_GRADES)
LEAK = 0.2


def channel_plan(base: int, resolution: int, max_multiplier: int) -> list[int]:
    """Channels per level from 4x4 up to ``resolution / 2`` (the generator's order).

    The finest level has ``base`` channels; each coarser one doubles, capped at
    ``base * max_multiplier``. The discriminator uses the same plan reversed.
    """
    levels = int(math.log2(resolution)) - 2
    return [base * min(2 ** (levels - 1 - i), max_multiplier) for i in range(levels)]


class Generator(nn.Module):
    """Maps a latent ``z`` and a grade to an RGB image in [-1, 1] of ``resolution`` pixels.

    Args:
        recipe: the model's resolution, latent size, embedding size and channels.
    """

    def __init__(self, recipe: DCGANRecipe) -> None:
        super().__init__()
        channels = channel_plan(recipe.g_channels, recipe.resolution, recipe.max_multiplier)
        self.latent_dim = recipe.latent_dim
        self.embed = nn.Embedding(NUM_GRADES, recipe.embed_dim)
        layers: list[nn.Module] = [_up(recipe.latent_dim + recipe.embed_dim, channels[0], stride=1, padding=0)]
        layers += [_up(c_in, c_out) for c_in, c_out in itertools.pairwise(channels)]
        layers += [nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
        """Images ``B x 3 x R x R`` for latents ``B x latent_dim`` and grades ``B``."""
        code = torch.cat([z, self.embed(grades)], dim=1)
        return self.net(code[:, :, None, None])


class Discriminator(nn.Module):
    """Scores (logits) how much each image looks like a real fundus of its grade.

    Args:
        recipe: resolution, channels and whether to use spectral normalisation.
    """

    def __init__(self, recipe: DCGANRecipe) -> None:
        super().__init__()
        norm = _spectral if recipe.spectral_norm else (lambda module: module)
        channels = list(reversed(channel_plan(recipe.d_channels, recipe.resolution, recipe.max_multiplier)))
        layers: list[nn.Module] = [norm(nn.Conv2d(3, channels[0], 4, 2, 1)), nn.LeakyReLU(LEAK, inplace=True)]
        for c_in, c_out in itertools.pairwise(channels):
            layers += _down(c_in, c_out, norm, batch_norm=not recipe.spectral_norm)
        self.features = nn.Sequential(*layers)
        self.score = norm(nn.Conv2d(channels[-1], 1, 4, 1, 0))
        self.embed = norm(nn.Embedding(NUM_GRADES, channels[-1]))

    def forward(self, images: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
        """Logits ``B`` for images ``B x 3 x R x R`` of grades ``B``."""
        features = self.features(images)
        unconditional = self.score(features).flatten()
        projection = (self.embed(grades) * features.sum(dim=(2, 3))).sum(dim=1)
        return unconditional + projection


def _up(c_in: int, c_out: int, *, stride: int = 2, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


def _down(c_in: int, c_out: int, norm, *, batch_norm: bool) -> list[nn.Module]:  # type: ignore[no-untyped-def]
    conv = norm(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm))
    middle: list[nn.Module] = [nn.BatchNorm2d(c_out)] if batch_norm else []
    return [conv, *middle, nn.LeakyReLU(LEAK, inplace=True)]


def _spectral(module: nn.Module) -> nn.Module:
    return spectral_norm(module)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: convolutions N(0, 0.02), batch-norm scales N(1, 0.02) (seed torch first)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)):
            target = layer.parametrizations.weight.original if hasattr(layer, "parametrizations") else layer.weight
            nn.init.normal_(target, 0.0, 0.02)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def build_networks(recipe: DCGANRecipe, seed: int) -> tuple[Generator, Discriminator]:
    """Freshly initialised generator and discriminator, the same for the same seed."""
    torch.manual_seed(seed)
    generator, discriminator = Generator(recipe), Discriminator(recipe)
    init_weights(generator)
    init_weights(discriminator)
    return generator, discriminator


def latent(seed: int, latent_dim: int) -> torch.Tensor:
    """The latent vector of one image: drawn from ``torch.Generator().manual_seed(seed)`` alone."""
    return torch.randn(latent_dim, generator=torch.Generator().manual_seed(seed))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def recalibrate_batch_norm(generator: Generator, latents: torch.Tensor, grades: torch.Tensor, batch_size: int) -> None:
    """Recompute the generator's batch-norm statistics for its current (e.g. averaged) weights.

    Sampling runs the generator in eval mode so that each image depends on its own latent only,
    not on the batch it is in; the running statistics must then match the weights used, which an
    exponential average of weights does not guarantee. This sets them to the exact average of the
    batch statistics over ``latents`` in batches of ``batch_size`` (like training batches).
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for layer in norms:
        layer.reset_running_stats()
        layer.momentum = None
    generator.train()
    with torch.no_grad():
        for start in range(0, len(latents), batch_size):
            generator(latents[start : start + batch_size], grades[start : start + batch_size])
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    generator.eval()


def sample_images(
    generator: Generator, grades: list[int], seeds: list[int], *, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Images ``N x 3 x R x R`` in [0, 1] on the CPU, one per (grade, seed), from an eval-mode generator.

    Each image's latent comes from its own seed (:func:`latent`) and the generator runs in eval
    mode in batches of exactly ``batch_size`` (the last one padded), so an image depends on its
    grade and seed only, not on the other requests or how they are grouped.
    """
    if len(grades) != len(seeds):
        raise ValueError(f"{len(grades)} grades for {len(seeds)} seeds")
    if not seeds:
        return torch.empty(0, 3, 0, 0)
    generator.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(seeds), batch_size):
            chunk = slice(start, start + batch_size)
            latents = torch.stack([latent(seed, generator.latent_dim) for seed in seeds[chunk]])
            labels = torch.tensor(grades[chunk], dtype=torch.long)
            count = len(latents)
            latents, labels = _pad(latents, batch_size), _pad(labels, batch_size)
            images = generator(latents.to(device), labels.to(device))[:count]
            outputs.append(images.float().cpu())
    return torch.cat(outputs).add_(1.0).div_(2.0).clamp_(0.0, 1.0)


def _pad(values: torch.Tensor, size: int) -> torch.Tensor:
    missing = size - len(values)
    if missing <= 0:
        return values
    return torch.cat([values, torch.zeros((missing, *values.shape[1:]), dtype=values.dtype)])

