"""The quality service through fakes: choosing sets, and the screen while augmenting."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from medaug.application.errors import BudgetExhausted, ConfigError
from medaug.application.ports import (
    GenerationRequest,
    GenerationResult,
    ImageStore,
    ProgressSink,
    QualityRequest,
    ScreenVerdict,
)
from medaug.application.services.augment import augment, plan_augmentation
from medaug.application.services.quality import (
    RetryingScreen,
    assess_all,
    assess_quality,
    augmentation_sets,
    screen_acceptance,
)
from medaug.domain import Grade, Origin, PlanPolicy, Split
from medaug.domain.plan import derive_seed
from medaug.domain.quality import (
    DistributionScores,
    GradeFidelity,
    LabelFidelity,
    Memorisation,
    QualityReport,
    SimilaritySummary,
)
from tests.conftest import png_bytes, real_record, synthetic_record
from tests.fakes import InMemoryImageStore

TRAIN = {0: 6, 1: 2, 2: 4, 3: 3, 4: 1}


def _store(test: bool = True) -> InMemoryImageStore:
    store = InMemoryImageStore()
    for grade, count in TRAIN.items():
        for index in range(count):
            store.put(real_record(f"train-g{grade}-{index}", grade), png_bytes(10 * grade + index, 8))
    if test:
        store.put(real_record("test-0", 0, Split.TEST), png_bytes(99, 8))
    return store


class SeedGenerator:
    """Makes a PNG drawn from the request's seed; records every request."""

    name = "seeded"
    needs_source = False
    batch_size = 4

    def __init__(self, refuse: set[str] = frozenset(), budget_after_calls: int | None = None) -> None:  # type: ignore[assignment]
        self.requests: list[GenerationRequest] = []
        self._refuse = refuse
        self._budget_after = budget_after_calls
        self._calls = 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self._calls += 1
        if self._budget_after is not None and self._calls > self._budget_after:
            raise BudgetExhausted("budget of 0 USD reached", completed=[])
        self.requests.extend(requests)
        return [
            GenerationResult(image_id=r.image_id, data=b"", refused="policy") if r.image_id in self._refuse
            else GenerationResult(image_id=r.image_id, data=png_bytes(r.seed, 8), parameters={"seed": r.seed})
            for r in requests
        ]  # fmt: skip


class SeedScreen:
    """Rejects images whose seed is divisible by ``modulus`` (a deterministic stand-in for a bad image)."""

    name = "seed-screen"

    def __init__(self, modulus: int = 3) -> None:
        self.modulus = modulus
        self.judged: list[str] = []

    def screen(self, requests: Sequence[GenerationRequest], results: Sequence[GenerationResult]) -> list[ScreenVerdict]:
        assert all(not r.refused for r in results)
        self.judged.extend(r.image_id for r in results)
        return [
            ScreenVerdict(accepted=False, reason=f"seed {q.seed} is bad", scores={"seed": q.seed})
            if q.seed % self.modulus == 0 else ScreenVerdict(accepted=True, scores={"seed": q.seed})
            for q in requests
        ]  # fmt: skip


def _plan(store: ImageStore, total: int = 40):  # type: ignore[no-untyped-def]
    return plan_augmentation(store, PlanPolicy.balance_total(total), seed=5, augmentation="seeded", generators=["seeded"])


def test_the_screen_keeps_the_plans_counts_with_replacements_from_derived_seeds() -> None:
    store, generator, screen = _store(), SeedGenerator(), SeedScreen(modulus=3)
    plan = _plan(store)
    report = augment(store, plan, {"seeded": generator}, size=8, screen=screen, max_attempts=10)
    stored = store.list(origin=Origin.SYNTHETIC, augmentation="seeded")
    assert {r.id for r in stored} == {job.image_id for job in plan.jobs}
    assert Counter(r.grade for r in store.list(split=Split.TRAIN)) == Counter({Grade(g): n for g, n in plan.targets.items()})
    bad_first = [job for job in plan.jobs if job.seed % 3 == 0]
    assert bad_first and report.rejected >= len(bad_first)
    assert (report.added, report.unfilled, report.refused) == (len(plan.jobs), 0, 0)
    for job in plan.jobs:
        record = store.record(job.image_id)
        params = record.provenance.parameters["screen"]
        assert record.provenance.seed % 3 != 0 and params["job_seed"] == job.seed
        expected = job.seed if params["attempt"] == 0 else derive_seed(job.seed, "screen", params["attempt"])
        assert record.provenance.seed == expected == params["seed"]
        assert store.get(job.image_id) == png_bytes(record.provenance.seed, 8)
    assert any(store.record(job.image_id).provenance.parameters["screen"]["attempt"] > 0 for job in bad_first)


def test_acceptance_per_grade_is_read_back_from_provenance_and_matches_the_run() -> None:
    store, screen = _store(), SeedScreen(modulus=3)
    plan = _plan(store)
    report = augment(store, plan, {"seeded": SeedGenerator()}, size=8, screen=screen, max_attempts=10)
    rows = screen_acceptance(store, plan, max_attempts=10)
    assert sum(r.judged for r in rows) == len(screen.judged) == report.added + report.rejected
    assert sum(r.accepted for r in rows) == report.added
    assert {r.grade for r in rows} == {job.grade for job in plan.jobs}
    for row in rows:
        planned = sum(1 for job in plan.jobs if job.grade == row.grade)
        assert row.accepted == planned and 0 < row.rate <= 1 and row.judged >= planned


def test_acceptance_counts_every_attempt_of_an_unfilled_job() -> None:
    store = _store()
    plan = _plan(store)
    augment(store, plan, {"seeded": SeedGenerator()}, size=8, screen=SeedScreen(modulus=1), max_attempts=3)
    rows = screen_acceptance(store, plan, max_attempts=3)
    assert sum(r.judged for r in rows) == 3 * len(plan.jobs) and all(r.accepted == 0 and r.rate == 0 for r in rows)


def test_unscreened_images_have_no_acceptance() -> None:
    store = _store()
    plan = _plan(store)
    augment(store, plan, {"seeded": SeedGenerator()}, size=8)
    assert screen_acceptance(store, plan, max_attempts=3) == ()


def test_screened_augmentation_is_reproducible() -> None:
    first, second = _store(), _store()
    for store in (first, second):
        augment(store, _plan(store), {"seeded": SeedGenerator()}, size=8, screen=SeedScreen(), max_attempts=10)
    assert _synthetic(first) == _synthetic(second)


def _synthetic(store: ImageStore) -> dict[str, tuple[object, bytes]]:
    return {r.id: (r, store.get(r.id)) for r in store.list(origin=Origin.SYNTHETIC)}


def test_without_a_screen_nothing_changes() -> None:
    store, generator = _store(), SeedGenerator()
    plan = _plan(store)
    report = augment(store, plan, {"seeded": generator}, size=8)
    assert (report.rejected, report.unfilled, report.added) == (0, 0, len(plan.jobs))
    assert all("screen" not in r.provenance.parameters for r in store.list(origin=Origin.SYNTHETIC))
    assert [r.seed for r in generator.requests] == [job.seed for job in plan.jobs]


def test_jobs_still_rejected_after_the_last_attempt_are_left_unfilled_and_retried_next_run() -> None:
    store, generator = _store(), SeedGenerator()
    plan = _plan(store)
    report = augment(store, plan, {"seeded": generator}, size=8, screen=SeedScreen(modulus=1), max_attempts=3)
    assert (report.added, report.unfilled, report.refused) == (0, len(plan.jobs), 0)
    assert report.rejected == 3 * len(plan.jobs) and len(generator.requests) == 3 * len(plan.jobs)
    again = augment(store, plan, {"seeded": SeedGenerator()}, size=8, screen=SeedScreen(modulus=3), max_attempts=10)
    assert again.added == len(plan.jobs)


def test_refused_results_pass_unscreened_and_are_not_replaced() -> None:
    store = _store()
    plan = _plan(store)
    refused = {plan.jobs[0].image_id}
    screen = SeedScreen(modulus=10**9)  # accepts everything but seed 0
    report = augment(store, plan, {"seeded": SeedGenerator(refuse=refused)}, size=8, screen=screen)
    assert report.refused == 1 and report.added == len(plan.jobs) - 1
    assert plan.jobs[0].image_id not in screen.judged and not store.exists(plan.jobs[0].image_id)


def test_a_budget_stop_while_replacing_keeps_the_accepted_images() -> None:
    store = _store()
    plan = _plan(store)
    with pytest.raises(BudgetExhausted):
        augment(store, plan, {"seeded": SeedGenerator(budget_after_calls=1)}, size=8, screen=SeedScreen(), max_attempts=5)
    first_batch = plan.jobs[:4]
    assert any(job.seed % 3 == 0 for job in first_batch)  # so a replacement was asked for
    kept = {job.image_id for job in first_batch if job.seed % 3 != 0}
    assert {r.id for r in store.list(origin=Origin.SYNTHETIC)} == kept


def test_the_screen_needs_an_attempt() -> None:
    with pytest.raises(ConfigError):
        RetryingScreen(SeedScreen(), max_attempts=0)


# -- assessment ------------------------------------------------------------------------------------


def _scores() -> DistributionScores:
    return DistributionScores(n_real=1, n_images=1)


def _fidelity() -> LabelFidelity:
    return LabelFidelity(overall=GradeFidelity(n=1, agreement=1.0, confidence=1.0))


class FakeAnalyzer:
    """Returns an empty report naming the set; records requests."""

    feature_space = "fake"

    def __init__(self) -> None:
        self.requests: list[QualityRequest] = []

    def assess(self, request: QualityRequest, store: ImageStore, *, progress: ProgressSink) -> QualityReport:
        self.requests.append(request)
        summary = SimilaritySummary(n=0, flagged=0, correlation=(0, 0, 0), ssim=(0, 0, 0), cosine=(0, 0, 0))
        return QualityReport(
            augmentation=request.augmentation, feature_space="fake", overall=_scores(), reference=_scores(),
            fidelity=_fidelity(), reference_fidelity=_fidelity(), memorisation=Memorisation(summary=summary),
        )  # fmt: skip


def _with_sets(store: InMemoryImageStore) -> InMemoryImageStore:
    store.put(synthetic_record("c1", 1, augmentation="classic"), png_bytes(1, 8))
    diffusion = synthetic_record("d1", 2, augmentation="diffusion")
    store.put(diffusion.model_copy(update={"provenance": diffusion.provenance.model_copy(update={"generator": "diffusion"})}),
              png_bytes(2, 8))
    return store


def test_assessment_compares_the_set_with_real_training_and_test_images_only() -> None:
    store, analyzer = _with_sets(_store()), FakeAnalyzer()
    report = assess_quality(store, analyzer, "classic")
    request = analyzer.requests[0]
    assert report.augmentation == "classic"
    assert [r.id for r in request.synthetic] == ["c1"]
    assert all(r.split is Split.TRAIN and r.origin is Origin.REAL for r in request.real)
    assert [r.id for r in request.held_out] == ["test-0"] and len(request.real) == sum(TRAIN.values())


def test_every_set_or_those_of_one_generator() -> None:
    store = _with_sets(_store())
    assert augmentation_sets(store) == ["classic", "diffusion"]
    assert augmentation_sets(store, generator="diffusion") == ["diffusion"]
    assert list(assess_all(store, FakeAnalyzer())) == ["classic", "diffusion"]
    assert list(assess_all(store, FakeAnalyzer(), generator="diffusion")) == ["diffusion"]


@pytest.mark.parametrize(
    ("store", "augmentation", "message"),
    [
        (_store(), None, "no augmentation set"),
        (_with_sets(_store()), "dcgan", "'dcgan' has no images"),
        (_with_sets(_store(test=False)), "classic", "no real test images"),
    ],
)
def test_bad_requests_are_one_line_config_errors(store, augmentation, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        assess_all(store, FakeAnalyzer(), augmentations=[augmentation] if augmentation else None)
