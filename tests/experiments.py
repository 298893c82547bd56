"""The tiny phantom experiments the end-to-end tests run (CNN on 32-px images, no quality screen),
and the CLI call they run them with: written once here."""

from __future__ import annotations

import json
from collections.abc import Sequence

from typer.testing import CliRunner, Result

from medaug.cli.app import app

BALANCE = 'policy = { kind = "balance-largest" }\n'
"""The augmentation policy line most tiny experiments use (tests replace it to try others)."""


def experiment_head(name: str, *, n: int, arms: Sequence[str] = ("none", "classic"), seeds: Sequence[int] = (0,),
                    experiment: str = "") -> str:
    """The TOML of a phantom experiment of ``n`` images up to its ``[settings]``; ``experiment``:
    more ``[experiment]`` lines (each ending in a newline)."""
    return (
        f'\nname = "{name}"\n[dataset]\nkind = "phantom"\nn = {n}\n'
        f'[experiment]\narms = {json.dumps(list(arms))}\nclassifiers = ["cnn"]\nseeds = {json.dumps(list(seeds))}\n'
        f"{experiment}"
    )


def tiny_experiment(name: str, *, n: int, arms: Sequence[str] = ("none", "classic"), seeds: Sequence[int] = (0,),
                    experiment: str = "", epochs: int = 1, tables: str = "") -> str:
    """A whole tiny experiment: ``experiment_head`` and settings training the CNN ``epochs``
    epochs on 32-px images without the quality screen; ``tables``: more settings tables."""
    settings = (
        f"[settings]\nimage_size = 32\n[settings.trainers.cnn]\nepochs = {epochs}\n{tables}"
        "[settings.quality]\nin_experiments = false\n"
    )
    return experiment_head(name, n=n, arms=arms, seeds=seeds, experiment=experiment) + settings


def invoke(*args: str) -> Result:
    """``medaug --quiet ARGS`` through the Typer app; fails the test on an exception other than an exit."""
    result = CliRunner().invoke(app, ["--quiet", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result
