"""A k-fold report answers with its own primary test: the opening sentence, the overview and the
comparison table read the corrected resampled t-test, the majority baseline counts every pooled
test image, and the per-seed table says which fold each row is."""

from __future__ import annotations

import pytest

from medaug.adapters.report_document import Bullets, Table, Text
from medaug.adapters.reporting.answer import answer_sentence
from medaug.adapters.reporting.sections import comparison_section, main_section, overview_section, per_seed_section
from medaug.domain.experiment import ExperimentResult
from tests.fakes import GradeOracleTrainer, InMemoryImageStore, MemoryRuns, populate
from tests.unit.test_kfold_service import TRAIN, context, kfold_spec, run


@pytest.fixture(scope="module")
def result() -> ExperimentResult:
    store = InMemoryImageStore()
    populate(store, TRAIN)
    return run(kfold_spec(repeats=1), context(store, GradeOracleTrainer(), MemoryRuns()))


def test_the_answer_and_the_overview_quote_the_corrected_t_test(result: ExperimentResult) -> None:
    (verdict,) = result.verdicts()
    (comparison,) = result.kfold_comparisons
    assert verdict.test == "corrected-t" and verdict.p_value == comparison.accuracy_test.p_value
    assert verdict.significant == comparison.significant and verdict.runs == 3 * 2
    sentence = answer_sentence(result)
    assert "corrected 95% interval" in sentence and "corrected t-test p" in sentence
    assert "McNemar" not in sentence and "bootstrap" not in sentence
    assert "averaged over 6 fold x seed runs" in sentence
    (findings,) = [b for b in overview_section(result).blocks if isinstance(b, Bullets)]
    assert all("corrected t-test p" in line and "McNemar" not in line for line in findings.items)


def test_the_majority_baseline_counts_every_pooled_test_image(result: ExperimentResult) -> None:
    texts = [b.text for b in overview_section(result).blocks if isinstance(b, Text)]
    (majority,) = [t for t in texts if t.startswith("Always answering")]
    assert f"of {result.test_images} images" in majority and result.test_images == 94


def test_the_comparison_table_is_the_primary_test_and_the_per_seed_table_names_folds(result: ExperimentResult) -> None:
    (table,) = [b for b in comparison_section(result).blocks if isinstance(b, Table)]
    assert "corrected t-test p" in table.headers and "McNemar p" not in table.headers
    (row,) = table.rows
    assert row[-1] == "6"
    (cells,) = [b for b in per_seed_section(result).blocks if isinstance(b, Table)]
    assert cells.headers[:4] == ("arm", "classifier", "seed", "fold")
    assert {row[3] for row in cells.rows} == {"f0r0", "f1r0", "f2r0"} and len(cells.rows) == len(result.cells)


def test_the_main_table_counts_pooled_runs_not_fold_cells(result: ExperimentResult) -> None:
    table = next(b for b in main_section(result, dpi=40).blocks if isinstance(b, Table))
    assert table.headers[2] == "seeds" and {row[2] for row in table.rows} == {"2"}  # 2 seeds x 1 repeat
