"""Help texts render as written: Typer passes them through Rich markup, which silently drops a
bare ``[word]`` (``--executor`` once read "ray (settings )")."""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text
from typer.testing import CliRunner

from medaug.cli.app import app


def _helps(command: Any, path: str) -> list[tuple[str, str]]:
    found = [(path, command.help or "")]
    found += [(f"{path} {p.name}", p.help) for p in command.params if getattr(p, "help", None)]
    for name, sub in getattr(command, "commands", {}).items():  # a group (Typer vendors its own click)
        found += _helps(sub, f"{path} {name}")
    return found


def test_no_help_text_loses_words_to_rich_markup() -> None:
    helps = _helps(typer.main.get_command(app), "medaug")
    assert len(helps) > 50  # the walk reached the options
    lost = [(where, text) for where, text in helps if Text.from_markup(text).plain != text.replace("\\[", "[")]
    assert not lost, lost


def test_the_executor_option_names_its_settings_table() -> None:
    result = CliRunner().invoke(app, ["experiment", "run", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert "configured by the settings table [executor])" in " ".join(result.output.split())
