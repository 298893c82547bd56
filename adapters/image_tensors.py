"""Images from the store as tensors, decoded once per process and kept in memory (shared by the
classifiers and quality assessment).

Several seeds and arms train on mostly the same images (the real ones, the test split), so
decoding each PNG once and keeping the result pays for itself many times over. Images are kept
as uint8 (a quarter of the float size); features of frozen backbones are kept the same way.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import torch

from medaug.adapters.torch_support import png_to_tensor
from medaug.application.errors import InputError
from medaug.application.ports import ImageStore
from medaug.domain import FundusImage

DEFAULT_BUDGET_BYTES = 2 * 1024**3


class TensorCache:
    """A thread-safe least-recently-used map of tensors with a budget in bytes.

    Args:
        max_bytes: the most memory the cached tensors may take; the oldest go first.
    """

    def __init__(self, max_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._max_bytes = max_bytes
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[Hashable]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def get(self, key: Hashable) -> torch.Tensor | None:
        """The tensor cached under ``key``, or None."""
        with self._lock:
            tensor = self._items.get(key)
            if tensor is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return tensor

    def put(self, key: Hashable, tensor: torch.Tensor) -> None:
        """Keep ``tensor`` under ``key`` (a tensor larger than the whole budget is not kept)."""
        size = tensor.element_size() * tensor.nelement()
        if size > self._max_bytes:
            return
        with self._lock:
            previous = self._items.pop(key, None)
            if previous is not None:
                self._bytes -= previous.element_size() * previous.nelement()
            self._items[key] = tensor
            self._bytes += size
            while self._bytes > self._max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.element_size() * evicted.nelement()

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self._bytes = 0


def decode_image(store: ImageStore, record: FundusImage, size: int | None) -> torch.Tensor:
    """One stored image as a uint8 tensor 3xSxS, resized to ``size`` when given.

    Raises:
        InputError: the stored bytes are not a readable image (naming the image and its key).
    """
    try:
        data = store.get(record.id)
    except KeyError:
        raise InputError(f"{store.location}/{record.key}: image {record.id} is not in the store") from None
    try:
        tensor = png_to_tensor(data, size)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{store.location}/{record.key}: cannot decode image ({exc})") from None
    return tensor.mul_(255.0).round_().to(torch.uint8)


class ImageTensors:
    """Decodes the store's images into uint8 batches, once per (store, image id, size).

    The cache assumes an image id keeps its pixels for the life of the process, which the
    store's ids guarantee (synthetic ids carry a digest of what defines the image).

    Args:
        cache: where decoded images are kept (shared between trainers when given).
    """

    def __init__(self, cache: TensorCache | None = None) -> None:
        self.cache = cache if cache is not None else TensorCache()

    def load(self, store: ImageStore, records: Sequence[FundusImage], size: int | None) -> torch.Tensor:
        """The images of ``records`` stacked in order: uint8 Nx3xSxS.

        Raises:
            InputError: an image cannot be read or the images differ in size (``size`` None).
        """
        return stack_cached(
            self.cache,
            [(store.identity, record.id, size) for record in records],
            lambda indices: [decode_image(store, records[i], size) for i in indices],
            what=lambda i: f"{store.location}/{records[i].key}",
        )


def stack_cached(
    cache: TensorCache,
    keys: Sequence[Hashable],
    compute: Callable[[list[int]], Sequence[torch.Tensor]],
    *,
    what: Callable[[int], str],
    batch_size: int = 64,
) -> torch.Tensor:
    """Stack the tensors of ``keys`` in order, computing the missing ones ``batch_size`` at a time.

    Args:
        cache: where tensors are looked up and kept.
        keys: one key per item.
        compute: the tensors of the items at the given indices (called only for missing ones).
        what: names an item in error messages.
        batch_size: most items per ``compute`` call.

    Raises:
        InputError: the tensors differ in shape; names the first odd one.
    """
    found: list[torch.Tensor | None] = [cache.get(key) for key in keys]
    missing = [index for index, tensor in enumerate(found) if tensor is None]
    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        for index, tensor in zip(chunk, compute(chunk), strict=True):
            cache.put(keys[index], tensor)
            found[index] = tensor
    tensors = [t for t in found if t is not None]
    for index, tensor in enumerate(tensors):
        if tensor.shape != tensors[0].shape:
            raise InputError(
                f"{what(index)}: image is {tuple(tensor.shape)[1:]} but {what(0)} is {tuple(tensors[0].shape)[1:]}; "
                "set the classifier's image size to resize them"
            )
    if not tensors:
        return torch.empty(0, dtype=torch.uint8)
    return torch.stack(tensors)


_SHARED = TensorCache()


def shared_cache() -> TensorCache:
    """The process-wide cache every trainer uses unless given its own."""
    return _SHARED
