"""Experiment definitions shipped with medaug (``quick.toml`` is the built-in default)."""
