"""The equal-share plan: the same synthetic share in every grade, the grades balanced by class weights."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medaug.adapters.experiment_file import ExperimentConfig
from medaug.domain import Grade, PlanPolicy
from medaug.domain.plan import make_plan
from tests.conftest import real_record


def _real(counts: tuple[int, ...]) -> list:  # type: ignore[type-arg]
    return [real_record(f"r{g}-{i}", g) for g, n in enumerate(counts) for i in range(n)]


def test_every_grade_gets_the_same_synthetic_share_the_largest_too() -> None:
    counts = (40, 10, 20, 8, 6)
    plan = make_plan(_real(counts), PlanPolicy.equal_share(0.5), 0, "arm", ["classic"])
    made = {g: sum(job.grade == g for job in plan.jobs) for g in Grade}
    assert [made[Grade(g)] for g in range(5)] == list(counts)
    third = make_plan(_real(counts), PlanPolicy.equal_share(0.25), 0, "arm", ["classic"])
    shares = [(third.targets[Grade(g)] - counts[g]) / third.targets[Grade(g)] for g in range(5)]
    assert max(shares) - min(shares) < 0.05 and PlanPolicy.equal_share(0.25).describe() == "equal-share 0.25 (class-weighted)"


def test_equal_share_needs_a_share_below_one() -> None:
    with pytest.raises(ValidationError, match="needs 'share'"):
        PlanPolicy(kind="equal-share")
    with pytest.raises(ValidationError):
        PlanPolicy.equal_share(1.0)


def _experiment(**trainers: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "experiment": {"arms": ["none", "classic"], "classifiers": ["cnn", "efficientnet-lite0"],
                       "policy": {"kind": "equal-share", "share": 0.5}},
        "settings": {"trainers": trainers} if trainers else {},
    })


def test_an_equal_share_experiment_weighs_the_classes_of_every_classifier() -> None:
    trainers = _experiment(cnn={"epochs": 2}).settings["trainers"]
    assert trainers["cnn"] == {"epochs": 2, "class_weighted": True}
    assert trainers["efficientnet_lite0"] == {"class_weighted": True}


def test_switching_class_weights_off_under_equal_share_is_one_line() -> None:
    with pytest.raises(ValidationError, match="balances the grades by class weights"):
        _experiment(cnn={"class_weighted": False})
