"""Issue 26 item 6: ``ingest --update`` killed at any point, then run again, leaves no synthetic
image derived from a relabelled source (the update and the removal of what derives from it
are one recoverable step)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medaug.adapters.datasets.folder_csv import FolderCsvSource
from medaug.adapters.imaging.preprocess import FundusPreprocessor
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.services.ingest import ingest
from medaug.domain import FundusImage, Grade, Origin, Provenance, Split
from medaug.domain.images import storage_key
from tests.conftest import png_bytes
from tests.faults.patients import patient_folder


class Killed(BaseException):
    """The process dying: nothing after it runs (not even ``except Exception``)."""


class DyingStore(LocalImageStore):
    """A local store whose process dies just before its ``after``-th put or delete."""

    def __init__(self, root: Path, after: int) -> None:
        super().__init__(root)
        self.left = after

    def _tick(self) -> None:
        if self.left == 0:
            raise Killed
        self.left -= 1

    def put(self, image: FundusImage, data: bytes, *, overwrite: bool = False) -> None:
        self._tick()
        super().put(image, data, overwrite=overwrite)

    def delete(self, image_id: str) -> None:
        self._tick()
        super().delete(image_id)


def _source(folder: Path, csv: Path) -> FolderCsvSource:
    return FolderCsvSource(folder, csv, image_column="image", label_column="grade", split_column="split", name="eyes")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A store of 6 real images with 2 synthetic images derived from each; the CSV then relabelled."""
    root = tmp_path_factory.mktemp("update")
    folder, csv, _ = patient_folder(root / "data", n=6, size=32)
    store = LocalImageStore(root / "base")
    ingest(_source(folder, csv), FundusPreprocessor(size=32), store, seed=0)
    for real in store.list(origin=Origin.REAL):
        if real.split is not Split.TRAIN:
            continue
        for k in range(2):
            sid = f"syn-{real.id}-{k}"
            store.put(FundusImage(id=sid, key=storage_key(Split.TRAIN, real.grade, sid), grade=real.grade,
                                  split=Split.TRAIN, origin=Origin.SYNTHETIC, augmentation="classic",
                                  provenance=Provenance(source_ids=(real.id,), generator="classic")), png_bytes(k))
    lines = csv.read_text().splitlines()
    relabelled = [lines[0]] + [",".join([n, str((int(g) + 1) % 5), s]) for n, g, s in (r.split(",") for r in lines[1:])]
    csv.write_text("\n".join(relabelled) + "\n")
    return folder, csv, root / "base"


def _stale(store: LocalImageStore) -> list[str]:
    """Synthetic images whose source's grade is no longer theirs."""
    return [s.id for s in store.list(origin=Origin.SYNTHETIC)
            if any(not store.exists(src) or store.record(src).grade != s.grade for src in s.provenance.source_ids)]


def test_a_killed_update_rerun_leaves_nothing_stale_wherever_it_was_killed(
    prepared: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    folder, csv, base = prepared
    assert LocalImageStore(base).list(origin=Origin.SYNTHETIC)
    mutations = None
    after = 0
    while mutations is None or after <= mutations:
        root = tmp_path / f"kill{after}"
        shutil.copytree(base, root)
        dying = DyingStore(root, after)
        try:
            ingest(_source(folder, csv), FundusPreprocessor(size=32), dying, update=True, seed=0)
            mutations = after if mutations is None else mutations
        except Killed:
            pass
        store = LocalImageStore(root)
        ingest(_source(folder, csv), FundusPreprocessor(size=32), store, update=True, seed=0)
        assert _stale(store) == [], f"killed before mutation {after}"
        assert all(r.grade == Grade((int(_grade_in(csv, r)) )) for r in store.list(origin=Origin.REAL))
        assert store.check() == []
        after += 1
    assert after > 10  # every put and delete of the update was a kill point


def _grade_in(csv: Path, record: FundusImage) -> str:
    name = record.provenance.original_name
    return next(line.split(",")[1] for line in csv.read_text().splitlines() if line.startswith(f"{name},"))
