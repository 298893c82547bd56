"""Secrets in settings: found wherever they sit in the settings tree, and redacted from any text
that records settings (an experiment file copied into results and reports).

Secret fields are pydantic ``SecretStr`` (their ``repr``/``model_dump`` already hide them); what
this module adds is the raw text of an experiment file, which holds the values as the user typed
them, in a ``[table]`` or inline (``generators = { openai = { api_key = "..." } }``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, SecretStr

from medaug.application.errors import ConfigError

REDACTED = "**********"


def secret_values(model: BaseModel) -> set[str]:
    """The values of every ``SecretStr`` field set anywhere in ``model`` (nested models included)."""
    return {value.get_secret_value() for _, value in _walk(model) if value.get_secret_value()}


def secret_field_names(model: BaseModel | type[BaseModel]) -> set[str]:
    """The names of every field declared ``SecretStr`` (or ``SecretStr | None``) in ``model``'s tree."""
    cls = model if isinstance(model, type) else type(model)
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        kinds = _kinds(info.annotation)
        if SecretStr in kinds:
            names.add(name)
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                names |= secret_field_names(kind)
    return names


def redact(text: str, secrets: Iterable[str], field_names: Iterable[str] = ()) -> str:
    """``text`` with every secret value, and the value of every ``name = "..."`` assignment of a
    secret field (however it was escaped), replaced by ``**********``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    names = sorted(set(field_names))
    if names:
        assignment = re.compile(
            r"""((?<![A-Za-z0-9_-])["']?(?:%s)["']?\s*=\s*)("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|\"\"\"[\s\S]*?\"\"\")"""
            % "|".join(map(re.escape, names))
        )
        text = assignment.sub(lambda m: m.group(1) + f'"{REDACTED}"', text)
    return text


def refuse_secret_options(arm: str, generator: str, options: dict[str, Any], config: BaseModel | None) -> None:
    """An arm's options are recorded with its results: a secret among them is refused (one line)."""
    if config is None:
        return
    secret = sorted(set(options) & secret_field_names(config))
    if secret:
        raise ConfigError(
            f"arm {arm!r}: option {secret[0]} of {generator} is a secret and arm options are recorded in "
            f"results; set it in [settings.generators.{generator}] or the environment instead"
        )


def _walk(model: BaseModel) -> Iterator[tuple[str, SecretStr]]:
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        yield from _values(name, value)


def _values(name: str, value: Any) -> Iterator[tuple[str, SecretStr]]:
    if isinstance(value, SecretStr):
        yield name, value
    elif isinstance(value, BaseModel):
        yield from _walk(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _values(str(key), item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _values(name, item)


def _kinds(annotation: Any) -> tuple[Any, ...]:
    args = getattr(annotation, "__args__", None)
    return tuple(args) if args else (annotation,)


def redact_settings_text(text: str, settings: BaseModel) -> str:
    """An experiment file's text as it may be recorded: every secret of ``settings`` (the file's
    ``[settings]`` merged) and every assignment of a secret field redacted."""
    return redact(text, secret_values(settings), secret_field_names(settings))


def refuse_secrets_in_arms(arms: Iterable[Any], generators: BaseModel) -> None:
    """Refuse (one line) an arm whose options set a secret field of one of its generators."""
    for arm in arms:
        for generator in arm.generators:
            refuse_secret_options(arm.name, generator, arm.options, getattr(generators, generator, None))
