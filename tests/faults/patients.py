"""A folder data set whose file names are patient names (from the phantom set's pixels)."""

from __future__ import annotations

from pathlib import Path

from medaug.adapters.datasets.phantom import PhantomSource

KEY = "test-pseudonym-key-0123456789abcdef"


def patient_folder(root: Path, n: int = 40, size: int = 64) -> tuple[Path, Path, list[str]]:
    """``root/images/PATIENT<k>_SURNAME<k>_OD.png`` labelled by ``root/labels.csv`` (image, grade,
    split); returns the folder, the CSV and the names (what must never leave the data set)."""
    folder = root / "images"
    folder.mkdir(parents=True)
    source = PhantomSource(n=n, seed=3, size=size)
    rows, names = ["image,grade,split"], []
    for number, item in enumerate(source.scan().items):
        name = f"PATIENT{number:04d}_SURNAME{number:04d}_OD"
        (folder / f"{name}.png").write_bytes(source.read(item))
        rows.append(f"{name}.png,{int(item.grade)},{item.split.value}")
        names += [f"PATIENT{number:04d}", f"SURNAME{number:04d}"]
    csv = root / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return folder, csv, names
