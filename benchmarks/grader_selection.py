"""Choose the fixed split's grader by cross-validation on the TRAINING images only.

Every variant (backbone, input size, head, test-time flips) is a real ``efficientnet-*``
classifier of medaug run through ``train_and_predict`` on stratified 5-fold splits of the store's
training split (the 103 test images are never read); features are cached in ``--features`` and
shared by the variants. Prints pooled accuracy and quadratic kappa per variant and the variant with
the highest accuracy + kappa (both goals of the fixed split weigh the same). Variants include the
ordinal head tuned for accuracy + kappa (``ordinal_objective``), its penalty and class weighting
chosen on inner folds, extra pooled features (``extra_features``: lite0 at 384 + 512 px, lite0 +
lite2) and partial fine-tuning on cached maps (``efficientnet-lite0-partial``).

    python benchmarks/grader_selection.py --store medaug-data/stores/idrid-512px \
        --features /tmp/features --seeds 0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score
from sklearn.model_selection import StratifiedKFold

from medaug.application.ports import TrainingRequest
from medaug.composition import factories
from medaug.composition.settings import load_settings
from medaug.domain import Origin, Split

VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "lite0-384-ordinal": ("efficientnet-lite0", {"input_size": 384, "head": "ordinal"}),
    "lite0-384-ordinal-tta": ("efficientnet-lite0", {"input_size": 384, "head": "ordinal", "test_views": ["id", "h"]}),
    "lite0-384-linear": ("efficientnet-lite0", {"input_size": 384, "head": "linear"}),
    "lite0-384-linear-tta": ("efficientnet-lite0", {"input_size": 384, "head": "linear", "test_views": ["id", "h"]}),
    "lite2-260-ordinal": ("efficientnet-lite2", {"input_size": 260, "head": "ordinal"}),
    "lite2-260-ordinal-tta": ("efficientnet-lite2", {"input_size": 260, "head": "ordinal", "test_views": ["id", "h"]}),
    "lite2-260-linear": ("efficientnet-lite2", {"input_size": 260, "head": "linear"}),
    "lite2-260-linear-tta": ("efficientnet-lite2", {"input_size": 260, "head": "linear", "test_views": ["id", "h"]}),
    # thresholds (and penalty, class weighting) chosen on inner folds for accuracy + kappa, not kappa alone
    "lite0-384-ordinal-acckappa": ("efficientnet-lite0", {"input_size": 384, "head": "ordinal",
                                                          "ordinal_objective": "accuracy+kappa"}),
    "lite0-384-ordinal-acckappa-cw": ("efficientnet-lite0", {
        "input_size": 384, "head": "ordinal", "ordinal_objective": "accuracy+kappa",
        "ordinal_cs": [0.003, 0.01, 0.03], "ordinal_class_weights": ["none", "balanced"]}),
    # multi-scale (lite0 at 384 and 512 px) and a lite0 + lite2 feature ensemble
    "lite0-384+512-ordinal-acckappa": ("efficientnet-lite0", {
        "input_size": 384, "head": "ordinal", "ordinal_objective": "accuracy+kappa",
        "extra_features": ["efficientnet-lite0@512"]}),
    "lite0-384+lite2-260-ordinal-acckappa": ("efficientnet-lite0", {
        "input_size": 384, "head": "ordinal", "ordinal_objective": "accuracy+kappa",
        "extra_features": ["efficientnet-lite2@260"]}),
    "lite0-384+512-ordinal": ("efficientnet-lite0", {"input_size": 384, "head": "ordinal",
                                                     "extra_features": ["efficientnet-lite0@512"]}),
    "lite0-384+lite2-260-ordinal": ("efficientnet-lite0", {"input_size": 384, "head": "ordinal",
                                                           "extra_features": ["efficientnet-lite2@260"]}),
    "lite0-384+512-linear": ("efficientnet-lite0", {"input_size": 384, "head": "linear",
                                                    "extra_features": ["efficientnet-lite0@512"]}),
    "lite0-384+lite2-260-linear": ("efficientnet-lite0", {"input_size": 384, "head": "linear",
                                                          "extra_features": ["efficientnet-lite2@260"]}),
    # partial fine-tuning on cached maps: the last stage (7) or the last two (6, 7) trained
    "lite0-384-partial": ("efficientnet-lite0-partial", {"input_size": 384}),
    "lite0-384-partial-s6": ("efficientnet-lite0-partial", {"input_size": 384, "partial_stage": 6}),
}


class _Quiet:
    """A progress sink that shows nothing."""

    from contextlib import contextmanager

    @contextmanager
    def task(self, description: str, total: int | None):  # type: ignore[no-untyped-def]
        class _Task:
            def advance(self, steps: int = 1, **fields: object) -> None:
                pass

        yield _Task()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    base = load_settings(image_size=512)
    store = factories.build_store(base, str(args.store))
    train = sorted((r for r in store.list(origin=Origin.REAL) if r.split == Split.TRAIN), key=lambda r: r.id)
    grades = np.array([r.grade for r in train])
    print(f"{len(train)} training images (test split not read); folds {args.folds}; seeds {seeds}")
    scores = {}
    for variant in args.variants.split(","):
        name, options = VARIANTS[variant]
        settings = load_settings(image_size=512, trainers={name.replace("-", "_"): options})
        trainer = factories.build_trainer(name, settings, feature_dir=args.features)
        start = time.perf_counter()
        labels, predicted = [], []
        for seed in seeds:
            splitter = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=seed)
            for fit, held in splitter.split(np.zeros(len(train)), grades):
                request = TrainingRequest(train=tuple(train[i] for i in fit), test=tuple(train[i] for i in held), seed=seed)
                outcome = trainer.train_and_predict(request, store, progress=_Quiet())
                labels.extend(outcome.predictions.labels)
                predicted.extend(outcome.predictions.predicted)
        accuracy = accuracy_score(labels, predicted)
        kappa = cohen_kappa_score(labels, predicted, weights="quadratic")
        scores[variant] = accuracy + kappa
        print(f"{variant:24s} accuracy {100 * accuracy:5.1f} %  kappa {kappa:.3f}  ({time.perf_counter() - start:.0f} s)",
              flush=True)
    best = max(scores, key=scores.__getitem__)
    print(f"chosen (highest accuracy + kappa on the training images' folds): {best}")


if __name__ == "__main__":
    main()
