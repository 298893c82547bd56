"""Install the design's root folders under one import root, ``medaug``.

The repository keeps the hexagon visible at its root (``domain/ application/ adapters/ cli/`` and
the composition root ``composition/``); installed, they are ``medaug.domain``, ``medaug.application``,
``medaug.adapters``, ``medaug.cli`` and ``medaug.composition``. ``medaug`` itself is a namespace
package, so each layer is found where it lies (also by import-linter, which lints the layers as
portions of that namespace). Everything else (name, dependencies, tools) lives in pyproject.toml.
"""

from setuptools import find_packages, setup

LAYERS = ("domain", "application", "adapters", "cli", "composition")


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for layer in LAYERS:
        package_dir[f"medaug.{layer}"] = layer
        packages += [f"medaug.{layer}", *(f"medaug.{layer}.{sub}" for sub in find_packages(layer))]
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
