"""EfficientNet-Lite cut at a stage: a frozen front whose maps are cached, a trained back.

The network's seven stages (groups of MBConv blocks that share a width; a stage's first block
changes width or stride) are cut before stage ``k``: the stem and stages ``1..k-1`` run once per
image (the loop's feature cache keeps their output maps), stages ``k..7``, the head convolution
and a new five-grade layer are trained on those maps. Every training image, synthetic ones
included, then changes what is learned, at the cost of the back part only.

Batch-normalisation statistics stay ImageNet's (the back part's normalisation layers run in
evaluation mode): the cells train on a few hundred images, in small batches.
"""

from __future__ import annotations

import torch
from torch import nn

from medaug.adapters.trainers.network import NUM_GRADES
from medaug.application.errors import ConfigError


def stage_starts(network: nn.Module) -> list[int]:
    """The index of the first block of each stage (its block arguments carry the stage's stride as a list)."""
    return [i for i, block in enumerate(network._blocks) if isinstance(block._block_args.stride, list | tuple)]


def check_stage(variant: str, network: nn.Module, stage: int) -> int:
    """The index of the first block of ``stage`` (1-based).

    Raises:
        ConfigError: the backbone has no such stage (one line naming the setting and the range).
    """
    starts = stage_starts(network)
    if not 1 <= stage <= len(starts):
        raise ConfigError(f"partial_stage = {stage}: {variant} has stages 1-{len(starts)}")
    return starts[stage - 1]


def _drop_rate(network: nn.Module, index: int) -> float:
    rate = float(network._global_params.drop_connect_rate or 0.0)
    return rate * index / len(network._blocks)


class FrontStages(nn.Module):
    """The stem and the blocks before ``start``: images scaled ``(x - 127) / 128`` -> maps."""

    def __init__(self, network: nn.Module, start: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(network._conv_stem, network._bn0, network._swish)
        self.blocks = nn.ModuleList(network._blocks[:start])
        self.rates = [_drop_rate(network, i) for i in range(start)]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.stem(inputs)
        for block, rate in zip(self.blocks, self.rates, strict=True):
            x = block(x, drop_connect_rate=rate)
        return x


class BackStages(nn.Module):
    """The blocks from ``start`` on, the head convolution, average pooling, dropout and a new
    five-grade layer: maps -> logits."""

    def __init__(self, network: nn.Module, start: int, dropout: float, classes: int = NUM_GRADES) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(network._blocks[start:])
        self.rates = [_drop_rate(network, i) for i in range(start, len(network._blocks))]
        self.head = nn.Sequential(network._conv_head, network._bn1, network._swish)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(int(network._bn1.num_features), classes)
        nn.init.xavier_normal_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def train(self, mode: bool = True) -> BackStages:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        x = maps
        for block, rate in zip(self.blocks, self.rates, strict=True):
            x = block(x, drop_connect_rate=rate)
        pooled = self.head(x).mean(dim=(2, 3))
        return self.classifier(self.dropout(pooled))


def split_at_stage(variant: str, network: nn.Module, stage: int, dropout: float) -> tuple[FrontStages, BackStages]:
    """The frozen front (eval mode, no gradients) and the trained back of ``network`` cut before ``stage``.

    Raises:
        ConfigError: no such stage.
    """
    start = check_stage(variant, network, stage)
    front = FrontStages(network, start).eval()
    for parameter in front.parameters():
        parameter.requires_grad_(False)
    return front, BackStages(network, start, dropout)
