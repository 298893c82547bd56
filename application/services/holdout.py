"""The holdout protocol: the store's own split, a validation share carved once, every arm
augmented once, every cell tested on the same test images.

Statistics: each arm against the baseline with the exact McNemar test on the pooled paired test
outcomes and a paired bootstrap interval of the accuracy difference (its primary test).
"""

from __future__ import annotations

from collections.abc import Sequence

from medaug.application.ports import ProgressSink
from medaug.application.services.augment import plan_augmentation, training_set
from medaug.application.services.experiment_cells import (
    CellData,
    ProtocolRun,
    acceptance_of,
    comparisons,
    summaries,
)
from medaug.application.services.experiment_graph import ScopeWork, run_graph
from medaug.application.services.experiment_job import ExperimentJob
from medaug.application.services.splits import carve_validation
from medaug.domain import Split
from medaug.domain.kfold import DuplicateGroup


def run_holdout(job: ExperimentJob, duplicates: Sequence[DuplicateGroup], progress: ProgressSink) -> ProtocolRun:
    """Augment every arm (screened where its screen says so), then run the cells, as one task
    graph (``experiment_graph``); the result
    fields are the summaries, the comparisons and each screened arm's acceptance per grade.

    ``duplicates`` are only reported: the store's split stands as published.
    """
    spec, store = job.spec, job.store
    carve_validation(store, spec.val_fraction, spec.plan_seed)
    plans = {
        arm.name: plan_augmentation(
            store, spec.policy, seed=spec.plan_seed, augmentation=arm.name, generators=arm.generators
        )
        for arm in spec.arms
        if arm.augments
    }
    val, test = tuple(store.list(split=Split.VAL)), tuple(store.list(split=Split.TEST))
    real = tuple(training_set(store, None))
    data = CellData(train=real, val=val, test=test)
    augmenting = {arm.name: arm for arm in spec.arms if arm.augments}
    items = tuple((key, data, key.arm if key.arm in augmenting else None) for key in spec.cells())
    work = ScopeWork(scope=None, real=(), arms=tuple((arm, arm.name) for arm in augmenting.values()), cells=items)
    cells = run_graph(job, [work], progress)
    acceptance = {}
    for arm in augmenting.values():
        rows = acceptance_of(job, arm, plans[arm.name])
        if rows:
            acceptance[arm.name] = rows
    return ProtocolRun(
        cells=tuple(cells),
        fields={
            "acceptance": acceptance,
            "summaries": summaries(spec, cells, job.evaluator),
            "comparisons": tuple(comparisons(spec, cells, job.evaluator)),
            "test_images": len(test),
        },
    )
