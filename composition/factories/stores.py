"""Image stores (local folder, S3) and the working image size read from a store.

Adapters are imported inside the factories: nothing heavy loads until a service needs it.
"""

from __future__ import annotations

from pathlib import Path

from medaug.application.errors import ConfigError
from medaug.application.ports import (
    ImageStore,
)
from medaug.composition.settings import Settings


def build_store(settings: Settings, location: str | None = None) -> ImageStore:
    """The image store named by ``location`` (a folder or ``s3://bucket/prefix``) or settings."""
    config = settings.store
    if location is not None:
        if location.startswith("s3://"):
            bucket, _, prefix = location.removeprefix("s3://").partition("/")
            config = config.model_copy(
                update={"kind": "s3", "s3": config.s3.model_copy(update={"bucket": bucket, "prefix": prefix})}
            )
        else:
            config = config.model_copy(update={"kind": "local", "root": Path(location)})
    if config.kind == "s3":
        return _build_s3_store(config)
    from medaug.adapters.stores.local import LocalImageStore

    return LocalImageStore(config.root, lock_wait=config.lock_wait_seconds)


def _build_s3_store(config) -> ImageStore:  # type: ignore[no-untyped-def]
    try:
        from medaug.adapters.stores.s3 import S3ImageStore
        from medaug.adapters.stores.s3_client import make_s3_client
    except ImportError as exc:  # pragma: no cover - until the S3 adapter lands
        raise ConfigError("store.kind = 's3' is not available in this build") from exc
    if not config.s3.bucket:
        raise ConfigError("store.kind = 's3' needs store.s3.bucket (or --store s3://bucket/prefix)")
    return S3ImageStore(
        make_s3_client(config.s3),
        bucket=config.s3.bucket,
        prefix=config.s3.prefix,
        multipart_threshold=config.s3.multipart_threshold,
        multipart_chunksize=config.s3.multipart_chunksize,
        max_workers=config.s3.max_workers,
        lock_wait=config.lock_wait_seconds,
        lease_seconds=config.s3.lease_seconds,
    )


def working_image_size(settings: Settings, store: ImageStore) -> int:
    """The side synthetic images are made at, for every flow: that of the store's real images,
    or ``settings.image_size`` for a store without any yet."""
    return store_image_size(store) or settings.image_size


def store_image_size(store: ImageStore) -> int | None:
    """The side of the store's real images (synthetic ones are made to match), or None if empty."""
    from medaug.adapters.png import decode_pil
    from medaug.domain import Origin

    real = store.list(origin=Origin.REAL)
    if not real:
        return None
    return decode_pil(store.get(real[0].id)).width
