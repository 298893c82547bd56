"""Augmentation planning: how many synthetic images each grade needs, and from which sources.

The plan is a pure function of the real training images, the policy and the seed, so re-running
it gives the same jobs with the same ids: that is what makes augmentation resumable.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medaug.domain.errors import DomainError
from medaug.domain.grades import ALL_GRADES, Grade
from medaug.domain.images import FundusImage, Origin, Split


class PolicyKind(StrEnum):
    """How per-grade targets are chosen."""

    BALANCE_TOTAL = "balance-total"
    BALANCE_LARGEST = "balance-largest"
    MULTIPLY = "multiply"
    EQUAL_SHARE = "equal-share"


class PlanPolicy(BaseModel):
    """A balancing policy.

    Attributes:
        kind: ``balance-total`` (``total`` images in all, equal per grade, real ones included;
            the thesis used 1773), ``balance-largest`` (every grade up to the largest one),
            ``multiply`` (each grade times ``factor``) or ``equal-share`` (synthetic images are
            ``share`` of every grade's training images, the largest grade's too, so that looking
            synthetic says nothing about the grade; the grades are then balanced by the
            classifiers' class weights, which experiments switch on for this policy).
        total: the training-set size for ``balance-total`` (at most ``MAX_TOTAL``).
        factor: the multiplier for ``multiply`` (1 to ``MAX_FACTOR``, finite).
        share: for ``equal-share``, the synthetic fraction of each grade (0 < share < 1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: PolicyKind = PolicyKind.BALANCE_TOTAL
    total: int | None = Field(default=None, gt=0, le=1_000_000)
    factor: float | None = Field(default=None, ge=1.0, le=100.0, allow_inf_nan=False)
    share: float | None = Field(default=None, gt=0.0, le=0.95, allow_inf_nan=False)

    @model_validator(mode="after")
    def _parameters_match_kind(self) -> PlanPolicy:
        if self.kind is PolicyKind.EQUAL_SHARE and self.share is None:
            raise ValueError("policy equal-share needs 'share' (the synthetic fraction of every grade, e.g. 0.5)")
        if self.kind is PolicyKind.BALANCE_TOTAL and self.total is None:
            raise ValueError("policy balance-total needs 'total'")
        if self.kind is PolicyKind.MULTIPLY and self.factor is None:
            raise ValueError("policy multiply needs 'factor'")
        return self

    @classmethod
    def balance_total(cls, total: int) -> PlanPolicy:
        """Balance the training split to ``total`` images, equal per grade."""
        return cls(kind=PolicyKind.BALANCE_TOTAL, total=total)

    @classmethod
    def balance_largest(cls) -> PlanPolicy:
        """Bring every grade up to the size of the largest grade."""
        return cls(kind=PolicyKind.BALANCE_LARGEST)

    @classmethod
    def multiply(cls, factor: float) -> PlanPolicy:
        """Multiply every grade by ``factor``."""
        return cls(kind=PolicyKind.MULTIPLY, factor=factor)

    @classmethod
    def equal_share(cls, share: float) -> PlanPolicy:
        """Make synthetic images ``share`` of every grade's training images."""
        return cls(kind=PolicyKind.EQUAL_SHARE, share=share)

    @property
    def balances_by_class_weights(self) -> bool:
        """Whether the grades are balanced by the classifiers' class weights, not by the images."""
        return self.kind is PolicyKind.EQUAL_SHARE

    def describe(self) -> str:
        """A short human description, e.g. ``balance-total 1773``."""
        if self.kind is PolicyKind.EQUAL_SHARE:
            return f"equal-share {self.share:g} (class-weighted)"
        if self.kind is PolicyKind.BALANCE_TOTAL:
            return f"balance-total {self.total}"
        if self.kind is PolicyKind.MULTIPLY:
            return f"multiply x{self.factor:g}"
        return "balance-largest"


class SyntheticJob(BaseModel):
    """One synthetic image to make: its id, grade, generator, source images and seed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_id: str
    grade: Grade
    generator: str
    source_ids: tuple[str, ...]
    seed: int


class AugmentationPlan(BaseModel):
    """Per-grade targets for the training split and the synthetic jobs that reach them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    augmentation: str
    policy: PlanPolicy
    seed: int
    real_counts: dict[Grade, int]
    targets: dict[Grade, int]
    jobs: tuple[SyntheticJob, ...]

    @model_validator(mode="after")
    def _jobs_fill_targets(self) -> AugmentationPlan:
        per_grade: dict[Grade, int] = defaultdict(int)
        for job in self.jobs:
            per_grade[job.grade] += 1
        for grade in ALL_GRADES:
            needed = self.targets.get(grade, 0) - self.real_counts.get(grade, 0)
            if per_grade[grade] != max(needed, 0):
                raise ValueError(f"plan for grade {int(grade)} has {per_grade[grade]} jobs, needs {needed}")
        ids = [job.image_id for job in self.jobs]
        if len(set(ids)) != len(ids):
            raise ValueError("plan has duplicate synthetic image ids")
        return self

    @property
    def total(self) -> int:
        """Training images once the plan is done, real ones included."""
        return sum(self.targets.values())


def make_plan(
    real_images: Iterable[FundusImage],
    policy: PlanPolicy,
    seed: int,
    augmentation: str,
    generators: Sequence[str],
) -> AugmentationPlan:
    """Plan the synthetic images that balance the real training split.

    Only real images of the training split count and serve as sources; validation and test
    images are ignored, so no synthetic image is ever derived from them. Sources are used
    round-robin (in a seeded order) so each real image of a grade is used evenly; with several
    generators (a mixture arm) the jobs of each grade alternate between them.

    Raises:
        DomainError: when the policy cannot be met (e.g. a grade already has more real images
            than its balanced share) or the inputs are empty.
    """
    if not augmentation or not _valid_name(augmentation):
        raise DomainError(f"augmentation name {augmentation!r} must be letters, digits, '_' or '-'")
    if not generators:
        raise DomainError("a plan needs at least one generator")
    sources = _real_training_sources(real_images)
    real_counts = {grade: len(sources[grade]) for grade in ALL_GRADES}
    if sum(real_counts.values()) == 0:
        raise DomainError("the store has no real training images to plan from")
    targets = _targets(real_counts, policy)
    rng = random.Random(seed)
    jobs: list[SyntheticJob] = []
    for grade in ALL_GRADES:
        missing = targets[grade] - real_counts[grade]
        pool = list(sources[grade])
        rng.shuffle(pool)
        if missing > 0 and not pool:
            raise DomainError(f"grade {int(grade)} ({grade.label}) has no real training image to derive from")
        for index in range(missing):
            generator = generators[index % len(generators)]
            source = pool[index % len(pool)]
            job_seed = derive_seed(seed, augmentation, int(grade), index)
            # The id carries a digest of what defines the image, so a changed plan (other
            # sources, generator or seed) yields new ids and the old images are seen as stale.
            digest = derive_seed(generator, source, job_seed) % 16**6
            jobs.append(
                SyntheticJob(
                    image_id=f"{augmentation}-g{int(grade)}-{index:05d}-{digest:06x}",
                    grade=grade,
                    generator=generator,
                    source_ids=(source,),
                    seed=job_seed,
                )
            )
    return AugmentationPlan(
        augmentation=augmentation,
        policy=policy,
        seed=seed,
        real_counts=real_counts,
        targets=targets,
        jobs=tuple(jobs),
    )


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (stable across runs and Python versions)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _valid_name(name: str) -> bool:
    return all(c.isalnum() or c in "_-" for c in name)


def _real_training_sources(images: Iterable[FundusImage]) -> dict[Grade, list[str]]:
    sources: dict[Grade, list[str]] = {grade: [] for grade in ALL_GRADES}
    for image in images:
        if image.split is Split.TRAIN and image.origin is Origin.REAL:
            sources[image.grade].append(image.id)
    return {grade: sorted(ids) for grade, ids in sources.items()}


def _targets(real_counts: dict[Grade, int], policy: PlanPolicy) -> dict[Grade, int]:
    if policy.kind is PolicyKind.MULTIPLY:
        assert policy.factor is not None
        return {g: round(n * policy.factor) for g, n in real_counts.items()}
    if policy.kind is PolicyKind.EQUAL_SHARE:
        assert policy.share is not None
        # n real + s synthetic with s / (n + s) = share, whatever the grade.
        return {g: n + round(n * policy.share / (1 - policy.share)) for g, n in real_counts.items()}
    if policy.kind is PolicyKind.BALANCE_LARGEST:
        largest = max(real_counts.values())
        return {g: largest for g in real_counts}
    assert policy.total is not None
    return _balanced_share(real_counts, policy.total)


def _balanced_share(real_counts: dict[Grade, int], total: int) -> dict[Grade, int]:
    base, remainder = divmod(total, len(ALL_GRADES))
    targets = {grade: base + (1 if i < remainder else 0) for i, grade in enumerate(ALL_GRADES)}
    for grade, count in real_counts.items():
        if count > targets[grade]:
            raise DomainError(
                f"cannot balance to {total} images: grade {int(grade)} ({grade.label}) already has "
                f"{count} real training images, more than its share of {targets[grade]}; "
                f"use a total of at least {count * len(ALL_GRADES)}"
            )
    return targets
