"""``medaug data ingest folder|idrid`` and ``medaug data stats`` end to end on tiny data sets."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import app
from medaug.domain import Grade, Split
from tests.adapters.test_idrid import make_idrid

runner = CliRunner()




def fundus_jpeg(seed: int) -> bytes:
    """A bright disc on black, 40x30, slightly different per seed."""
    yy, xx = np.mgrid[0:30, 0:40]
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    pixels[(xx - 20) ** 2 + (yy - 15) ** 2 <= 144] = (180 + seed, 90, 30)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_dataset(root: Path, rows: list[str]) -> tuple[Path, Path]:
    folder = root / "images"
    folder.mkdir(parents=True)
    for seed, name in enumerate(["a.jpg", "b.jpg", "c.jpg"]):
        (folder / name).write_bytes(fundus_jpeg(seed))
    (folder / "broken.jpg").write_bytes(fundus_jpeg(9)[:100])
    csv_path = root / "labels.csv"
    csv_path.write_text("image,grade,split\n" + "".join(f"{row}\n" for row in rows))
    return folder, csv_path


def flat(text: str) -> str:
    """The text with rich's line wrapping (80 columns under the runner) undone."""
    return " ".join(text.split())


def ingest_folder(folder: Path, csv_path: Path, store: Path, *extra: str):  # type: ignore[no-untyped-def]
    args = ["-q", "data", "ingest", "folder", str(folder), "--csv", str(csv_path), "--store", str(store),
            "--size", "32", "--split-column", "split", "--name", "eyes", *extra]
    return runner.invoke(app, args)


GOOD_ROWS = ["a.jpg,0,train", "b.jpg,2,train", "c.jpg,2,test", "broken.jpg,4,train"]


def test_folder_ingest_then_stats(tmp_path: Path) -> None:
    folder, csv_path = make_dataset(tmp_path, GOOD_ROWS[:3])
    (folder / "broken.jpg").unlink()
    store = tmp_path / "store"
    result = ingest_folder(folder, csv_path, store)
    assert result.exit_code == 0, result.output
    assert "3 added, 0 already present, 0 skipped" in flat(result.stdout)
    records = LocalImageStore(store).list()
    assert [(r.id, r.split, r.grade) for r in records] == [
        ("eyes-a", Split.TRAIN, Grade(0)),
        ("eyes-b", Split.TRAIN, Grade(2)),
        ("eyes-c", Split.TEST, Grade(2)),
    ]
    assert records[0].provenance.generator == "eyes" and records[0].provenance.original_name == "a.jpg"
    with Image.open(io.BytesIO(LocalImageStore(store).get("eyes-a"))) as image:
        assert image.size == (32, 32) and image.mode == "RGB"

    again = ingest_folder(folder, csv_path, store)
    assert again.exit_code == 0 and "0 added, 3 already present" in flat(again.stdout)

    stats = runner.invoke(app, ["data", "stats", "--store", str(store)])
    assert stats.exit_code == 0, stats.output
    assert "3 images" in stats.output
    counts = {  # first word of the row label (rich may wrap "train real") -> the count cells
        cells[1].split()[0]: [cell.strip() for cell in cells[2:-1]]
        for cells in (line.split("│") for line in stats.stdout.splitlines())
        if len(cells) > 3 and cells[2].strip()
    }
    assert counts == {"test": ["0", "0", "1", "0", "0", "1"], "train": ["1", "0", "1", "0", "0", "2"]}


def test_bad_csv_stops_with_one_line_and_stores_nothing(tmp_path: Path) -> None:
    folder, csv_path = make_dataset(tmp_path, ["a.jpg,0,train", "b.jpg,7,train", "c.jpg,two,test"])
    (folder / "broken.jpg").unlink()
    store = tmp_path / "store"
    result = ingest_folder(folder, csv_path, store)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1
    assert errors[0].startswith("error: labels.csv row 3: grade 7 is outside 0-4")
    assert "1 more problem;" in errors[0]
    assert LocalImageStore(store).list() == []


def test_lenient_skips_and_reports_bad_rows_and_images(tmp_path: Path) -> None:
    folder, csv_path = make_dataset(tmp_path, ["a.jpg,0,train", "b.jpg,7,train", *GOOD_ROWS[2:]])
    store = tmp_path / "store"
    strict = ingest_folder(folder, csv_path, store)
    assert strict.exit_code != 0 and LocalImageStore(store).list() == []

    result = ingest_folder(folder, csv_path, store, "--lenient")
    assert result.exit_code == 0, result.output
    assert "skipped: labels.csv row 3: grade 7 is outside 0-4" in flat(result.stderr)
    assert "skipped: broken.jpg: truncated or corrupt image" in flat(result.stderr)
    assert "2 added, 0 already present, 2 skipped" in flat(result.stdout)
    assert [r.id for r in LocalImageStore(store).list()] == ["eyes-a", "eyes-c"]


def test_unknown_column_is_one_line(tmp_path: Path) -> None:
    folder, csv_path = make_dataset(tmp_path, GOOD_ROWS)
    result = ingest_folder(folder, csv_path, tmp_path / "store", "--label-column", "level")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "labels.csv: no column 'level'; available columns: 'image', 'grade', 'split'" in flat(result.stderr)


def test_idrid_ingest(tmp_path: Path) -> None:
    make_idrid(tmp_path / "idrid")
    store = tmp_path / "store"
    result = runner.invoke(app, ["-q", "data", "ingest", "idrid", str(tmp_path / "idrid"), "--store", str(store),
                                 "--size", "16"])
    assert result.exit_code == 0, result.output
    assert [r.id for r in LocalImageStore(store).list()] == [
        "idrid-test-IDRiD_001", "idrid-test-IDRiD_002",
        "idrid-train-IDRiD_001", "idrid-train-IDRiD_002", "idrid-train-IDRiD_003",
    ]


def test_idrid_ingest_of_a_wrong_folder_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["-q", "data", "ingest", "idrid", str(tmp_path), "--store", str(tmp_path / "s")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "not the IDRiD layout" in flat(result.stderr)
