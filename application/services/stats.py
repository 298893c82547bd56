"""Store statistics: counts per split, grade and origin."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict

from medaug.application.ports import ImageStore
from medaug.domain import Grade


class StoreStats(BaseModel):
    """Counts of images by (split, origin, augmentation set) and grade."""

    model_config = ConfigDict(frozen=True)

    location: str
    rows: dict[str, dict[Grade, int]]

    @property
    def total(self) -> int:
        """All images in the store."""
        return sum(sum(r.values()) for r in self.rows.values())


def store_stats(store: ImageStore) -> StoreStats:
    """Count the store's images per split/origin(/augmentation set) and grade."""
    counts: dict[str, Counter[Grade]] = {}
    for image in store.list():
        row = f"{image.split.value} {image.origin.value}"
        if image.augmentation:
            row += f" ({image.augmentation})"
        counts.setdefault(row, Counter())[image.grade] += 1
    rows = {row: {g: counts[row].get(g, 0) for g in Grade} for row in sorted(counts)}
    return StoreStats(location=store.location, rows=rows)
