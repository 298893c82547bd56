"""Property tests of the parsers of hostile input: label-file paths and rows, ids, run names,
settings. Whatever the text, each answers with a safe value or one line (``InputError`` /
``ConfigError``), never a traceback of another kind, a path outside the folder or an id
two names share."""

from __future__ import annotations

import csv
import io
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medaug.adapters.datasets.common import assign_ids, parse_split, read_csv, relative_path, safe_id
from medaug.adapters.datasets.folder_csv import FolderCsvSource
from medaug.application.errors import ConfigError, InputError
from medaug.adapters.experiment_file import ExperimentConfig
from medaug.composition.settings import load_settings
from medaug.domain import FundusImage, Grade, Provenance, Split
from medaug.domain.images import storage_key

HOSTILE = st.lists(st.sampled_from(list("ab./\\:~ \t\0-_²٢é") + ["..", "C:", "//", "x.png"]), max_size=10).map("".join)
SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(HOSTILE)
def test_a_label_path_stays_inside_the_folder_or_is_one_line(text: str) -> None:
    try:
        relative = relative_path(text)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert not relative.is_absolute() and ".." not in relative.parts and "\0" not in str(relative)
    root = PurePosixPath("/data/set")
    assert (root / relative) == root or str(root / relative).startswith("/data/set/")


@FAST
@given(st.lists(st.tuples(st.sampled_from(["eyes", "idrid"]), HOSTILE.filter(lambda t: "\0" not in t)), max_size=12))
def test_ids_are_safe_and_distinct_names_never_share_one(names: list[tuple[str, str]]) -> None:
    distinct = list(dict.fromkeys(names))
    ids = assign_ids(distinct)
    assert len(set(ids)) == len(ids)
    for image_id in ids:
        FundusImage(id=image_id, key=storage_key(Split.TRAIN, Grade(0), image_id), grade=0, split="train",
                    provenance=Provenance(generator="t"))  # a valid record id and key


@FAST
@given(st.text(max_size=200))
def test_safe_id_is_always_a_valid_id(text: str) -> None:
    import re

    assert re.fullmatch(SAFE_ID, safe_id(text))


@FAST
@given(st.text(max_size=12))
def test_a_split_is_one_of_three_or_one_line(text: str) -> None:
    try:
        assert parse_split(text) in set(Split)
    except InputError as exc:
        assert "\n" not in str(exc)


CELL = st.lists(st.sampled_from(list('ab1,"\n\r ²-.0') + ["4", "2.5", "\ufeff", "a.png"]), max_size=6).map("".join)


@FAST
@given(st.lists(st.tuples(CELL, CELL, CELL), max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_any_labels_csv_scans_to_items_and_one_line_problems(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str]], newline: str, bom: bool
) -> None:
    root = tmp_path_factory.mktemp("csv")
    (root / "a.png").write_bytes(b"png")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows([("image", "grade", "split"), *rows])
    (root / "labels.csv").write_text(("\ufeff" if bom else "") + buffer.getvalue(), newline="")
    source = FolderCsvSource(root, root / "labels.csv", image_column="image", label_column="grade",
                             split_column="split", name="eyes")
    try:
        scan = source.scan()
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert all("\n" not in problem for problem in scan.problems)
    for item in scan.items:
        assert item.original_name == "a.png" and 0 <= int(item.grade) <= 4


@FAST
@given(st.text(max_size=20))
def test_a_run_name_is_a_plain_folder_name_or_refused(name: str) -> None:
    try:
        config = ExperimentConfig.model_validate({"name": name, "experiment": {"arms": ["none"]}})
    except ValueError as exc:  # pydantic's ValidationError
        assert "name" in str(exc)
        return
    assert Path(config.name).name == config.name and config.name not in (".", "..")
    assert not Path(config.name).is_absolute() and "/" not in config.name and "\\" not in config.name


SETTING_VALUE = st.one_of(st.integers(-5, 5000), st.text(max_size=6), st.booleans(), st.floats(allow_nan=True),
                          st.lists(st.integers(0, 3), max_size=2))


@FAST
@given(st.sampled_from(["image_size", "seed", "device", "pseudonymise", "work_dir", "store.kind",
                        "store.lock_wait_seconds", "store.s3.max_workers", "generators.classic.p_flip",
                        "trainers.cnn.epochs", "nonsense", "store.nonsense"]), SETTING_VALUE)
def test_any_settings_file_loads_or_is_one_line_naming_it(
    tmp_path_factory: pytest.TempPathFactory, key: str, value: object
) -> None:
    path = tmp_path_factory.mktemp("settings") / "medaug.toml"
    *tables, field = key.split(".")
    text = (f"[{'.'.join(tables)}]\n" if tables else "") + f"{field} = {_toml(value)}\n"
    tomllib.loads(text)  # the file itself is valid TOML: only its values are hostile
    path.write_text(text)
    try:
        load_settings(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value == float("inf") else "-inf" if value == float("-inf")
                                             else repr(value))
    if isinstance(value, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\U{ord(c):08x}" for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
