"""Domain rules: grades, image records, planning and experiment specs."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from pydantic import ValidationError

from medaug.domain import (
    DomainError,
    FundusImage,
    Grade,
    Origin,
    PlanPolicy,
    Provenance,
    Split,
    make_plan,
)
from medaug.domain.experiment import Arm, ExperimentSpec, Summary
from tests.conftest import real_record, synthetic_record

IDRID_TRAIN = {0: 134, 1: 20, 2: 136, 3: 74, 4: 49}


def idrid_like_images() -> list[FundusImage]:
    images = [real_record(f"tr-{g}-{i:03d}", g) for g, n in IDRID_TRAIN.items() for i in range(n)]
    images += [real_record(f"te-{g}-{i:03d}", g, Split.TEST) for g in range(5) for i in range(7)]
    return images


class TestGrade:
    def test_names_follow_the_international_scale(self) -> None:
        assert [g.label for g in Grade] == [
            "No DR", "Mild NPDR", "Moderate NPDR", "Severe NPDR", "Proliferative DR"
        ]

    @pytest.mark.parametrize("value,expected", [("3", 3), (" 2 ", 2), (4, 4), (1.0, 1)])
    def test_parse_accepts_integers(self, value: object, expected: int) -> None:
        assert Grade.parse(value) == Grade(expected)

    @pytest.mark.parametrize("value", ["7", "-1", "two", "", 2.5, True, None])
    def test_parse_rejects_everything_else(self, value: object) -> None:
        with pytest.raises(DomainError):
            Grade.parse(value)


class TestFundusImage:
    def test_synthetic_image_must_be_training_and_name_its_set(self) -> None:
        with pytest.raises(ValidationError, match="augmentation set"):
            FundusImage(id="s", key="train/0/s.png", grade=Grade(0), split=Split.TRAIN, origin=Origin.SYNTHETIC,
                        provenance=Provenance(generator="classic"))
        with pytest.raises(ValidationError, match="train split"):
            FundusImage(id="s", key="test/0/s.png", grade=Grade(0), split=Split.TEST, origin=Origin.SYNTHETIC,
                        augmentation="classic", provenance=Provenance(generator="classic"))

    @pytest.mark.parametrize("bad_id", ["../x", "a/b", "", ".hidden", "a b"])
    def test_ids_are_safe_file_names(self, bad_id: str) -> None:
        with pytest.raises(ValidationError):
            real_record(bad_id)

    def test_keys_cannot_escape_the_store(self) -> None:
        with pytest.raises(ValidationError, match="relative"):
            FundusImage(id="a", key="../a.png", grade=Grade(0), split=Split.TRAIN,
                        provenance=Provenance(generator="x"))

    def test_records_are_frozen(self) -> None:
        with pytest.raises(ValidationError):
            real_record("a").grade = Grade(3)  # type: ignore[misc]


class TestPlan:
    def test_thesis_balance_to_1773(self) -> None:
        plan = make_plan(idrid_like_images(), PlanPolicy.balance_total(1773), seed=0, augmentation="classic", generators=("classic",))
        assert plan.total == 1773
        assert sorted(plan.targets.values()) == [354, 354, 355, 355, 355]
        per_grade = Counter(job.grade for job in plan.jobs)
        for grade, real in IDRID_TRAIN.items():
            assert per_grade[Grade(grade)] == plan.targets[Grade(grade)] - real

    def test_sources_are_same_grade_training_images_used_evenly(self) -> None:
        images = idrid_like_images()
        by_id = {i.id: i for i in images}
        plan = make_plan(images, PlanPolicy.balance_total(1773), seed=0, augmentation="classic", generators=("classic",))
        for grade in Grade:
            uses = Counter(job.source_ids[0] for job in plan.jobs if job.grade == grade)
            assert all(by_id[s].grade == grade and by_id[s].split is Split.TRAIN for s in uses)
            assert max(uses.values()) - min(uses.values()) <= 1

    def test_plan_is_deterministic_and_seed_dependent(self) -> None:
        images = idrid_like_images()
        a = make_plan(images, PlanPolicy.balance_largest(), seed=1, augmentation="x", generators=("classic",))
        b = make_plan(list(reversed(images)), PlanPolicy.balance_largest(), seed=1, augmentation="x", generators=("classic",))
        c = make_plan(images, PlanPolicy.balance_largest(), seed=2, augmentation="x", generators=("classic",))
        assert a == b
        assert [j.seed for j in a.jobs] != [j.seed for j in c.jobs]

    def test_ignores_test_validation_and_synthetic_images(self) -> None:
        images = [real_record(f"r{g}", g) for g in range(5)] + [
            real_record("a", 0), real_record("v", 1, Split.VAL), real_record("t", 1, Split.TEST),
            synthetic_record("s", 1, source="r1")]
        plan = make_plan(images, PlanPolicy.balance_largest(), seed=0, augmentation="classic", generators=("classic",))
        assert plan.real_counts[Grade(1)] == 1
        assert {s for j in plan.jobs for s in j.source_ids} == {"r1", "r2", "r3", "r4"}

    def test_balance_largest_and_multiply(self) -> None:
        images = idrid_like_images()
        largest = make_plan(images, PlanPolicy.balance_largest(), seed=0, augmentation="x", generators=("classic",))
        assert set(largest.targets.values()) == {136}
        doubled = make_plan(images, PlanPolicy.multiply(2), seed=0, augmentation="x", generators=("classic",))
        assert doubled.targets[Grade(1)] == 40 and len(doubled.jobs) == sum(IDRID_TRAIN.values())

    def test_impossible_total_is_a_clear_error(self) -> None:
        with pytest.raises(DomainError, match="grade 0 .*134 real"):
            make_plan(idrid_like_images(), PlanPolicy.balance_total(500), seed=0, augmentation="x", generators=("classic",))

    def test_missing_grade_cannot_be_derived(self) -> None:
        with pytest.raises(DomainError, match="grade 1 .*no real training image"):
            make_plan([real_record("a", 0)], PlanPolicy.balance_total(10), seed=0, augmentation="x", generators=("classic",))

    def test_mixture_alternates_generators(self) -> None:
        plan = make_plan(idrid_like_images(), PlanPolicy.balance_largest(), seed=0, augmentation="mix",
                         generators=("classic", "diffusion"))
        counts = Counter(job.generator for job in plan.jobs if job.grade == Grade(1))
        assert counts == {"classic": 58, "diffusion": 58}

    def test_ids_change_when_what_defines_the_image_changes(self) -> None:
        images = idrid_like_images()
        a = make_plan(images, PlanPolicy.balance_largest(), seed=0, augmentation="x", generators=("classic",))
        b = make_plan(images[1:], PlanPolicy.balance_largest(), seed=0, augmentation="x", generators=("classic",))
        assert {j.image_id for j in a.jobs} != {j.image_id for j in b.jobs}

    def test_policy_needs_its_parameter(self) -> None:
        with pytest.raises(ValidationError, match="total"):
            PlanPolicy(kind="balance-total")


class TestExperimentSpec:
    def test_cells_cover_arms_classifiers_seeds(self) -> None:
        spec = ExperimentSpec(arms=(Arm(name="none"), Arm(name="classic", generators=("classic",))),
                              classifiers=("cnn",), seeds=(0, 1), policy=PlanPolicy.balance_largest())
        assert [c.slug for c in spec.cells()] == ["none__cnn__s0", "none__cnn__s1", "classic__cnn__s0",
                                                   "classic__cnn__s1"]
        assert spec.baseline is None

    def test_the_baseline_must_be_one_of_the_arms(self) -> None:
        arms = (Arm(name="none"), Arm(name="classic", generators=("classic",)))
        spec = ExperimentSpec(arms=arms, classifiers=("cnn",), seeds=(0,), policy=PlanPolicy.balance_largest(),
                              baseline="none")
        assert spec.baseline == "none"
        with pytest.raises(ValidationError, match="baseline 'diffusion' is not one of the arms"):
            ExperimentSpec(arms=arms, classifiers=("cnn",), seeds=(0,), policy=PlanPolicy.balance_largest(),
                           baseline="diffusion")

    def test_rejects_duplicate_arms_and_missing_generators(self) -> None:
        with pytest.raises(ValidationError, match="unique"):
            ExperimentSpec(arms=(Arm(name="none"), Arm(name="none")), classifiers=("cnn",), seeds=(0,),
                           policy=PlanPolicy.balance_largest())
        with pytest.raises(ValidationError, match="needs at least one generator"):
            Arm(name="classic")
        with pytest.raises(ValidationError, match="takes no generator"):
            Arm(name="none", generators=("classic",))


def test_a_summary_interval_is_clipped_to_the_metric_range_and_nan_stays_nan() -> None:
    wide = Summary(n=2, mean=0.95, std=0.1, ci_low=0.05, ci_high=1.85)
    assert wide.within(-1.0, 1.0) == Summary(n=2, mean=0.95, std=0.1, ci_low=0.05, ci_high=1.0)
    assert Summary(n=2, mean=0.1, std=0.1, ci_low=-0.3, ci_high=0.5).within(0.0, 1.0).ci_low == 0.0
    empty = Summary(n=0, mean=math.nan, std=math.nan, ci_low=math.nan, ci_high=math.nan).within(0.0, 1.0)
    assert math.isnan(empty.ci_low) and math.isnan(empty.ci_high)
