"""Application services of medaug: they orchestrate the domain through ports."""
