"""medaug composition root: settings and the one bootstrap that wires adapters into services."""

