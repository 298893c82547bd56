"""Quality of synthetic images: assess an augmentation set, and screen images as they are made.

``assess_quality`` compares one augmentation set's synthetic images with the store's real images
through a ``QualityAnalyzer``. ``RetryingScreen`` is the optional screen the augment service applies to
each generated batch: images a ``SyntheticScreen`` rejects (off-label, near-copies) are generated
again with a new seed derived from the job's, so the plan's counts still hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from medaug.application.errors import BudgetExhausted, ConfigError, GeneratorError
from medaug.application.ports import (
    GenerationRequest,
    GenerationResult,
    ImageGenerator,
    ImageStore,
    NullProgress,
    ProgressSink,
    QualityAnalyzer,
    QualityRequest,
    ScreenVerdict,
    SyntheticScreen,
)
from medaug.domain import Grade, Origin, Split, SyntheticJob
from medaug.domain.plan import AugmentationPlan, derive_seed
from medaug.domain.quality import QualityReport, ScreenAcceptance

_log = structlog.get_logger(__name__)


# -- assessment ----------------------------------------------------------------------------------


def augmentation_sets(store: ImageStore, *, generator: str | None = None) -> list[str]:
    """Names of the store's augmentation sets, sorted; with ``generator``, only sets it made images for."""
    names = {
        image.augmentation
        for image in store.list(split=Split.TRAIN, origin=Origin.SYNTHETIC)
        if image.augmentation and (generator is None or image.provenance.generator == generator)
    }
    return sorted(names)


def quality_request(store: ImageStore, augmentation: str) -> QualityRequest:
    """The images an assessment of ``augmentation`` compares (see ``QualityRequest``).

    Raises:
        ConfigError: the set has no images, or the store lacks real training or test images.
    """
    synthetic = store.list(split=Split.TRAIN, origin=Origin.SYNTHETIC, augmentation=augmentation)
    if not synthetic:
        known = ", ".join(augmentation_sets(store)) or "none"
        raise ConfigError(f"{store.location}: augmentation set {augmentation!r} has no images (sets: {known})")
    real = store.list(split=Split.TRAIN, origin=Origin.REAL)
    if not real:
        raise ConfigError(f"{store.location}: no real training images to compare with; ingest a data set first")
    held_out = store.list(split=Split.TEST, origin=Origin.REAL)
    if not held_out:
        raise ConfigError(f"{store.location}: no real test images to use as the held-out reference")
    return QualityRequest(
        augmentation=augmentation,
        real=tuple(real),
        synthetic=tuple(synthetic),
        held_out=tuple(held_out),
        val=tuple(store.list(split=Split.VAL, origin=Origin.REAL)),
    )


def assess_quality(
    store: ImageStore, analyzer: QualityAnalyzer, augmentation: str, *, progress: ProgressSink | None = None
) -> QualityReport:
    """Measure realism, label fidelity and memorisation of one augmentation set.

    Raises:
        ConfigError: the set has no images, or the store lacks real training or test images.
    """
    request = quality_request(store, augmentation)
    report = analyzer.assess(request, store, progress=progress or NullProgress())
    _log.info(
        "quality_assessed", augmentation=augmentation, fid=report.overall.fid, flagged=report.flagged,
        agreement=round(report.fidelity.overall.agreement, 4), seconds=round(report.seconds, 1),
    )  # fmt: skip
    return report


def assess_all(
    store: ImageStore,
    analyzer: QualityAnalyzer,
    *,
    augmentations: Sequence[str] | None = None,
    generator: str | None = None,
    progress: ProgressSink | None = None,
) -> dict[str, QualityReport]:
    """Assess several augmentation sets (default: every set in the store, or those ``generator`` made).

    Raises:
        ConfigError: no augmentation set to assess, or one of ``augmentations`` is empty.
    """
    names = list(augmentations) if augmentations else augmentation_sets(store, generator=generator)
    if not names:
        which = f" made by generator {generator!r}" if generator else ""
        raise ConfigError(f"{store.location}: no augmentation set{which}; run `medaug augment run` first")
    return {name: assess_quality(store, analyzer, name, progress=progress) for name in names}


# -- the screen while augmenting ------------------------------------------------------------------


@dataclass
class RetryingScreen:
    """Screens generated images with ``screen``, generating replacements with derived seeds.

    A rejected image is generated again for the same job with ``derive_seed(job.seed, "screen",
    attempt)``, up to ``max_attempts`` images per job; a job still rejected then is left unfilled
    (counted in ``unfilled``) and a re-run tries it again from the start. Accepted images carry the
    screen's scores, the attempt and the job's planned seed in their provenance parameters.

    Attributes:
        screen: the judge.
        max_attempts: images tried per job, the first included.
        rejected: images rejected so far (each was replaced or left unfilled).
        unfilled: jobs left without an accepted image.
        budget_stop: a paid generator's budget stop met while replacing; raise it once the
            accepted images are stored.
    """

    screen: SyntheticScreen
    max_attempts: int = 5
    rejected: int = 0
    unfilled: int = 0
    budget_stop: BudgetExhausted | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"the screen needs at least 1 attempt per image, got {self.max_attempts}")

    def apply(
        self,
        generator: ImageGenerator,
        jobs: Sequence[SyntheticJob],
        requests: Sequence[GenerationRequest],
        results: Sequence[GenerationResult],
    ) -> tuple[list[SyntheticJob], list[GenerationResult]]:
        """Screen one batch and replace its rejected images.

        Returns:
            The jobs (with the seed each kept image was made with) and their results, in order of
            acceptance; refused results pass through unscreened, rejected ones are left out.

        Raises:
            GeneratorError: the generator answers a replacement batch with the wrong images.
        """
        kept_jobs: list[SyntheticJob] = []
        kept: list[GenerationResult] = []
        pending = list(zip(jobs, requests, results, strict=True))
        for attempt in range(self.max_attempts):
            rejected = self._sort(pending, attempt, kept_jobs, kept)
            if not rejected:
                break
            self.rejected += len(rejected)
            if attempt + 1 == self.max_attempts or self.budget_stop is not None:
                self._give_up(rejected)
                break
            pending = self._regenerate(generator, rejected, attempt + 1)
        return kept_jobs, kept

    def judge_partial(
        self,
        jobs: Sequence[SyntheticJob],
        requests: Sequence[GenerationRequest],
        results: Sequence[GenerationResult],
    ) -> tuple[list[SyntheticJob], list[GenerationResult]]:
        """Screen the results a stopped batch finished (any order, some jobs unanswered), without
        replacing rejected ones: a budget stop leaves nothing to make replacements with."""
        by_id = {result.image_id: result for result in results}
        answered = [(job, request, by_id[job.image_id]) for job, request in zip(jobs, requests, strict=True)
                    if job.image_id in by_id]
        kept_jobs: list[SyntheticJob] = []
        kept: list[GenerationResult] = []
        rejected = self._sort(answered, 0, kept_jobs, kept)
        self.rejected += len(rejected)
        self._give_up(rejected)
        return kept_jobs, kept

    def _sort(
        self,
        pending: list[tuple[SyntheticJob, GenerationRequest, GenerationResult]],
        attempt: int,
        kept_jobs: list[SyntheticJob],
        kept: list[GenerationResult],
    ) -> list[tuple[SyntheticJob, GenerationRequest, ScreenVerdict]]:
        judged = [item for item in pending if not item[2].refused]
        verdicts = iter(self._judge(judged))
        rejected = []
        for job, request, result in pending:
            verdict = None if result.refused else next(verdicts)
            if verdict is not None and not verdict.accepted:
                rejected.append((job, request, verdict))
                continue
            kept_jobs.append(job.model_copy(update={"seed": request.seed}))
            kept.append(self._annotate(job, result, verdict, attempt))
        return rejected

    def _judge(self, items: list[tuple[SyntheticJob, GenerationRequest, GenerationResult]]) -> list[ScreenVerdict]:
        if not items:
            return []
        verdicts = self.screen.screen([i[1] for i in items], [i[2] for i in items])
        if len(verdicts) != len(items):
            raise GeneratorError(f"screen {self.screen.name} judged {len(verdicts)} images of {len(items)}")
        return verdicts

    def _annotate(
        self, job: SyntheticJob, result: GenerationResult, verdict: ScreenVerdict | None, attempt: int
    ) -> GenerationResult:
        if verdict is None:
            return result
        screen = {"name": self.screen.name, "attempt": attempt, "job_seed": job.seed, **verdict.scores}
        return result.model_copy(update={"parameters": {**result.parameters, "screen": screen}})

    def _regenerate(
        self, generator: ImageGenerator, rejected: list[tuple[SyntheticJob, GenerationRequest, ScreenVerdict]], attempt: int
    ) -> list[tuple[SyntheticJob, GenerationRequest, GenerationResult]]:
        for job, _, verdict in rejected:
            _log.info("synthetic_rejected", image_id=job.image_id, attempt=attempt - 1, reason=verdict.reason)
        requests = [
            request.model_copy(update={"seed": derive_seed(job.seed, "screen", attempt)}) for job, request, _ in rejected
        ]
        try:
            results = generator.generate(requests)
        except BudgetExhausted as stop:
            self.budget_stop = stop
            results = list(stop.completed)
        by_id = {result.image_id: result for result in results}
        if self.budget_stop is None and (len(results) != len(requests) or set(by_id) != {r.image_id for r in requests}):
            raise GeneratorError(f"generator {generator.name} answered {len(results)} images for {len(requests)} replacements")
        unanswered = [job for (job, _, _), request in zip(rejected, requests, strict=True) if request.image_id not in by_id]
        self.unfilled += len(unanswered)
        return [
            (job, request, by_id[request.image_id])
            for (job, _, _), request in zip(rejected, requests, strict=True)
            if request.image_id in by_id
        ]

    def _give_up(self, rejected: list[tuple[SyntheticJob, GenerationRequest, ScreenVerdict]]) -> None:
        self.unfilled += len(rejected)
        for job, _, verdict in rejected:
            _log.warning("synthetic_unfilled", image_id=job.image_id, attempts=self.max_attempts, reason=verdict.reason)


def screen_acceptance(store: ImageStore, plan: AugmentationPlan, *, max_attempts: int) -> tuple[ScreenAcceptance, ...]:
    """Per grade, how many images the screen judged and accepted for ``plan``, from provenance.

    Every stored image of the plan records the attempt it was accepted at (``screen.attempt``),
    so ``attempt`` images before it were rejected; a job without a stored image used all
    ``max_attempts``. Read from the store, the figures survive a resumed run. Images stored
    without a screen's record (made by an unscreened run) are not counted.
    """
    stored = {r.id: r for r in store.list(origin=Origin.SYNTHETIC, augmentation=plan.augmentation)}
    judged: dict[Grade, int] = {}
    accepted: dict[Grade, int] = {}
    thresholds: dict[Grade, float] = {}
    for job in plan.jobs:
        record = stored.get(job.image_id)
        screen = record.provenance.parameters.get("screen") if record is not None else None
        if record is not None and not isinstance(screen, dict):
            continue
        grade = job.grade
        if isinstance(screen, dict):
            judged[grade] = judged.get(grade, 0) + int(screen.get("attempt", 0)) + 1
            accepted[grade] = accepted.get(grade, 0) + 1
            if screen.get("threshold") is not None:
                thresholds[grade] = float(screen["threshold"])
        else:
            judged[grade] = judged.get(grade, 0) + max_attempts
    return tuple(
        ScreenAcceptance(grade=g, judged=judged[g], accepted=accepted.get(g, 0), threshold=thresholds.get(g))
        for g in sorted(judged)
    )
