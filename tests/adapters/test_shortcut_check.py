"""The shortcut check: real vs synthetic separability (folds grouped by source) beside the
synthetic share per grade, and its place in the report's quality section."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medaug.adapters.quality.report_section import shortcut_blocks
from medaug.adapters.quality.shortcut import shortcut_check
from medaug.adapters.report_document import Table, Text
from medaug.domain import Grade, PlanPolicy
from medaug.domain.experiment import Arm, ExperimentResult, ExperimentSpec
from tests.adapters.test_quality_report import _report
from tests.conftest import real_record
from tests.quality_images import synthetic

REAL_PER_GRADE = (30, 10, 20, 8, 6)


def _real() -> list:  # type: ignore[type-arg]
    return [real_record(f"r{g}-{i}", g) for g, n in enumerate(REAL_PER_GRADE) for i in range(n)]


def _synthetic(per_grade: dict[int, int]) -> list:  # type: ignore[type-arg]
    return [synthetic(f"s{g}-{i}", g, "arm", source=f"r{g}-{i % REAL_PER_GRADE[g]}")
            for g, n in per_grade.items() for i in range(n)]


def _features(count: int, shift: float, seed: int) -> np.ndarray:
    features = np.random.default_rng(seed).normal(size=(count, 16))
    features[:, 0] += shift
    return features


BALANCE_LARGEST = {1: 20, 2: 10, 3: 22, 4: 24}
EQUAL_SHARE = {g: n for g, n in enumerate(REAL_PER_GRADE)}


def test_separable_images_with_a_grade_dependent_share_are_flagged() -> None:
    real, made = _real(), _synthetic(BALANCE_LARGEST)
    check = shortcut_check(real, _features(len(real), 0, 1), made, _features(len(made), 3.0, 2), seed=0)
    assert check.auc is not None and check.auc > 0.95 and check.auc_low is not None and check.auc_low > 0.6
    assert check.p_value is not None and check.p_value < 1e-6
    assert check.share[Grade(0)] == 0 and check.share[Grade(4)] == 0.8 and check.chi2_p is not None and check.chi2_p < 1e-6
    assert check.separable and check.grade_dependent and check.flagged and check.folds == 5


def test_indistinguishable_images_are_not_separable() -> None:
    real, made = _real(), _synthetic(BALANCE_LARGEST)
    check = shortcut_check(real, _features(len(real), 0, 1), made, _features(len(made), 0, 2), seed=0)
    assert check.auc is not None and 0.3 < check.auc < 0.7 and not check.separable and not check.flagged
    assert check.grade_dependent


def test_an_equal_share_is_not_grade_dependent_even_when_separable() -> None:
    real, made = _real(), _synthetic(EQUAL_SHARE)
    check = shortcut_check(real, _features(len(real), 0, 1), made, _features(len(made), 3.0, 2), seed=0)
    assert set(check.share.values()) == {0.5} and check.chi2_p is not None and check.chi2_p > 0.99
    assert check.separable and not check.grade_dependent and not check.flagged


def test_variations_of_their_sources_fall_in_their_sources_folds() -> None:
    # Each synthetic image is its source's features plus a source-specific offset shared by its
    # variations: only a classifier that saw the source's variations in training could tell them.
    real, made = _real(), _synthetic(EQUAL_SHARE)
    features = _features(len(real), 0, 1)
    index = {r.id: i for i, r in enumerate(real)}
    offsets = np.random.default_rng(5).normal(scale=0.01, size=(len(real), 16))
    synthetic_features = np.stack([features[index[s.provenance.source_ids[0]]] + offsets[index[s.provenance.source_ids[0]]]
                                   for s in made])
    check = shortcut_check(real, features, made, synthetic_features, seed=0)
    assert check.auc is not None and check.auc < 0.7


def test_too_few_images_give_no_auc_but_the_shares() -> None:
    real, made = _real()[:1], _synthetic({0: 1})
    check = shortcut_check(real, _features(1, 0, 1), made, _features(1, 0, 2), seed=0)
    assert check.auc is None and not check.flagged and check.share == {Grade(0): 0.5}


def test_the_report_tables_the_check_and_warns_of_a_shortcut(tmp_path: Path) -> None:
    real, made = _real(), _synthetic(BALANCE_LARGEST)
    check = shortcut_check(real, _features(len(real), 0, 1), made, _features(len(made), 3.0, 2), seed=0)
    spec = ExperimentSpec(arms=(Arm(name="none"), Arm(name="copies", generators=("test",))), classifiers=("cnn",),
                          seeds=(0,), policy=PlanPolicy.balance_largest())
    result = ExperimentResult(spec=spec, dataset="tiny", cells=(), summaries={}, comparisons=(), test_images=3,
                              quality={"copies": _report("copies").model_copy(update={"shortcut": check})})
    table, *notes = shortcut_blocks(result)
    assert isinstance(table, Table) and table.rows[0][0] == "copies" and table.rows[0][1] == "balance-largest"
    assert table.rows[0][8] == "SHORTCUT" and table.rows[0][6] == "0 / 67 / 33 / 73 / 80"
    assert isinstance(notes[0], Text) and notes[0].kind == "warning" and "equal-share" in notes[0].text
    assert shortcut_blocks(result.model_copy(update={"quality": {"copies": _report("copies")}})) == []
