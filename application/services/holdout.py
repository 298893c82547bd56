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
    augment_arm,
    comparisons,
    run_cells_of,
    summaries,
)
from medaug.application.services.experiment_job import ExperimentJob
from medaug.application.services.splits import carve_validation
from medaug.domain import Split
from medaug.domain.kfold import DuplicateGroup


def run_holdout(job: ExperimentJob, duplicates: Sequence[DuplicateGroup], progress: ProgressSink) -> ProtocolRun:
    """Augment every arm (screened where its screen says so), then run the cells; the result
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
    acceptance = {}
    for arm in spec.arms:
        if arm.augments:
            rows = augment_arm(job, arm, plans[arm.name], progress)
            if rows:
                acceptance[arm.name] = rows
    val, test = tuple(store.list(split=Split.VAL)), tuple(store.list(split=Split.TEST))
    items = []
    for key in spec.cells():
        arm = next(a for a in spec.arms if a.name == key.arm)
        train = tuple(training_set(store, arm.name if arm.augments else None))
        items.append((key, CellData(train=train, val=val, test=test)))
    cells = run_cells_of(job, items, progress)
    return ProtocolRun(
        cells=tuple(cells),
        fields={
            "acceptance": acceptance,
            "summaries": summaries(spec, cells, job.evaluator),
            "comparisons": tuple(comparisons(spec, cells, job.evaluator)),
            "test_images": len(test),
        },
    )
