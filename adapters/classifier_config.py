"""What every classifier's training loop shares, and the thesis CNN's options: pure pydantic, no torch.

Neutral ground: the classifiers (``adapters.trainers``) and quality assessment's grading CNN
(``adapters.quality``) both configure the same network with these.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medaug.adapters.renamed_settings import refuse_renamed

Device = Literal["auto", "cpu", "cuda"]
SelectionMetric = Literal["loss", "kappa"]


class LoopConfig(BaseModel):
    """What every classifier's training loop shares.

    Attributes:
        epochs: passes over the training images.
        batch_size: images per optimisation step (the thesis used 25).
        lr: Adam's learning rate.
        weight_decay: Adam's L2 penalty.
        class_weighted: weight the cross-entropy by inverse grade frequency (balanced weights).
        online_augmentation: random flips and small rotations of each training image on the fly
            (torchvision.transforms.v2, seeded by the run's seed).
        rotation_degrees: the largest rotation of the online augmentation.
        early_stopping_patience: stop after this many epochs without improvement of the monitored
            value (the validation metric when validation images are given, else the training
            loss); None trains every epoch.
        select_best_on_val: with validation images, restore the weights of the best epoch.
        selection_metric: what "best" means on validation: lowest ``loss`` or highest ``kappa``.
        device: ``auto`` follows the global ``device`` setting (CUDA when present).
        num_threads: CPU threads for torch during a run; None leaves torch's default.
        deterministic: ask torch for deterministic algorithms on CPU.
        eval_batch_size: images per forward pass when predicting.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=80, ge=1)
    batch_size: int = Field(default=25, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    class_weighted: bool = False
    online_augmentation: bool = False
    rotation_degrees: float = Field(default=10.0, ge=0, le=180)
    early_stopping_patience: int | None = Field(default=None, ge=1)
    select_best_on_val: bool = True
    selection_metric: SelectionMetric = "loss"
    device: Device = "auto"
    num_threads: int | None = Field(default=None, ge=1)
    deterministic: bool = True
    eval_batch_size: int = Field(default=100, ge=1)


class CNNConfig(LoopConfig):
    """The thesis's "proposed CNN": three convolution + batch-norm layers, three dropout FC layers.

    Attributes:
        input_size: side the images are resized to; None keeps the store's size (``image_size``,
            its former name, is refused with a message naming this one).
        channels: output channels of the three convolutional layers (3x3, each followed by
            batch normalisation and ReLU; max-pooling between them, an adaptive average pool
            after the last, so any size from 16 px up works).
        stem_stride: stride of the first convolution (2 quarters the cost of every layer).
        pool_size: side of the adaptive pool's output grid.
        fc: widths of the three fully connected layers before the output layer.
        dropout: dropout after each fully connected layer.
    """

    epochs: int = Field(default=80, ge=1)
    input_size: int | None = Field(default=None, ge=16, le=2048)
    channels: tuple[int, int, int] = (32, 64, 128)
    stem_stride: int = Field(default=2, ge=1, le=4)
    pool_size: int = Field(default=4, ge=1, le=16)
    fc: tuple[int, int, int] = (256, 128, 64)
    dropout: float = Field(default=0.5, ge=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _refuse_old_names(cls, data: Any) -> Any:
        return refuse_renamed(data, {"image_size": "input_size"})

    @field_validator("channels", "fc")
    @classmethod
    def _positive(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(v < 1 for v in value):
            raise ValueError(f"layer widths must be positive, got {list(value)}")
        return value
