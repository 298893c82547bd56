"""Issue 18 case 8: the weights hash is over the tensors, not the file."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from medaug.adapters.generators.checkpointing import load_weights
from medaug.adapters.weights import tensors_sha256


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))


def test_bit_identical_weights_with_other_metadata_have_one_digest(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in _net().state_dict().items()}
    save_file(state, str(tmp_path / "a.safetensors"), metadata={"step": "1", "profile": "quick"})
    save_file(dict(reversed(state.items())), str(tmp_path / "b.safetensors"), metadata={"profile": "quick", "z": "x"})
    assert (tmp_path / "a.safetensors").read_bytes() != (tmp_path / "b.safetensors").read_bytes()
    _, first = load_weights(tmp_path / "a.safetensors", _net, generator="test")
    _, second = load_weights(tmp_path / "b.safetensors", _net, generator="test")
    assert first == second


def test_any_change_of_value_dtype_shape_or_name_changes_the_digest() -> None:
    base = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(2)}
    digest = tensors_sha256(base)
    changed_value = {**base, "b": torch.tensor([0.0, 1e-7])}
    changed_dtype = {**base, "w": base["w"].to(torch.float64)}
    changed_shape = {**base, "w": base["w"].reshape(3, 2)}
    changed_name = {"w2": base["w"], "b": base["b"]}
    digests = {tensors_sha256(t) for t in (changed_value, changed_dtype, changed_shape, changed_name)}
    assert digest not in digests and len(digests) == 4
    assert tensors_sha256(dict(reversed(base.items()))) == digest
