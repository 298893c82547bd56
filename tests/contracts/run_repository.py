"""The RunRepository contract: every run folder adapter must pass these.

Subclass ``RunRepositoryContract`` and provide ``runs`` (an empty run folder) and ``reopen``
(a fresh instance over the same storage, as another process or machine would open it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medaug.application.errors import ConfigError
from medaug.application.ports import RunRepository
from medaug.domain import Grade
from medaug.domain.experiment import CellKey, CellResult, EpochRecord, ExperimentResult, Metrics, Predictions

__all__ = ["RunRepositoryContract", "cell", "experiment_result"]


def cell(seed: int = 0, accuracy: float = 0.5) -> CellResult:
    """A small finished cell."""
    metrics = Metrics(n=2, accuracy=accuracy, balanced_accuracy=0.5, macro_f1=0.5, quadratic_kappa=0.1, loss=1.2,
                      precision={g: 0.0 for g in Grade}, recall={g: 0.0 for g in Grade},
                      confusion=[[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0] * 5, [0] * 5, [0] * 5])
    predictions = Predictions(image_ids=("a", "b"), labels=(0, 1), predicted=(0, 0),
                              probabilities=((0.9, 0.1, 0, 0, 0), (0.6, 0.4, 0, 0, 0)))
    return CellResult(key=CellKey(arm="classic", classifier="cnn", seed=seed), metrics=metrics, predictions=predictions,
                      history=(EpochRecord(epoch=1, train_loss=1.0, train_accuracy=0.5),), train_images=10, seconds=1.0)


@pytest.fixture(scope="module")
def experiment_result() -> ExperimentResult:
    """A real (small, fake-trained) k-fold result."""
    from tests.fakes import GradeOracleTrainer, InMemoryImageStore, MemoryRuns, populate
    from tests.unit.test_kfold_service import TRAIN, context, kfold_spec, run

    store = InMemoryImageStore()
    populate(store, TRAIN)
    return run(kfold_spec(repeats=1), context(store, GradeOracleTrainer(), MemoryRuns()))


class RunRepositoryContract:
    """Behaviour every RunRepository must show."""

    def test_is_a_run_repository(self, runs) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(runs, RunRepository)

    def test_cells_round_trip_and_survive_a_new_instance(self, runs, reopen) -> None:  # type: ignore[no-untyped-def]
        runs.save_cell(cell(3))
        assert reopen().load_cell(CellKey(arm="classic", classifier="cnn", seed=3)) == cell(3)
        assert reopen().load_cell(CellKey(arm="classic", classifier="cnn", seed=4)) is None

    def test_saving_a_cell_again_replaces_it(self, runs, reopen) -> None:  # type: ignore[no-untyped-def]
        runs.save_cell(cell(0, accuracy=0.25))
        runs.save_cell(cell(0, accuracy=0.75))
        loaded = reopen().load_cell(cell(0).key)
        assert loaded is not None and loaded.metrics.accuracy == 0.75

    def test_claim_allows_new_arms_but_not_redefined_ones(self, runs, reopen) -> None:  # type: ignore[no-untyped-def]
        runs.claim("f1", {"classic": "A"})
        runs.claim("f1", {"classic": "A", "diffusion": "B"})  # extending resumes
        reopen().claim("f1", {"diffusion": "B"})  # narrowing resumes, from another instance too
        with pytest.raises(ConfigError, match="arm 'diffusion' was defined differently"):
            reopen().claim("f1", {"diffusion": "C"})
        with pytest.raises(ConfigError, match="different experiment definition"):
            reopen().claim("f2", {"classic": "A"})

    def test_results_round_trip(self, runs, reopen, experiment_result) -> None:  # type: ignore[no-untyped-def]
        written = runs.save_result(experiment_result)
        assert written.endswith("results.json") and written.startswith(runs.location)
        assert reopen().load_result() == experiment_result

    def test_missing_results_are_a_clear_error(self, runs) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(ConfigError, match="no results.json"):
            runs.load_result()

    def test_checkpoint_path_is_a_writable_local_file(self, runs) -> None:  # type: ignore[no-untyped-def]
        path = Path(runs.checkpoint_path("classic__cnn__s0"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
        assert path.read_bytes() == b"weights"
        assert path != Path(runs.checkpoint_path("classic__cnn__s1"))
