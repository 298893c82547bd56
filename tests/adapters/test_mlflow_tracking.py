"""MLflow tracking of a tiny phantom experiment in a local folder: one parent run, one child run
per cell with its parameters, metrics and artefacts; a re-run adds nothing twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_experiment_cli import workspace  # noqa: F401 - fixture
from tests.experiments import invoke

pytest.importorskip("mlflow")


def _client(mlruns: Path):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{mlruns.resolve() / 'mlflow.db'}")


def _parent_and_children(client, name: str):  # type: ignore[no-untyped-def]
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(runs) - 1
    return parents[0], children


def test_a_resumed_experiment_keeps_one_parent_and_one_child_per_cell(tmp_path: Path) -> None:
    import dataclasses

    from medaug.adapters.tracking.mlflow import MlflowTracker
    from tests.fakes import EchoGenerator, GradeOracleTrainer, InMemoryImageStore, MemoryRuns, populate
    from tests.unit.test_experiment_service import TRAIN, context, spec
    from tests.unit.test_experiment_service import run as run_experiment

    class WeightedEcho(EchoGenerator):
        """Records the hash of the weights it 'generated' with, as the diffusion generator does."""

        def generate(self, requests):  # type: ignore[no-untyped-def]
            return [
                r.model_copy(update={"parameters": {**r.parameters, "weights_sha256": "feedc0de"}})
                for r in super().generate(requests)
            ]

    store, runs = InMemoryImageStore(), MemoryRuns()
    populate(store, TRAIN)
    ctx = dataclasses.replace(
        context(store, GradeOracleTrainer(), runs, WeightedEcho()),
        tracker=MlflowTracker(str(tmp_path / "mlruns"), "fakes"),
    )
    with pytest.raises(KeyboardInterrupt):  # killed after 3 cells: nothing tracked yet
        run_experiment(spec(), dataclasses.replace(ctx, trainers={"oracle": GradeOracleTrainer(fail_on_call=4)}))
    result = run_experiment(spec(), ctx)
    run_experiment(spec(), ctx)  # once more: every cell resumed, nothing logged twice

    client = _client(tmp_path / "mlruns")
    parent, runs = _parent_and_children(client, "fakes")
    children = [r for r in runs if "medaug.cell" in r.data.tags]
    generators = {r.data.tags["medaug.generator"]: r for r in runs if "medaug.generator" in r.data.tags}
    assert sorted(generators) == ["classic/echo", "more/echo"]  # one run each, over three records
    for name, generator in generators.items():
        augmentation = name.split("/")[0]
        assert generator.data.params["weights_sha256"] == "feedc0de"
        assert generator.data.params["augmentation"] == augmentation
        assert int(generator.data.params["images"]) == len(store.list(augmentation=augmentation)) > 0
    assert sorted(r.data.tags["medaug.cell"] for r in children) == sorted(c.key.slug for c in result.cells)
    by_slug = {r.data.tags["medaug.cell"]: r for r in children}
    for cell in result.cells:
        child = by_slug[cell.key.slug]
        assert child.data.params["arm"] == cell.key.arm and child.data.params["seed"] == str(cell.key.seed)
        assert child.data.metrics["accuracy"] == pytest.approx(cell.metrics.accuracy)
        assert {a.path for a in client.list_artifacts(child.info.run_id)} == {"confusion_matrix.json", "predictions.json"}
    assert by_slug["more__oracle__s0"].data.params["generators"] == "echo"
    assert by_slug["more__oracle__s0"].data.params["weights_sha256"] == "feedc0de"
    assert "weights_sha256" not in by_slug["none__oracle__s0"].data.params
    assert parent.data.params["arms"] == "none,classic,more"
    assert "classic.oracle.accuracy_mean" in parent.data.metrics
    for verdict in result.verdicts():  # the same verdicts the report reads
        name = f"{verdict.arm}.oracle.vs_classic"
        assert parent.data.metrics[f"{name}.p_value"] == pytest.approx(verdict.p_value)
        assert parent.data.metrics[f"{name}.significant"] == float(verdict.significant)
    assert {v.arm for v in result.verdicts()} == {"none", "more"}


@pytest.mark.slow
def test_the_experiment_is_a_parent_run_and_each_cell_a_child_run(
    workspace: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    mlruns = workspace / "mlruns"
    monkeypatch.setenv("MEDAUG_TRACKING__MLFLOW_URI", str(mlruns))
    for _ in range(2):  # the second run resumes: every cell is read back, nothing logged twice
        result = invoke("experiment", "run", "tiny.toml", "--seeds", "0")
        assert result.exit_code == 0, result.output

    client = _client(mlruns)
    parent, children = _parent_and_children(client, "tiny")
    assert len(children) == 2
    assert sorted(r.data.tags["medaug.cell"] for r in children) == ["classic__cnn__s0", "none__cnn__s0"]
    for child in children:
        assert {"arm", "classifier", "seed", "generators", "generator_options"} <= set(child.data.params)
        assert 0.0 <= child.data.metrics["accuracy"] <= 1.0 and "quadratic_kappa" in child.data.metrics
        artefacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert artefacts == {"confusion_matrix.json", "predictions.json"}
    classic = next(r for r in children if r.data.params["arm"] == "classic")
    assert classic.data.params["generators"] == "classic"
    assert parent.data.params["arms"] == "none,classic"
    assert "classic.cnn.accuracy_mean" in parent.data.metrics


def test_without_a_uri_nothing_is_tracked(workspace: Path) -> None:  # noqa: F811
    from medaug.composition.execution import build_tracker
    from medaug.composition.settings import Settings

    assert build_tracker(Settings(), "tiny") is None
    tracker = build_tracker(Settings(tracking={"mlflow_uri": str(workspace / "never")}), "tiny")
    assert tracker is not None and not (workspace / "never").exists()  # nothing connects before a run
