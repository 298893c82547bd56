"""The decoded-image cache the classifiers use (it lives in the neutral ``adapters.image_tensors``)."""

from medaug.adapters.image_tensors import (
    DEFAULT_BUDGET_BYTES,
    ImageTensors,
    TensorCache,
    decode_image,
    shared_cache,
    stack_cached,
)

__all__ = ["DEFAULT_BUDGET_BYTES", "ImageTensors", "TensorCache", "decode_image", "shared_cache", "stack_cached"]
