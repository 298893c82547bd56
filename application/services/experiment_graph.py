"""The experiment as one task graph: per scope (a k-fold fold x repeat, or the holdout split)
generator training -> augmentation (screened as the job says) -> classifier cells.

Tasks carry plain data (``ScopeTask``, ``CellTask``); the same functions run them in this
process (the driver's job) or on a cluster worker (a job rebuilt from settings), so every
executor gives the same results. Independent scopes run side by side on a cluster; their
augmentations run one after another, because augmenting holds the store's writer lock.
A task whose result exists is not handed to the executor again: a cell saved, an augmentation
set complete (its generators' trainings are then not needed either). A generator whose
checkpoints are complete returns at once (``GeneratorTrainer.train`` with ``resume``).
Feature extraction stays inside the cells (a classifier caches its backbone's features in the
run folder on first use).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog

from medaug.application.ports import ProgressSink, Task, TaskEvent
from medaug.application.services.augment import plan_augmentation
from medaug.application.services.cells import CELL_TASK_PREFIX, CellAdapters, CellTask, run_cell_task
from medaug.application.services.experiment_cells import CellData, augment_arm, read_back_cell, ready_generator
from medaug.application.services.experiment_job import ExperimentJob, GeneratorScope
from medaug.domain import AugmentationPlan, FundusImage, Split, make_plan
from medaug.domain.experiment import Arm, CellKey, CellResult, ExperimentSpec

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ScopeTask:
    """Generator training or augmentation of one arm within one scope, as plain data.

    Attributes:
        phase: ``generator`` (train ``generator``) or ``augment`` (make the arm's planned images).
        arm: the arm (its generators and options).
        augmentation: the augmentation-set name of the arm in this scope.
        spec: the experiment (its plan policy and seed).
        scope: the fold's short name (``f0r0``), or None for the holdout split.
        image_ids: the real images the scope's generators learn from and its plan balances
            (k-fold: the fold's training part; holdout: empty, the store's training split).
        generator: the generator a ``generator`` task trains.
        store: location of the image store (a folder or ``s3://...``).
        runs: location of the run folder.
    """

    phase: Literal["generator", "augment"]
    arm: Arm
    store: str
    runs: str
    augmentation: str
    spec: ExperimentSpec
    scope: str | None = None
    image_ids: tuple[str, ...] = ()
    generator: str | None = None


@dataclass(frozen=True)
class ScopeWork:
    """What one scope contributes to the graph.

    Attributes:
        scope: the fold's short name, or None for the holdout split.
        real: the scope's real training images (k-fold; empty for holdout).
        arms: each augmenting arm with its set name in this scope.
        cells: each cell with its data (real images only) and the set it adds (None: real only).
    """

    scope: str | None
    real: tuple[FundusImage, ...]
    arms: tuple[tuple[Arm, str], ...]
    cells: tuple[tuple[CellKey, CellData, str | None], ...] = field(default=())


def scope_plan(job: ExperimentJob, task: ScopeTask) -> AugmentationPlan:
    """The plan of ``task``'s arm in its scope (the same on the driver and on a worker)."""
    if task.scope is None:
        return plan_augmentation(
            job.store, task.spec.policy, seed=task.spec.plan_seed, augmentation=task.augmentation, generators=task.arm.generators
        )
    return make_plan(_scope_images(job, task), task.spec.policy, task.spec.plan_seed, task.augmentation, task.arm.generators)


def run_scope_task(task: ScopeTask, job: ExperimentJob, progress: ProgressSink) -> None:
    """Train one generator, or make (and screen) one arm's images, within ``task``'s scope."""
    scope = None if task.scope is None else GeneratorScope(name=task.scope, images=tuple(_scope_images(job, task)))
    if task.phase == "generator":
        assert task.generator is not None
        ready_generator(job, task.generator, task.arm, progress, scope)
        return
    # The arm's learned generators were trained by the tasks this one depends on.
    augment_arm(job, task.arm, scope_plan(job, task), progress, scope, trained=True)


def _scope_images(job: ExperimentJob, task: ScopeTask) -> list[FundusImage]:
    """The scope's real images, relabelled as training images in memory (the store keeps its split)."""
    records = {image.id: image for image in job.store.list()}
    out = []
    for image_id in task.image_ids:
        image = records[image_id]
        out.append(image if image.split is Split.TRAIN else image.model_copy(update={"split": Split.TRAIN}))
    return out


def _trained(job: ExperimentJob, arm: Arm, scope: str | None) -> list[str]:
    """The arm's generators that learn (have a trainer) in ``scope``."""
    if scope is None:
        return [name for name in arm.generators if job.generator_trainers(name, arm) is not None]
    return [name for name in arm.generators if job.generator_trainers(name, arm, scope) is not None]


def build_graph(job: ExperimentJob, works: Sequence[ScopeWork]) -> list[Task]:
    """The tasks of ``works`` not done yet, each listed after the tasks it depends on.

    Per scope and augmenting arm with a cell to run: one task per generator that learns, then
    the augmentation (after them, and after the previous augmentation: one writer at a time),
    then the arm's missing cells.
    """
    spec = job.spec
    tasks: list[Task] = []
    last_augment: str | None = None
    for work in works:
        ids = tuple(image.id for image in work.real)
        missing = [(key, data, aug) for key, data, aug in work.cells if job.runs.load_cell(key) is None]
        augment_ids: dict[str, str] = {}
        for arm, name in work.arms:
            if not any(key.arm == arm.name for key, _, _ in missing):
                continue
            base = ScopeTask(phase="augment", arm=arm, store=job.store.location, runs=job.runs.location,
                             augmentation=name, spec=spec, scope=work.scope, image_ids=ids)  # fmt: skip
            if _complete(job, scope_plan(job, base)):
                _log.info("augmentation_resumed", augmentation=name)
                continue
            generators = []
            for generator in _trained(job, arm, work.scope):
                task_id = f"generator:{generator}:{name}"
                generators.append(task_id)
                tasks.append(Task(id=task_id, payload=_replace(base, generator), resources=job.generator_resources))
            augment_id = f"augment:{name}"
            depends = (*generators, *([last_augment] if last_augment else []))
            tasks.append(Task(id=augment_id, payload=base, depends_on=depends, resources=job.generator_resources))
            augment_ids[arm.name] = last_augment = augment_id
        for key, data, aug in missing:
            cell = CellTask(
                key=key, store=job.store.location, runs=job.runs.location,
                train=tuple(i.id for i in data.train), val=tuple(i.id for i in data.val),
                test=tuple(i.id for i in data.test),
                external=tuple((n, e.store.location) for n, e in job.external.items()), augmentation=aug,
            )  # fmt: skip
            depends = (augment_ids[key.arm],) if key.arm in augment_ids else ()
            tasks.append(Task(id=f"{CELL_TASK_PREFIX}{key.slug}", payload=cell, depends_on=depends, resources=job.cell_resources))
    return tasks


def _replace(task: ScopeTask, generator: str) -> ScopeTask:
    return dataclasses.replace(task, phase="generator", generator=generator)


def _complete(job: ExperimentJob, plan: AugmentationPlan) -> bool:
    return all(job.store.exists(planned.image_id) for planned in plan.jobs)


def run_graph(job: ExperimentJob, works: Sequence[ScopeWork], progress: ProgressSink) -> list[CellResult]:
    """Run every task of ``works`` not done yet on the job's executor (None: in order, here), then
    read every cell back, in the order ``works`` lists them."""
    for work in works:
        for key, _, _ in work.cells:
            if job.runs.load_cell(key) is not None:
                _log.info("cell_resumed", cell=key.slug)
    tasks = build_graph(job, works)
    external_stores = {name: external.store for name, external in job.external.items()}

    def handler(task: Task) -> None:
        payload = task.payload
        if isinstance(payload, ScopeTask):
            run_scope_task(payload, job, progress)
            return
        trainer = job.trainers[payload.key.classifier]
        run_cell_task(payload, CellAdapters(job.store, trainer, job.evaluator, job.runs, external_stores), progress)

    # One bar over the whole grid of cells (saved ones count as done from the start); generator
    # training and augmentation tasks show their own bars.
    total = sum(len(work.cells) for work in works)
    cell_tasks = sum(1 for task in tasks if isinstance(task.payload, CellTask))
    with progress.task("cells", total=total) as bar:
        bar.advance(total - cell_tasks, running=0)

        def on_event(event: TaskEvent) -> None:
            if event.task_id.startswith(CELL_TASK_PREFIX):
                bar.advance(1, running=event.running)

        if job.executor is None:
            for task in tasks:
                handler(task)
                if isinstance(task.payload, CellTask):
                    bar.advance(1, running=0)
        else:
            job.executor.run(tasks, handler, on_event)
    return [read_back_cell(job.runs, key) for work in works for key, _, _ in work.cells]

