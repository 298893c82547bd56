"""Use cases of medaug, each a small service over ports."""
