"""Score a saved classifier on a store's test images and on external test sets."""

from __future__ import annotations

from collections.abc import Mapping

from medaug.application.errors import ConfigError
from medaug.application.ports import Evaluator, ImageStore, SavedClassifier
from medaug.domain import Origin, Split
from medaug.domain.experiment import Metrics


def evaluate_saved(
    classifier: SavedClassifier,
    store: ImageStore,
    evaluator: Evaluator,
    *,
    external: Mapping[str, ImageStore] | None = None,
) -> dict[str, Metrics]:
    """Metrics of ``classifier`` on ``store``'s test split (key ``test``) and on every real image
    of each ``external`` store (by name).

    Raises:
        ConfigError: the store has no test images and no external set is given, or an external
            store is empty.
    """
    out: dict[str, Metrics] = {}
    test = store.list(split=Split.TEST)
    if test:
        out["test"] = evaluator.metrics(classifier.predict(test, store))
    for name, other in (external or {}).items():
        images = sorted(other.list(origin=Origin.REAL), key=lambda image: image.id)
        if not images:
            raise ConfigError(f"external set {name}: {other.location} holds no images")
        out[name] = evaluator.metrics(classifier.predict(images, other))
    if not out:
        raise ConfigError(f"{store.location}: no test images to evaluate on; pass --external")
    return out
