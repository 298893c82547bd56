"""medaug composition root: settings and the one bootstrap that wires adapters into services."""

__version__ = "0.1.0"
