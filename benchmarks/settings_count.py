"""Count the settings classes and their fields (issue 25: "fewer classes and fields").

Settings classes: pydantic models defined in composition/settings.py and adapters/**/config.py
(and adapters/classifier_config.py). Run: ``python benchmarks/settings_count.py``.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent


def settings_modules() -> list[str]:
    """The dotted names of the modules that define settings."""
    files = [ROOT / "composition" / "settings.py", *sorted((ROOT / "adapters").rglob("*config.py"))]
    return ["medaug." + ".".join(f.relative_to(ROOT).with_suffix("").parts) for f in files]


def main() -> None:
    classes = 0
    fields = 0
    own_fields = 0
    for name in settings_modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseModel) and cls.__module__ == name:
                classes += 1
                fields += len(cls.model_fields)
                inherited = {f for base in cls.__mro__[1:] if issubclass(base, BaseModel) for f in base.model_fields}
                own = len(set(cls.model_fields) - inherited)
                own_fields += own
                print(f"{name}.{cls.__name__}: {len(cls.model_fields)} fields ({own} declared here)")
    print(f"TOTAL: {classes} classes, {fields} fields ({own_fields} declared, not inherited)")


if __name__ == "__main__":
    main()
