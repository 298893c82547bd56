"""Settings keys that were renamed or removed: refuse the old key with one line naming the new one
(or saying what took its place).

Used as the body of a pydantic ``model_validator(mode="before")``, so a ``medaug.toml`` written
for an older medaug fails before any work starts instead of silently losing the setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def refuse_renamed(data: Any, renamed: Mapping[str, str]) -> Any:
    """Return ``data`` unchanged, or raise ``ValueError`` naming the first renamed key it uses."""
    if isinstance(data, Mapping):
        for old, new in renamed.items():
            if old in data:
                raise ValueError(f"{old!r} was renamed {new!r}")
    return data


def refuse_removed(data: Any, removed: Mapping[str, str]) -> Any:
    """Return ``data`` unchanged, or raise ``ValueError`` naming the first removed key it uses and
    what took its place."""
    if isinstance(data, Mapping):
        for old, instead in removed.items():
            if old in data:
                raise ValueError(f"{old!r} is no longer a setting: {instead}")
    return data
