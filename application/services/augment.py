"""Plan and augment: balance the training split with a generator, resumably."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog
from pydantic import BaseModel, ConfigDict

from medaug.application.errors import BudgetExhausted, ConfigError, GeneratorError
from medaug.application.ports import (
    CostEstimate,
    CostEstimating,
    GenerationRequest,
    GenerationResult,
    ImageGenerator,
    ImageStore,
    NullProgress,
    ProgressSink,
    SyntheticScreen,
    iter_batches,
)
from medaug.application.services.quality import RetryingScreen
from medaug.domain import AugmentationPlan, FundusImage, Origin, PlanPolicy, Provenance, Split, SyntheticJob, make_plan
from medaug.domain.images import storage_key

_log = structlog.get_logger(__name__)


class AugmentReport(BaseModel):
    """What an augment run did."""

    model_config = ConfigDict(frozen=True)

    augmentation: str
    planned: int
    added: int
    already_present: int
    removed_stale: int = 0
    refused: int = 0
    rejected: int = 0
    """Images a screen rejected (each replaced by a new one, or left unfilled)."""
    unfilled: int = 0
    """Jobs left without an accepted image after the screen's last attempt."""


def plan_augmentation(
    store: ImageStore,
    policy: PlanPolicy,
    *,
    seed: int,
    augmentation: str,
    generators: Sequence[str],
) -> AugmentationPlan:
    """Plan the synthetic images that balance ``store``'s real training split.

    Raises:
        DomainError: the policy cannot be met with these images.
    """
    real_train = store.list(split=Split.TRAIN, origin=Origin.REAL)
    return make_plan(real_train, policy, seed, augmentation, generators)


def augment(
    store: ImageStore,
    plan: AugmentationPlan,
    generators: Mapping[str, ImageGenerator],
    *,
    size: int,
    progress: ProgressSink | None = None,
    screen: SyntheticScreen | None = None,
    max_attempts: int = 5,
) -> AugmentReport:
    """Carry out ``plan``: generate each job not yet in the store and store it with provenance.

    The whole run holds the store's writer lock (``ImageStore.writing``): a second writing
    command on the same store waits or is refused, so two plans never delete each other's images.
    Each image is stored as soon as its batch is made, so a killed run loses at most one batch
    and a re-run continues where it stopped; jobs already stored are never redone, and synthetic
    images of this augmentation set that are not in the plan (a plan changed since) are removed.

    A generator may decline a request (a result with ``refused`` set, e.g. a content-policy
    refusal of a paid API): nothing is stored for it and it is counted in ``refused``, so the
    plan stays short by that many. A paid generator that reaches its budget raises
    ``BudgetExhausted`` carrying the results it finished in that batch: they are stored first.

    With a ``screen``, each batch is judged before it is stored and every rejected image is made
    again with a seed derived from its job's, up to ``max_attempts`` images per job (see
    ``application.services.quality.RetryingScreen``), so the plan's counts still hold.

    Raises:
        ConfigError: a generator named by the plan is not given.
        GeneratorError: a generator fails.
        BudgetExhausted: a paid generator reached its budget (finished images are kept).
        StoreError: another command holds the store's writer lock.
    """
    progress = progress or NullProgress()
    missing = sorted({job.generator for job in plan.jobs} - set(generators))
    if missing:
        raise ConfigError(f"plan {plan.augmentation!r} needs generator(s) {', '.join(missing)}, which are not configured")
    with store.writing(f"augment {plan.augmentation}"):
        return _augment(store, plan, generators, size=size, progress=progress, screen=screen, max_attempts=max_attempts)


def _augment(
    store: ImageStore,
    plan: AugmentationPlan,
    generators: Mapping[str, ImageGenerator],
    *,
    size: int,
    progress: ProgressSink,
    screen: SyntheticScreen | None,
    max_attempts: int,
) -> AugmentReport:
    stale = _remove_stale(store, plan)
    pending = [job for job in plan.jobs if not store.exists(job.image_id)]
    added = 0
    retrying = RetryingScreen(screen, max_attempts) if screen is not None else None
    with progress.task(f"augment {plan.augmentation}", total=len(pending)) as bar:
        for name, generator in generators.items():
            jobs = [job for job in pending if job.generator == name]
            for batch in iter_batches(jobs, generator.batch_size):
                added += _run_batch(store, plan, generator, list(batch), size, retrying)
                bar.advance(len(batch))
    report = AugmentReport(
        augmentation=plan.augmentation,
        planned=len(plan.jobs),
        added=added,
        already_present=len(plan.jobs) - len(pending),
        removed_stale=stale,
        refused=len(pending) - added - (retrying.unfilled if retrying else 0),
        rejected=retrying.rejected if retrying else 0,
        unfilled=retrying.unfilled if retrying else 0,
    )
    _log.info("augment_done", **report.model_dump())
    return report


def _run_batch(
    store: ImageStore,
    plan: AugmentationPlan,
    generator: ImageGenerator,
    jobs: list[SyntheticJob],
    size: int,
    retrying: RetryingScreen | None = None,
) -> int:
    requests = [_request(store, job, generator.needs_source, size) for job in jobs]
    try:
        results = generator.generate(requests)
    except BudgetExhausted as stop:
        done_jobs, done = jobs, stop.completed
        if retrying is not None:
            done_jobs, done = retrying.judge_partial(jobs, requests, stop.completed)
        _store_results(store, plan, generator, done_jobs, done)
        raise
    if len(results) != len(jobs):
        raise GeneratorError(f"generator {generator.name} returned {len(results)} images for {len(jobs)} requests")
    for job, result in zip(jobs, results, strict=True):
        if result.image_id != job.image_id:
            raise GeneratorError(f"generator {generator.name} returned {result.image_id} for {job.image_id}")
    if retrying is None:
        return _store_results(store, plan, generator, jobs, results)
    kept_jobs, kept = retrying.apply(generator, jobs, requests, results)
    stored = _store_results(store, plan, generator, kept_jobs, kept)
    if retrying.budget_stop is not None:
        raise retrying.budget_stop
    return stored


def _store_results(
    store: ImageStore,
    plan: AugmentationPlan,
    generator: ImageGenerator,
    jobs: list[SyntheticJob],
    results: Sequence[GenerationResult],
) -> int:
    by_id = {job.image_id: job for job in jobs}
    stored = 0
    for result in results:
        job = by_id.get(result.image_id)
        if job is None:
            raise GeneratorError(f"generator {generator.name} returned {result.image_id}, which was not requested")
        if result.refused:
            _log.warning("generation_refused", image_id=job.image_id, generator=generator.name, reason=result.refused)
            continue
        store.put(_record(plan, job, generator, result.parameters), result.data)
        stored += 1
    return stored


def estimate_augmentation(
    store: ImageStore, plan: AugmentationPlan, generators: Mapping[str, ImageGenerator], *, size: int
) -> dict[str, CostEstimate]:
    """What carrying out ``plan`` would cost, per generator; nothing is generated, sent or written.

    Generators that are not ``CostEstimating`` run locally and cost nothing.
    """
    pending = [job for job in plan.jobs if not store.exists(job.image_id)]
    estimates: dict[str, CostEstimate] = {}
    for name, generator in generators.items():
        requests = [_bare_request(job, size) for job in pending if job.generator == name]
        if isinstance(generator, CostEstimating):
            estimates[name] = generator.estimate(requests)
        else:
            estimates[name] = CostEstimate(requests=len(requests), notes=("runs locally: nothing is sent",))
    return estimates


def _bare_request(job: SyntheticJob, size: int) -> GenerationRequest:
    source_id = job.source_ids[0] if job.source_ids else None
    return GenerationRequest(image_id=job.image_id, grade=job.grade, seed=job.seed, source_id=source_id, size=size)


def _request(store: ImageStore, job: SyntheticJob, needs_source: bool, size: int) -> GenerationRequest:
    source_id = job.source_ids[0] if job.source_ids else None
    if needs_source and source_id is None:
        raise GeneratorError(f"job {job.image_id} has no source image, which its generator needs")
    return GenerationRequest(
        image_id=job.image_id,
        grade=job.grade,
        seed=job.seed,
        source_id=source_id,
        source=store.get(source_id) if (needs_source and source_id) else None,
        size=size,
    )


def _record(plan: AugmentationPlan, job: SyntheticJob, generator: ImageGenerator, parameters: dict) -> FundusImage:
    # The plan gives every job a source image; only a generator that reads it derives the image from it.
    sources = job.source_ids if generator.needs_source else ()
    return FundusImage(
        id=job.image_id,
        key=storage_key(Split.TRAIN, job.grade, job.image_id),
        grade=job.grade,
        split=Split.TRAIN,
        origin=Origin.SYNTHETIC,
        augmentation=plan.augmentation,
        provenance=Provenance(source_ids=sources, generator=generator.name, parameters=parameters, seed=job.seed),
    )


def _remove_stale(store: ImageStore, plan: AugmentationPlan) -> int:
    planned = {job.image_id for job in plan.jobs}
    stale = [img for img in store.list(augmentation=plan.augmentation) if img.id not in planned]
    for image in stale:
        store.delete(image.id)
    return len(stale)


def training_set(store: ImageStore, augmentation: str | None) -> list[FundusImage]:
    """Real training images plus, if ``augmentation`` is given, that set's synthetic images."""
    real = store.list(split=Split.TRAIN, origin=Origin.REAL)
    if augmentation is None:
        return real
    return real + store.list(split=Split.TRAIN, origin=Origin.SYNTHETIC, augmentation=augmentation)


class AugmentCommand(BaseModel):
    """``augment run``: grow the training split of a store with one generator.

    Attributes:
        generator: the generator's name.
        policy: how many images per grade.
        seed: the plan's seed.
        augmentation: the set's name (default: the generator's).
        dry_run: only estimate what it would make and cost; generate, send and write nothing.
    """

    model_config = ConfigDict(frozen=True)

    generator: str
    policy: PlanPolicy
    seed: int
    augmentation: str | None = None
    dry_run: bool = False


class AugmentOutcome(BaseModel):
    """What ``run_augmentation`` did: the plan, and either the report or the estimates."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    plan: AugmentationPlan
    report: AugmentReport | None = None
    estimates: dict[str, CostEstimate] | None = None


def run_augmentation(
    command: AugmentCommand,
    store: ImageStore,
    generator: ImageGenerator,
    *,
    size: int,
    screen: SyntheticScreen | None = None,
    max_attempts: int = 5,
    progress: ProgressSink | None = None,
) -> AugmentOutcome:
    """Plan ``command`` on ``store`` and carry it out with ``generator`` (or only estimate it).

    Raises:
        DomainError: the policy cannot be met.
        GeneratorError, BudgetExhausted: as ``augment``.
    """
    plan = plan_augmentation(
        store,
        command.policy,
        seed=command.seed,
        augmentation=command.augmentation or command.generator,
        generators=[command.generator],
    )
    generators = {command.generator: generator}
    if command.dry_run:
        return AugmentOutcome(plan=plan, estimates=estimate_augmentation(store, plan, generators, size=size))
    report = augment(
        store, plan, generators, size=size, progress=progress, screen=screen, max_attempts=max_attempts
    )
    return AugmentOutcome(plan=plan, report=report)
