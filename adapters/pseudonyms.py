"""Pseudonyms of ingested image ids (keyed HMAC hashes) and the mapping file that undoes them."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import SecretStr

from medaug.adapters.files import check_output_file, write_atomic
from medaug.application.errors import ConfigError
from medaug.application.ports import ImageStore


def pseudonymiser(key: SecretStr | None, key_file: Path | None) -> Callable[[str], str]:
    """Ids -> ``p-`` + 20 hex digits of HMAC-SHA256(key, id), the key given or read from ``key_file``.

    Raises:
        ConfigError: no key is set, or the key file cannot be read, is empty or too short.
    """
    if key is not None:
        secret = key.get_secret_value().encode()
    elif key_file is not None:
        try:
            secret = key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{key_file}: cannot read pseudonym_key_file ({exc.strerror or exc})") from None
    else:
        raise ConfigError("pseudonymising needs a key: set MEDAUG_PSEUDONYM_KEY or pseudonym_key_file")
    if len(secret) < 16:
        raise ConfigError("pseudonym_key: too short (at least 16 characters, e.g. from 'openssl rand -hex 32')")
    return lambda name: "p-" + hmac.new(secret, name.encode(), hashlib.sha256).hexdigest()[:20]


def check_mapping_file(path: Path, store: ImageStore) -> None:
    """Refuse, before any work, a pseudonym mapping file inside ``store`` or that cannot be written."""
    root = getattr(store, "root", None)
    if root is not None:
        resolved, store_root = path.resolve(), Path(root).resolve()
        if resolved == store_root or store_root in resolved.parents:
            raise ConfigError(f"{path}: the pseudonym mapping must be kept outside the store ({store.location})")
    check_output_file(path, "--mapping")


def write_mapping(path: Path, mapping: Mapping[str, str]) -> None:
    """Write pseudonym,original CSV rows to ``path`` atomically, readable by its owner only."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["pseudonym", "original"])
    writer.writerows(sorted(mapping.items()))
    write_atomic(path, buffer.getvalue(), mode=0o600)
