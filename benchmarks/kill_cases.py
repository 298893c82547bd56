"""Every writing command killed at random moments, then run to the end: is anything lost?

Used by ``benchmarks/store_reliability.py`` (all cases, printed totals) and by the test suite
(``tests/faults/test_kill_points.py``: a short case by default, the rest marked slow).

A case prepares a store (and its data set), runs its command once uninterrupted for the
reference digest, then, on a fresh copy, starts the command ``kills`` times and SIGKILLs it after
a random delay (up to the uninterrupted run's duration), runs it to the end, and compares:
``store check`` (problems left by the kills, before ``store repair``), ``store check`` after
``store repair`` (must be clean) and the store's digest (must equal the reference's: nothing
lost, nothing extra).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CLI = [sys.executable, "-c", "from medaug.cli.app import main; main()", "--quiet"]


def medaug(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``medaug`` command line in a new process."""
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=check, timeout=900)


@dataclass
class Case:
    """One writing command and the store it writes.

    Attributes:
        name: shown in the results.
        prepare: makes the starting state in a folder (the store is ``<folder>/store``).
        command: the command's arguments, given that folder.
        target: the store whose digest is compared (default ``<folder>/store``).
    """

    name: str
    prepare: Callable[[Path, dict[str, str]], None]
    command: Callable[[Path], list[str]]
    target: Callable[[Path], Path] = lambda folder: folder / "store"


@dataclass
class Outcome:
    """What the kills of one case did."""

    case: str
    kills: int = 0
    left_after_kills: list[str] = field(default_factory=list)
    problems_after_repair: list[str] = field(default_factory=list)
    digest_equal: bool = False
    final_rc: int = 0
    seconds: float = 0.0

    @property
    def data_lost(self) -> bool:
        return not self.digest_equal or bool(self.problems_after_repair) or self.final_rc != 0


def run_case(case: Case, work: Path, env: dict[str, str], *, kills: int, rng: random.Random) -> Outcome:
    """Reference run, then ``kills`` SIGKILLs at random moments and a final run on a copy."""
    base, reference, killed = work / f"{case.name}-base", work / f"{case.name}-reference", work / f"{case.name}-killed"
    base.mkdir(parents=True)
    case.prepare(base, env)
    for folder in (reference, killed):
        shutil.copytree(base, folder, symlinks=True)
        (folder / "store" / "store.json").unlink(missing_ok=True)  # each copy is a store of its own
    start = time.perf_counter()
    medaug(*case.command(reference), env=env)
    seconds = time.perf_counter() - start
    want = _digest(case.target(reference), env)
    outcome = Outcome(case.name, seconds=seconds)
    for _ in range(kills):
        proc = subprocess.Popen([*CLI, *case.command(killed)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, max(0.6, seconds)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            outcome.kills += 1
        proc.wait()
    final = medaug(*case.command(killed), env=env, check=False)
    outcome.final_rc = final.returncode
    outcome.left_after_kills = _problems(case.target(killed), env)
    medaug("store", "repair", str(case.target(killed)), env=env, check=False)
    outcome.problems_after_repair = _problems(case.target(killed), env)
    outcome.digest_equal = _digest(case.target(killed), env) == want
    return outcome


def _digest(store: Path, env: dict[str, str]) -> str:
    return medaug("store", "digest", str(store), env=env).stdout.split("digest ")[-1].strip()


def _problems(store: Path, env: dict[str, str]) -> list[str]:
    found = medaug("store", "check", str(store), env=env, check=False).stdout
    return [line for line in found.splitlines() if line.strip() and "problem(s)" not in line]


# -- the cases ---------------------------------------------------------------------------------


def _folder_set(folder: Path, n: int = 24, size: int = 64) -> None:
    """A folder data set (phantom pixels) labelled by ``labels.csv``."""
    from medaug.adapters.datasets.phantom import PhantomSource

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    source = PhantomSource(n=n, seed=5, size=size)
    rows = ["image,grade,split"]
    for number, item in enumerate(source.scan().items):
        (images / f"eye{number:03d}.png").write_bytes(source.read(item))
        rows.append(f"eye{number:03d}.png,{int(item.grade)},{item.split.value}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")


def pseudonymised_experiment(name: str, folder: Path, csv: Path, key: str, settings: str = "") -> str:
    """The TOML of an experiment on the folder set ``folder`` labelled by ``csv`` (with a split
    column) that stores its images under pseudonyms keyed by ``key``: arms none and classic, the CNN
    one epoch on 64-px images, no quality screen; ``settings``: more ``[settings]`` lines."""
    return f"""
name = "{name}"
[dataset]
kind = "folder"
path = "{folder}"
csv = "{csv}"
split_column = "split"
[experiment]
arms = ["none", "classic"]
classifiers = ["cnn"]
seeds = [0]
[settings]
image_size = 64
pseudonymise = true
pseudonym_key = "{key}"
{settings}[settings.trainers.cnn]
epochs = 1
[settings.quality]
in_experiments = false
"""


def _ingest_args(folder: Path, *extra: str) -> list[str]:
    return ["data", "ingest", "folder", str(folder / "images"), "--csv", str(folder / "labels.csv"),
            "--store", str(folder / "store"), "--size", "48", "--split-column", "split", *extra]


def _prepare_ingest(folder: Path, env: dict[str, str]) -> None:
    _folder_set(folder)
    (folder / "store").mkdir()


def _prepare_update(folder: Path, env: dict[str, str]) -> None:
    _folder_set(folder)
    medaug(*_ingest_args(folder), env=env)
    medaug("augment", "run", "--store", str(folder / "store"), "--multiply", "2", env=env)
    csv = folder / "labels.csv"
    lines = csv.read_text().splitlines()
    relabelled = [lines[0]] + [f"{n},{(int(g) + 1) % 5},{s}" for n, g, s in (line.split(",") for line in lines[1:])]
    csv.write_text("\n".join(relabelled) + "\n")


def _prepare_phantom(folder: Path, env: dict[str, str]) -> None:
    medaug("data", "phantom", "--store", str(folder / "store"), "--n", "40", "--size", "48", env=env)


CASES = {
    "ingest": Case("ingest", _prepare_ingest, lambda f: _ingest_args(f)),
    "ingest-update": Case("ingest-update", _prepare_update, lambda f: _ingest_args(f, "--update")),
    "augment": Case("augment", _prepare_phantom,
                    lambda f: ["augment", "run", "--store", str(f / "store"), "--target-total", "120"]),
    "sync": Case("sync", _prepare_phantom, lambda f: ["store", "sync", str(f / "store"), str(f / "copy")],
                 target=lambda f: f / "copy"),
    "generator-training": Case("generator-training", _prepare_phantom,
                               lambda f: ["generator", "train", "dcgan", "--store", str(f / "store"),
                                          "--profile", "tiny"]),
}
"""Every writing command: ingest, ingest --update, augment, sync, generator training (its store
must come out untouched and its training finish)."""


def environment(work: Path) -> dict[str, str]:
    """The commands' environment: a private work folder, small images, quiet logs, no lock wait."""
    return {**os.environ, "MEDAUG_WORK_DIR": str(work / "work"), "MEDAUG_IMAGE_SIZE": "48",
            "MEDAUG_LOG_LEVEL": "error", "MEDAUG_STORE__LOCK_WAIT_SECONDS": "0", "OMP_NUM_THREADS": "1"}
